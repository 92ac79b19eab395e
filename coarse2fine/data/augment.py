"""Per-example host-side image augmentation in numpy, driven by each example's random stream (pipeline.py).

Every augmentation takes a uint8 image [H, W, C] (C = 1 or 3) and a
`np.random.Generator`, and returns float32 [out_H, out_W, C] in [0, 1]; normalising by
the dataset mean/std is the caller's job.

The individual ops map `(image [H, W, C] float32 in [0, 1], rng) -> image` and can be
chained with `Compose`. Speed matters more than generality here (tens of thousands of
28- to 32-pixel images per epoch on a couple of host cores, where each numpy call costs
about a microsecond), so:
  * resizing and blurring are separable linear maps, applied as two small matrix
    products `R_y @ plane @ R_x^T` per channel; the matrices are cached or built from a
    cached one-hot tensor with a single product;
  * the ops pass images as [H, W, C] views of channel-planar memory ([C, H, W]), so the
    matrix products run on contiguous planes; `Augmentation` copies the result back to an
    ordinary C-contiguous [H, W, C] array once, at the end;
  * each op draws all its random numbers with one generator call.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, Sequence

import numpy as np

from coarse2fine.data.autoaugment import AutoAugment
from coarse2fine.data.perspective import RandomPerspective

Op = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# ITU-R 601-2 luma weights.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _pair(size) -> tuple[int, int]:
  if isinstance(size, (int, np.integer)):
    return int(size), int(size)
  h, w = size
  return int(h), int(w)


def _planes(image: np.ndarray) -> np.ndarray:
  """[H, W, C] -> [C, H, W] view (contiguous when the image came from another op)."""
  return image.transpose(2, 0, 1)


def _hwc(planes: np.ndarray) -> np.ndarray:
  """[C, H, W] -> [H, W, C] view."""
  return planes.transpose(1, 2, 0)


def _clip01(x: np.ndarray) -> np.ndarray:
  """Clips a freshly computed array to [0, 1] in place (np.clip is slower on small arrays)."""
  np.maximum(x, 0.0, out=x)
  return np.minimum(x, 1.0, out=x)


def to_float(image: np.ndarray) -> np.ndarray:
  """uint8 [H, W, C] -> float32 [H, W, C] in [0, 1], stored channel-planar."""
  return _hwc(np.multiply(image.transpose(2, 0, 1), np.float32(1.0 / 255.0), dtype=np.float32, order="C"))


# ------------------------------------------------------------------------------------
# Resizing.


def _separable(planes: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """rows @ plane @ cols^T for every plane of [C, h, w]; rows [oh, h], cols [ow, w] -> [C, oh, ow].

  The second product runs as one 2-D matmul over all channels' rows at once: numpy's
  batched matmul with a transposed operand is markedly slower on small matrices.
  """
  tmp = rows @ planes  # [C, oh, w], contiguous
  channels, out_h, width = tmp.shape
  return (tmp.reshape(channels * out_h, width) @ cols.T).reshape(channels, out_h, cols.shape[0])


@functools.lru_cache(maxsize=512)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] float32 bilinear-interpolation matrix along one axis.

  Output pixel i samples the input at pixel-centre coordinate (i + 0.5) * n_in / n_out - 0.5
  (align_corners=False), clamped to [0, n_in - 1] so the border pixels replicate.
  No antialiasing: downscaling by large factors aliases, as in torchvision without it.
  """
  src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
  src = np.clip(src, 0.0, n_in - 1)
  lo = np.floor(src).astype(np.int64)
  hi = np.minimum(lo + 1, n_in - 1)
  frac = src - lo
  rows = np.arange(n_out)
  m = np.zeros((n_out, n_in))
  m[rows, lo] = 1.0 - frac
  m[rows, hi] += frac  # hi == lo only where frac == 0, so this never double-counts
  m = m.astype(np.float32)
  m.flags.writeable = False  # shared through the cache
  return m


def resized_crop(image: np.ndarray, box: tuple[int, int, int, int], size) -> np.ndarray:
  """Crops box = (top, left, height, width) from [H, W, C] and resizes it bilinearly to size (h, w)."""
  top, left, h, w = box
  out_h, out_w = _pair(size)
  crop = _planes(image)[:, top:top + h, left:left + w]
  return _hwc(_separable(crop, resize_matrix(h, out_h), resize_matrix(w, out_w)))


def resize_bilinear(image: np.ndarray, size) -> np.ndarray:
  """Resizes a whole [H, W, C] image to size (h, w) (align_corners=False)."""
  return resized_crop(image, (0, 0, image.shape[0], image.shape[1]), size)


class RandomResizedCrop:
  """Random crop of random area fraction and aspect ratio, resized to `size` (torchvision semantics).

  Up to 10 attempts draw an area fraction uniformly in `scale` and an aspect ratio
  (width / height) log-uniformly in `ratio`; the first crop that fits is placed uniformly.
  If none fits, the central crop of the whole image clamped to the ratio range is used.
  """

  max_attempts = 10

  def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    self.size = _pair(size)
    self.scale = (float(scale[0]), float(scale[1]))
    self.ratio = (float(ratio[0]), float(ratio[1]))
    if not 0 < self.scale[0] <= self.scale[1] or not 0 < self.ratio[0] <= self.ratio[1]:
      raise ValueError(f"Bad RandomResizedCrop ranges: scale={scale}, ratio={ratio}.")
    self._log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))

  def sample_box(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width) in pixels for an image of height x width."""
    area = height * width
    (s0, s1), (l0, l1) = self.scale, self._log_ratio
    u = rng.random(2 * self.max_attempts + 2).tolist()  # one call: generator calls are slow
    for k in range(self.max_attempts):
      target = area * (s0 + (s1 - s0) * u[2 * k])
      aspect = math.exp(l0 + (l1 - l0) * u[2 * k + 1])
      w = round(math.sqrt(target * aspect))
      h = round(math.sqrt(target / aspect))
      if 0 < w <= width and 0 < h <= height:
        return int(u[-2] * (height - h + 1)), int(u[-1] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < self.ratio[0]:
      w, h = width, round(width / self.ratio[0])
    elif in_ratio > self.ratio[1]:
      h, w = height, round(height * self.ratio[1])
    else:
      h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    box = self.sample_box(image.shape[0], image.shape[1], rng)
    return resized_crop(image, box, self.size)


class RandomCropWithPadding:
  """Zero-pads every side by `padding` pixels, then takes a uniformly placed crop of `size`."""

  def __init__(self, size, padding: int = 4):
    self.size = _pair(size)
    self.padding = int(padding)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width, channels = image.shape
    out_h, out_w = self.size
    p = self.padding
    if out_h > height + 2 * p or out_w > width + 2 * p:
      raise ValueError(f"Crop {self.size} is larger than the padded image {(height + 2 * p, width + 2 * p)}.")
    u = rng.random(2).tolist()
    # Crop origin in padded coordinates, shifted back to the unpadded image's.
    top = int(u[0] * (height + 2 * p - out_h + 1)) - p
    left = int(u[1] * (width + 2 * p - out_w + 1)) - p
    # Copy only the overlap with the image instead of materialising the padded image.
    y0, y1 = max(top, 0), min(top + out_h, height)
    x0, x1 = max(left, 0), min(left + out_w, width)
    out = np.zeros((channels, out_h, out_w), dtype=np.float32)
    out[:, y0 - top:y1 - top, x0 - left:x1 - left] = _planes(image)[:, y0:y1, x0:x1]
    return _hwc(out)


class RandomHorizontalFlip:
  """Mirrors left-right with probability p (returns a view)."""

  def __init__(self, p: float = 0.5):
    self.p = float(p)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image[:, ::-1] if rng.random() < self.p else image


# ------------------------------------------------------------------------------------
# Colour.


def _gray_plane(planes: np.ndarray) -> np.ndarray:
  """[C, H, W] -> [H, W] luma (the single plane itself when C = 1)."""
  if planes.shape[0] == 1:
    return planes[0]
  return (_LUMA @ planes.reshape(3, -1)).reshape(planes.shape[1:])


def to_grayscale(image: np.ndarray) -> np.ndarray:
  """ITU-R 601-2 luma of [H, W, 3], replicated to 3 channels; [H, W, 1] is returned unchanged."""
  planes = _planes(image)
  if planes.shape[0] == 1:
    return image
  return _hwc(np.repeat(_gray_plane(planes)[None], 3, axis=0))


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
  """image * factor, clipped to [0, 1]."""
  return _clip01(image * np.float32(factor))


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
  """Blends with the mean luma: factor * image + (1 - factor) * mean(gray), clipped."""
  planes = _planes(image)
  gray = _gray_plane(planes)
  mean = np.add.reduce(gray, axis=None) / gray.size
  return _hwc(_clip01(planes * np.float32(factor) + np.float32((1.0 - factor) * mean)))


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
  """Blends with the luma image: factor * image + (1 - factor) * gray, clipped; no-op for C = 1."""
  planes = _planes(image)
  if planes.shape[0] == 1:
    return image
  gray = _gray_plane(planes) * np.float32(1.0 - factor)
  return _hwc(_clip01(planes * np.float32(factor) + gray))


def _hue_sectors(planes: np.ndarray):
  """RGB planes [3, ...] -> (hue in sectors, in [-1, 5]; min; max - min), each [...].

  One sector is 60 degrees; hue 0 is red, 2 green, 4 blue.
  """
  r, g, b = planes
  maxc = np.maximum(np.maximum(r, g), b)
  minc = np.minimum(np.minimum(r, g), b)
  delta = maxc - minc
  # Grey pixels have delta = 0 and equal channels, so any positive divisor gives hue 0.
  d = np.maximum(delta, np.float32(1e-12))
  # Ties resolve red, then green, then blue, as in colorsys.
  twice = delta + delta
  numerator = np.where(r == maxc, g - b, np.where(g == maxc, (b - r) + twice, (r - g) + (twice + twice)))
  return numerator / d, minc, delta


# Hue (in sectors) opposite each channel's peak: cyan for R, magenta for G, yellow for B.
_OPPOSITE_HUE = (3.0, 5.0, 1.0)


def _rgb_from_hue(hue6: np.ndarray, minc: np.ndarray, delta: np.ndarray, rotate: float = 0.0) -> np.ndarray:
  """Inverse of _hue_sectors: (hue6 + rotate) in sectors, min and max - min, each [...] -> [3, ...].

  hue6 may lie anywhere in [-1, 6]. Each channel is min + delta * clip(dist - 1, 0, 1), with
  dist the circular distance (in sectors) from the hue to the hue opposite the channel's
  peak: the channel is at its max within 1 sector of its peak, at its min within 1 of the
  opposite hue, linear between. This is the standard HSV -> RGB map without the six-way
  case split. Rotating the three reference hues instead of the hue plane saves a wrap.
  """
  opposite = np.array([(o - rotate) % 6.0 for o in _OPPOSITE_HUE], dtype=np.float32).reshape(3, *([1] * hue6.ndim))
  d = np.abs(hue6 - opposite)  # in [0, 7)
  # min(d, 6 - d) is the circular distance for d <= 6; for d in (6, 7) it is negative
  # where the true distance is below 1, and both clip to 0 below.
  dist_minus_1 = np.minimum(d - 1.0, 5.0 - d)
  return minc + delta * _clip01(dist_minus_1)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
  """[..., 3] RGB in [0, 1] -> [..., 3] (hue in [0, 1), saturation, value), as colorsys."""
  rgb = np.asarray(rgb, dtype=np.float32)
  hue6, minc, delta = _hue_sectors(rgb.reshape(-1, 3).T)
  value = minc + delta
  sat = delta / np.maximum(value, np.float32(1e-12))
  hue = np.mod(hue6 / np.float32(6.0), 1.0)
  return np.stack([hue, sat, value], axis=-1).reshape(rgb.shape)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
  """[..., 3] (hue in [0, 1), saturation, value) -> [..., 3] RGB, as colorsys."""
  hsv = np.asarray(hsv, dtype=np.float32)
  h, s, v = hsv.reshape(-1, 3).T
  delta = v * s
  rgb = _rgb_from_hue(np.mod(h * np.float32(6.0), 6.0), v - delta, delta)
  return rgb.T.reshape(hsv.shape)


def adjust_hue(image: np.ndarray, shift: float) -> np.ndarray:
  """Rotates the HSV hue by `shift` turns (shift in [-0.5, 0.5]); no-op for C = 1."""
  planes = _planes(image)
  if planes.shape[0] == 1:
    return image
  hue6, minc, delta = _hue_sectors(planes)
  rgb = _rgb_from_hue(hue6, minc, delta, rotate=6.0 * shift)
  # rgb >= min >= 0 already; min + (max - min) can round one ulp above max.
  return _hwc(np.minimum(rgb, 1.0, out=rgb))


class ColorJitter:
  """With probability p, jitters brightness, contrast, saturation and hue in a random order.

  Factors are uniform in [max(0, 1 - x), 1 + x] for brightness, contrast and saturation
  and the hue shift uniform in [-hue, hue] turns (hue <= 0.5); a strength of 0 disables
  that adjustment. Each adjustment clips to [0, 1]. Saturation and hue skip C = 1 images.
  """

  def __init__(self, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8):
    for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
      if value < 0:
        raise ValueError(f"ColorJitter {name}={value} must be >= 0.")
    if not 0 <= hue <= 0.5:
      raise ValueError(f"ColorJitter hue={hue} must be in [0, 0.5].")
    self.brightness, self.contrast, self.saturation, self.hue = map(float, (brightness, contrast, saturation, hue))
    self.p = float(p)
    # (adjustment, low, high) per slot in torchvision's order; None when disabled.
    self._ranges = [
        (adjust_brightness, max(0.0, 1 - self.brightness), 1 + self.brightness) if self.brightness else None,
        (adjust_contrast, max(0.0, 1 - self.contrast), 1 + self.contrast) if self.contrast else None,
        (adjust_saturation, max(0.0, 1 - self.saturation), 1 + self.saturation) if self.saturation else None,
        (adjust_hue, -self.hue, self.hue) if self.hue else None,
    ]

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Always draw the same count, so later ops see the same stream whatever is enabled.
    u = rng.random(9).tolist()  # [apply, 4 factors, 4 sort keys for the order]
    if u[0] >= self.p:
      return image
    for slot in sorted(range(4), key=lambda k: u[5 + k]):
      entry = self._ranges[slot]
      if entry is not None:
        fn, low, high = entry
        image = fn(image, low + (high - low) * u[1 + slot])
    return image


class RandomGrayscale:
  """Converts to 3-channel luma with probability p; no-op for C = 1."""

  def __init__(self, p: float = 0.2):
    self.p = float(p)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return to_grayscale(image) if rng.random() < self.p else image


# ------------------------------------------------------------------------------------
# Blur.


@functools.lru_cache(maxsize=64)
def _squared_offsets(kernel_size: int) -> np.ndarray:
  x = np.arange(kernel_size, dtype=np.float32) - np.float32((kernel_size - 1) / 2)
  x = x * x
  x.flags.writeable = False
  return x


def gaussian_kernel1d(sigma: float, kernel_size: int) -> np.ndarray:
  """[kernel_size] float32 normalised Gaussian taps exp(-x^2 / (2 sigma^2)) at integer offsets x."""
  k = np.exp(_squared_offsets(kernel_size) * np.float32(-0.5 / (sigma * sigma)))
  k /= np.add.reduce(k)
  return k


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
  """Maps any integer index into [0, n) by mirroring about the edge pixels (numpy 'reflect')."""
  if n == 1:
    return np.zeros_like(index)
  period = 2 * (n - 1)
  index = np.mod(index, period)
  return np.where(index >= n, period - index, index)


@functools.lru_cache(maxsize=64)
def _blur_taps(n: int, kernel_size: int) -> np.ndarray:
  """[kernel_size, n * n] one-hot tensor: taps @ it is the n x n reflect-padded convolution matrix."""
  rows = np.arange(n)
  taps = np.zeros((kernel_size, n, n), dtype=np.float32)
  for t in range(kernel_size):  # kernel_size iterations, once per (n, kernel_size)
    cols = _reflect(rows + t - kernel_size // 2, n)
    np.add.at(taps[t], (rows, cols), 1.0)
  taps = taps.reshape(kernel_size, n * n)
  taps.flags.writeable = False
  return taps


def blur_matrix(n: int, sigma: float, kernel_size: int) -> np.ndarray:
  """[n, n] matrix of the 1-D Gaussian blur with reflect padding along an axis of length n."""
  return (gaussian_kernel1d(sigma, kernel_size) @ _blur_taps(n, kernel_size)).reshape(n, n)


def gaussian_blur(image: np.ndarray, sigma: float, kernel_size: int) -> np.ndarray:
  """Separable Gaussian blur of [H, W, C] with a kernel_size-tap kernel and reflect padding."""
  height, width = image.shape[:2]
  by = blur_matrix(height, sigma, kernel_size)
  bx = by if width == height else blur_matrix(width, sigma, kernel_size)
  return _hwc(_separable(_planes(image), by, bx))


class GaussianBlur:
  """With probability p, Gaussian blur with sigma uniform in `sigma` (pixels) and reflect padding."""

  def __init__(self, kernel_size: int, sigma=(0.1, 2.0), p: float = 0.5):
    if kernel_size < 1 or kernel_size % 2 == 0:
      raise ValueError(f"GaussianBlur kernel_size={kernel_size} must be odd and positive.")
    if not 0 < sigma[0] <= sigma[1]:
      raise ValueError(f"GaussianBlur sigma range {sigma} must satisfy 0 < low <= high.")
    self.kernel_size = int(kernel_size)
    self.sigma = (float(sigma[0]), float(sigma[1]))
    self.p = float(p)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(2).tolist()
    if u[0] >= self.p:
      return image
    sigma = self.sigma[0] + (self.sigma[1] - self.sigma[0]) * u[1]
    return gaussian_blur(image, sigma, self.kernel_size)


# ------------------------------------------------------------------------------------
# Composition and presets.


class Compose:
  """Applies ops in order."""

  def __init__(self, ops: Sequence[Op]):
    self.ops = list(ops)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    for op in self.ops:
      image = op(image, rng)
    return image


class Augmentation:
  """uint8 [H, W, C] -> float32 [out_H, out_W, C] in [0, 1]: to_float, the ops, a contiguous copy.

  Checks the input against `image_shape` so a config/data mismatch fails loudly.
  Picklable, so grain can ship it to worker processes.
  """

  def __init__(self, ops: Sequence[Op], image_shape: Sequence[int], out_size):
    self.ops = Compose(ops)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.out_shape = (*_pair(out_size), self.image_shape[2])

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if image.dtype != np.uint8 or image.shape != self.image_shape:
      raise ValueError(f"Expected uint8 {self.image_shape}, got {image.dtype} {image.shape}.")
    result = self.ops(to_float(image), rng)
    # One copy into C-contiguous [H, W, C]; the clip absorbs float rounding (e.g. a 1 + 1e-7
    # from weights summing to just over one) so the output range is exact.
    out = np.minimum(result, 1.0, out=np.empty(self.out_shape, dtype=np.float32))
    return np.maximum(out, 0.0, out=out)


def _get(spec, key: str, default):
  value = spec.get(key, None)
  return default if value is None else value


def _blur_kernel_size(out_size: tuple[int, int]) -> int:
  """About 10% of the smaller side, made odd, at least 3 (SimCLR's choice)."""
  k = max(3, int(round(0.1 * min(out_size))))
  return k if k % 2 else k + 1


class _Resize:
  """Deterministic whole-image bilinear resize (the 'none' preset with a size override)."""

  def __init__(self, size):
    self.size = _pair(size)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return resize_bilinear(image, self.size)


def _build_none(spec, image_shape, out_size) -> list[Op]:
  if out_size == tuple(image_shape[:2]):
    return []
  return [_Resize(out_size)]


def _flip(spec) -> list[Op]:
  return [RandomHorizontalFlip(0.5)] if _get(spec, "flip", True) else []


def _build_crop_flip(spec, image_shape, out_size) -> list[Op]:
  return [RandomCropWithPadding(out_size, padding=_get(spec, "padding", 4))] + _flip(spec)


def _build_weak(spec, image_shape, out_size) -> list[Op]:
  scale = (_get(spec, "min_scale", 0.5), _get(spec, "max_scale", 1.0))
  return [RandomResizedCrop(out_size, scale=scale)] + _flip(spec)


def _perspective(spec) -> list[Op]:
  return [RandomPerspective(_get(spec, "perspective_scale", 0.5), p=_get(spec, "perspective_p", 0.5))]


def _colour_and_blur(spec, out_size) -> list[Op]:
  """Colour jitter, grayscale and blur of the 'strong' presets (MoCo v2's, with SimCLR's blur)."""
  jitter = float(_get(spec, "jitter", 0.4))
  hue = float(_get(spec, "hue", jitter / 4))  # MoCo-v2: (0.4, 0.4, 0.4, 0.1)
  kernel = int(_get(spec, "blur_kernel", _blur_kernel_size(out_size)))
  return [
      ColorJitter(jitter, jitter, jitter, hue, p=_get(spec, "jitter_p", 0.8)),
      RandomGrayscale(_get(spec, "grayscale_p", 0.2)),
      GaussianBlur(kernel, sigma=tuple(_get(spec, "blur_sigma", (0.1, 2.0))), p=_get(spec, "blur_p", 0.5)),
  ]


def _strong_crop_flip(spec, out_size) -> list[Op]:
  scale = (_get(spec, "min_scale", 0.2), _get(spec, "max_scale", 1.0))
  return [RandomResizedCrop(out_size, scale=scale)] + _flip(spec)


def _build_strong(spec, image_shape, out_size) -> list[Op]:
  return _strong_crop_flip(spec, out_size) + _colour_and_blur(spec, out_size)


def _build_autoaugment(spec, image_shape, out_size) -> list[Op]:
  """MaskCon's CIFAR/ImageNet32 query view: crop, flip, AutoAugment's CIFAR-10 policy."""
  return _strong_crop_flip(spec, out_size) + [AutoAugment()]


def _build_strong_perspective(spec, image_shape, out_size) -> list[Op]:
  """MaskCon's Cars196 query view: crop, flip, perspective, then the 'strong' colour and blur."""
  return _strong_crop_flip(spec, out_size) + _perspective(spec) + _colour_and_blur(spec, out_size)


def _build_perspective(spec, image_shape, out_size) -> list[Op]:
  """MaskCon's SOP query view: crop (strong scale range), flip, perspective."""
  return _strong_crop_flip(spec, out_size) + _perspective(spec)


def _build_weak_perspective(spec, image_shape, out_size) -> list[Op]:
  """MaskCon's Cars196/SOP key view: 'weak' (crop, flip) plus perspective."""
  return _build_weak(spec, image_shape, out_size) + _perspective(spec)


# kind -> builder(spec, image_shape, out_size) -> list of ops.
AUGMENTATIONS: dict[str, Callable] = {
    "none": _build_none,
    "crop_flip": _build_crop_flip,
    "weak": _build_weak,
    "strong": _build_strong,
    "autoaugment": _build_autoaugment,
    "strong_perspective": _build_strong_perspective,
    "perspective": _build_perspective,
    "weak_perspective": _build_weak_perspective,
}

# Every spec field any preset reads. One spec may carry fields for several kinds (the
# pipeline reuses one config per view and only swaps `kind`), so fields are checked
# against this union, which still catches typos.
SPEC_FIELDS = frozenset({
    "kind", "size", "flip", "padding", "min_scale", "max_scale", "jitter", "hue", "jitter_p",
    "grayscale_p", "blur_p", "blur_sigma", "blur_kernel", "perspective_scale", "perspective_p",
})


def make_augmentation(spec: Mapping, image_shape: Sequence[int]) -> Augmentation:
  """Builds the preset `spec.kind` for uint8 images of `image_shape` = (H, W, C).

  Kinds: 'none' (resize only, if `size` differs), 'crop_flip' (padded crop, flip), 'weak'
  (RandomResizedCrop, flip), 'strong' (RandomResizedCrop, flip, colour jitter, grayscale,
  blur), and MaskCon's views (shared/METHODS.md 4.4): 'autoaugment' (RandomResizedCrop, flip,
  AutoAugment's CIFAR-10 policy), 'strong_perspective' ('strong' with a random perspective
  after the flip), 'perspective' (RandomResizedCrop, flip, perspective) and
  'weak_perspective' ('weak', then perspective).

  spec is an ml_collections.ConfigDict or a dict. Fields (all optional except kind):
    size: output (h, w) or int; default the input's (H, W).
    flip: random horizontal flip (every kind but 'none'); default True.
    padding: zero padding of 'crop_flip' in pixels; default 4.
    min_scale, max_scale: RandomResizedCrop area range; defaults 0.5 ('weak',
      'weak_perspective') or 0.2 (the others), and 1.0.
    jitter: brightness/contrast/saturation strength ('strong', 'strong_perspective'); default 0.4.
    hue: hue strength (same kinds); default jitter / 4.
    jitter_p, grayscale_p, blur_p: probabilities (same kinds); defaults 0.8, 0.2, 0.5.
    blur_sigma: (low, high) in pixels; default (0.1, 2.0).
    blur_kernel: odd kernel size; default about 10% of the output size.
    perspective_scale: RandomPerspective distortion scale, the largest corner move as a
      fraction of half the side (the perspective kinds); default 0.5.
    perspective_p: probability of the perspective warp (same kinds); default 0.5.
  """
  kind = spec.get("kind", None)
  if kind not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation kind {kind!r}; valid kinds: {sorted(AUGMENTATIONS)}.")
  unknown = set(spec.keys()) - SPEC_FIELDS
  if unknown:
    raise ValueError(f"Unknown augmentation fields {sorted(unknown)}; known: {sorted(SPEC_FIELDS)}.")
  if len(image_shape) != 3 or image_shape[2] not in (1, 3):
    raise ValueError(f"image_shape must be (H, W, 1) or (H, W, 3), got {tuple(image_shape)}.")
  out_size = _pair(_get(spec, "size", tuple(image_shape[:2])))
  return Augmentation(AUGMENTATIONS[kind](spec, image_shape, out_size), image_shape, out_size)


class MultiView:
  """(uint8 image, rng) -> float32 [V, H, W, C]: one view per augmentation, drawn in turn from rng."""

  def __init__(self, augmentations: Sequence[Callable]):
    if not augmentations:
      raise ValueError("multi_view needs at least one augmentation.")
    self.augmentations = list(augmentations)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Views consume successive draws of the same generator, so they are independent.
    return np.stack([aug(image, rng) for aug in self.augmentations])


def multi_view(augmentations: Sequence[Callable]) -> MultiView:
  """Stacks independently augmented views, e.g. [weak, strong] or [strong, strong]."""
  return MultiView(augmentations)
