"""The device stage of augmentation: colour, grayscale, blur, solarize, perspective and normalisation in JAX.

These run inside the jitted train step on the whole global batch (`DeviceAugment`), vmapped
over examples, after the host has cut, resized and flipped every view to uint8
(`augmentation.host`). Each example's draws come from its own key,
`fold_in(fold_in(stream_key(seed, stream), global batch number), position in the
global batch)`, folded once more with the view's index, so any number of processes and
devices computes exactly what one device would.

Ops map (image float32 [H, W, C] in [0, 1], key) -> image, C = 1 or 3, and follow
torchvision's definitions (checked in tests against Pillow, colorsys, scipy and numpy).
dm-pix supplies the hue rotation, grayscale and solarize, which mean what torchvision's do;
its brightness (additive), contrast (per-channel mean), saturation (HSV scaling) and blur
(zero padding, a depthwise convolution: 34 ms per 224-px image on this CPU against 3 ms for
the two matrix products here) do not, so those are written here:
  ColorJitter     brightness, contrast, saturation and hue in a random order, with probability p;
                  the first three blend with a "degenerate" image (black, the mean luma, the luma
                  image), as Pillow's ImageEnhance and torchvision do; hue rotates HSV hue.
  RandomGrayscale ITU-R 601-2 luma, replicated over the channels.
  GaussianBlur    sigma uniform in a range, `kernel_size` taps, reflect padding; separable, run
                  as two small matrix products per example.
  RandomSolarize  x >= threshold -> 1 - x.
  RandomPerspective  torchvision's corner draws; bilinear sampling with zero fill.
Vectors (single cells, tabular rows) have their own ops, on the standardised vector [F]
(after normalisation, so that strengths are in units of each feature's std):
  FeatureMask     each feature set to 0 (its mean) with probability p.
  GaussianNoise   adds N(0, std^2) to every feature.
Each op takes its branches with `lax.cond` (`maybe`): vmapped over a batch, as on accelerators,
that becomes a select and every example computes every branch; mapped one example at a
time, as `DeviceAugment` does on a CPU, an op that an example skips costs nothing
(benchmarks/input_pipeline.py).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from coarse2fine.data.batch import Batch
from coarse2fine.engine import random_streams

# ITU-R 601-2 luma weights (Pillow's "L" conversion, torchvision's rgb_to_grayscale).
LUMA = (0.299, 0.587, 0.114)


DeviceOp = Callable[[jax.Array, jax.Array], jax.Array]


def maybe(apply: jax.Array, fn: Callable[[jax.Array], jax.Array], image: jax.Array) -> jax.Array:
  """fn(image) where `apply`, else the image: a real branch per example under `lax.map`, a select under vmap."""
  return jax.lax.cond(apply, fn, lambda x: x, image)


def gray(image: jax.Array) -> jax.Array:
  """[H, W, C] -> [H, W, 1] luma (the image itself when C = 1)."""
  if image.shape[-1] == 1:
    return image
  return (image @ jnp.asarray(LUMA, image.dtype))[..., None]


def blend(image: jax.Array, degenerate, factor) -> jax.Array:
  """degenerate + factor (image - degenerate), clipped to [0, 1] (Pillow's ImageEnhance)."""
  return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 1.0)


def adjust_brightness(image: jax.Array, factor) -> jax.Array:
  return blend(image, 0.0, factor)


def adjust_contrast(image: jax.Array, factor) -> jax.Array:
  return blend(image, jnp.mean(gray(image)), factor)


def adjust_saturation(image: jax.Array, factor) -> jax.Array:
  return image if image.shape[-1] == 1 else blend(image, gray(image), factor)


def adjust_hue(image: jax.Array, shift) -> jax.Array:
  """Rotates the HSV hue by `shift` turns (in [-0.5, 0.5]); no-op for C = 1 (dm-pix's HSV round trip)."""
  if image.shape[-1] == 1:
    return image
  return jnp.clip(dm_pix.adjust_hue(image, shift), 0.0, 1.0)


def to_grayscale(image: jax.Array) -> jax.Array:
  """ITU-R 601 luma replicated over the channels (dm-pix; torchvision's rgb_to_grayscale)."""
  if image.shape[-1] == 1:
    return image
  return dm_pix.rgb_to_grayscale(image, keep_dims=True)


def solarize(image: jax.Array, threshold) -> jax.Array:
  """x >= threshold -> 1 - x (dm-pix)."""
  return dm_pix.solarize(image, threshold)


# ------------------------------------------------------------------------------------
# Blur.


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
  """Maps any integer index into [0, n) by mirroring about the edge pixels (torch's and numpy's 'reflect')."""
  if n == 1:
    return np.zeros_like(index)
  period = 2 * (n - 1)
  index = np.mod(index, period)
  return np.where(index >= n, period - index, index)


@functools.lru_cache(maxsize=32)
def _blur_taps(n: int, kernel_size: int) -> np.ndarray:
  """[kernel_size, n, n] 0/1: taps @ weights is the n x n reflect-padded convolution matrix."""
  rows = np.arange(n)
  taps = np.zeros((kernel_size, n, n), np.float32)
  for t in range(kernel_size):
    np.add.at(taps[t], (rows, _reflect(rows + t - kernel_size // 2, n)), 1.0)
  return taps


def gaussian_kernel1d(sigma, kernel_size: int) -> jax.Array:
  """[kernel_size] taps exp(-x^2 / (2 sigma^2)) at x = -(k - 1)/2 ... (k - 1)/2, normalised (torchvision's)."""
  x = jnp.arange(kernel_size, dtype=jnp.float32) - (kernel_size - 1) / 2.0
  weights = jnp.exp(-0.5 * jnp.square(x / sigma))
  return weights / jnp.sum(weights)


def gaussian_blur(image: jax.Array, sigma, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur of [H, W, C] with reflect padding: rows_matrix @ image @ cols_matrix^T."""
  height, width = image.shape[:2]
  weights = gaussian_kernel1d(sigma, kernel_size)
  rows = jnp.tensordot(weights, _blur_taps(height, kernel_size), 1)  # [H, H]
  cols = rows if width == height else jnp.tensordot(weights, _blur_taps(width, kernel_size), 1)
  out = jnp.einsum("ij,jwc->iwc", rows, image, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum("hjc,wj->hwc", out, cols, precision=jax.lax.Precision.HIGHEST)


# ------------------------------------------------------------------------------------
# Perspective.


def solve_homography(from_points: jax.Array, to_points: jax.Array) -> jax.Array:
  """[8] coefficients of the homography taking from_points[k] to to_points[k] ([4, 2] (x, y) each)."""
  x, y = from_points[:, 0], from_points[:, 1]
  u, v = to_points[:, 0], to_points[:, 1]
  zeros, ones = jnp.zeros_like(x), jnp.ones_like(x)
  first = jnp.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], axis=1)
  second = jnp.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], axis=1)
  system = jnp.stack([first, second], axis=1).reshape(8, 8)  # rows in the order (x_0, y_0, x_1, ...)
  return jnp.linalg.solve(system, to_points.reshape(8))


def warp_perspective(image: jax.Array, coeffs: jax.Array) -> jax.Array:
  """Output pixel p samples [H, W, C] `image` bilinearly at homography(p), zero outside (torchvision's tensor path).

  Coordinates are continuous with pixel (i, j) centred at (j + 0.5, i + 0.5).
  """
  height, width, channels = image.shape
  a, b, c, d, e, f, g, h = (coeffs[k] for k in range(8))
  yy, xx = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32) + 0.5, jnp.arange(width, dtype=jnp.float32) + 0.5,
                        indexing="ij")
  denom = g * xx + h * yy + 1.0
  denom = jnp.where(jnp.abs(denom) < 1e-12, 1e-12, denom)
  sx = jnp.clip((a * xx + b * yy + c) / denom - 0.5, -1.0, width)
  sy = jnp.clip((d * xx + e * yy + f) / denom - 0.5, -1.0, height)
  x0, y0 = jnp.floor(sx), jnp.floor(sy)
  fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
  padded = jnp.pad(image, ((1, 2), (1, 2), (0, 0)))  # a zero ring; index + 1 is the padded position
  x0i, y0i = x0.astype(jnp.int32) + 1, y0.astype(jnp.int32) + 1

  def at(yi, xi):
    return padded[yi, xi]

  top = at(y0i, x0i) * (1.0 - fx) + at(y0i, x0i + 1) * fx
  bottom = at(y0i + 1, x0i) * (1.0 - fx) + at(y0i + 1, x0i + 1) * fx
  return top * (1.0 - fy) + bottom * fy


def image_corners(height: int, width: int) -> jax.Array:
  """[4, 2] (x, y): top-left, top-right, bottom-right, bottom-left, as torchvision places them."""
  return jnp.asarray([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], jnp.float32)


# ------------------------------------------------------------------------------------
# The random ops.


@dataclasses.dataclass(frozen=True)
class ColorJitter:
  """With probability p: brightness, contrast, saturation, hue, each at a random factor, in a random order.

  Factors are uniform in [max(0, 1 - x), 1 + x] for brightness, contrast and saturation and
  the hue shift uniform in [-hue, hue] turns (torchvision's ColorJitter); a strength of 0
  leaves that adjustment out. The blends are run in at most six slots around one hue
  rotation (three before, three after), the cheapest vmappable form of a random order.
  """

  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  p: float = 0.8

  def __post_init__(self):
    for name in ("brightness", "contrast", "saturation"):
      if getattr(self, name) < 0:
        raise ValueError(f"ColorJitter {name}={getattr(self, name)} must be >= 0.")
    if not 0 <= self.hue <= 0.5:
      raise ValueError(f"ColorJitter hue={self.hue} must be in [0, 0.5].")

  def draw(self, key: jax.Array):
    """(apply, [3] blend factors, hue shift, [4] order of the ops 0 brightness .. 3 hue)."""
    k_apply, k_factor, k_hue, k_order = jax.random.split(key, 4)
    strengths = jnp.asarray([self.brightness, self.contrast, self.saturation], jnp.float32)
    low = jnp.maximum(0.0, 1.0 - strengths)
    factors = low + (1.0 + strengths - low) * jax.random.uniform(k_factor, (3,))
    shift = jax.random.uniform(k_hue, (), minval=-self.hue, maxval=self.hue)
    order = jax.random.permutation(k_order, 4)
    return jax.random.uniform(k_apply) < self.p, factors, shift, order

  def apply(self, image: jax.Array, factors, shift, order) -> jax.Array:
    """The jitter with given draws: [3] factors, hue shift, [4] permutation of 0..3."""
    enabled = jnp.asarray([self.brightness > 0, self.contrast > 0, self.saturation > 0], bool)
    factors = jnp.where(enabled, factors, 1.0)
    use_hue = self.hue > 0 and image.shape[-1] == 3
    hue_at = jnp.argmax(order == 3) if use_hue else 4  # ops before it run before the hue rotation

    def slot(x, op, active):
      def adjust(x):
        degenerate = jnp.where(op == 0, 0.0, jnp.where(op == 1, jnp.mean(gray(x)), gray(x)))
        return blend(x, degenerate, factors[jnp.minimum(op, 2)])

      return maybe(active & (op < 3), adjust, x)

    x = image
    for k in range(3 if use_hue else 4):
      x = slot(x, order[k], k < hue_at)
    if use_hue:
      x = adjust_hue(x, shift)
      for k in range(1, 4):
        x = slot(x, order[k], k > hue_at)
    return x

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    apply, factors, shift, order = self.draw(key)
    return maybe(apply, lambda x: self.apply(x, factors, shift, order), image)


@dataclasses.dataclass(frozen=True)
class RandomGrayscale:
  p: float = 0.2

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    if image.shape[-1] == 1 or self.p == 0:
      return image
    return maybe(jax.random.uniform(key) < self.p, to_grayscale, image)


@dataclasses.dataclass(frozen=True)
class GaussianBlur:
  """With probability p, a `kernel_size`-tap Gaussian blur with sigma uniform in `sigma` (pixels)."""

  kernel_size: int
  sigma: tuple[float, float] = (0.1, 2.0)
  p: float = 0.5

  def __post_init__(self):
    if self.kernel_size < 1 or self.kernel_size % 2 == 0:
      raise ValueError(f"GaussianBlur kernel_size={self.kernel_size} must be odd and positive.")
    if not 0 < self.sigma[0] <= self.sigma[1]:
      raise ValueError(f"GaussianBlur sigma range {self.sigma} must satisfy 0 < low <= high.")

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    if self.p == 0:
      return image
    k_apply, k_sigma = jax.random.split(key)
    sigma = jax.random.uniform(k_sigma, minval=self.sigma[0], maxval=self.sigma[1])
    return maybe(jax.random.uniform(k_apply) < self.p, lambda x: gaussian_blur(x, sigma, self.kernel_size), image)


@dataclasses.dataclass(frozen=True)
class RandomSolarize:
  threshold: float = 0.5
  p: float = 0.0

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    if self.p == 0:
      return image
    return maybe(jax.random.uniform(key) < self.p, lambda x: solarize(x, self.threshold), image)


@dataclasses.dataclass(frozen=True)
class RandomPerspective:
  """With probability p, torchvision's RandomPerspective: corners moved inward by random whole pixels.

  Each corner moves by integers uniform in 0..int(scale * (W // 2)) horizontally and
  0..int(scale * (H // 2)) vertically; the image is squeezed into their quadrilateral.
  """

  distortion_scale: float = 0.5
  p: float = 0.5

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    height, width = image.shape[:2]
    k_apply, k_offsets = jax.random.split(key)
    limits = jnp.asarray([int(self.distortion_scale * (width // 2)), int(self.distortion_scale * (height // 2))])
    offsets = jnp.floor(jax.random.uniform(k_offsets, (4, 2)) * (limits + 1))
    corners = image_corners(height, width)
    moved = corners + jnp.asarray([[1, 1], [-1, 1], [-1, -1], [1, -1]], jnp.float32) * offsets
    warp = lambda x: warp_perspective(x, solve_homography(moved, corners))
    return maybe(jax.random.uniform(k_apply) < self.p, warp, image)


# ------------------------------------------------------------------------------------
# Vector ops: (standardised vector [F], key) -> vector [F].


@dataclasses.dataclass(frozen=True)
class FeatureMask:
  """Each feature independently set to 0 with probability p (0 is the feature's mean once standardised)."""

  p: float = 0.2

  def __call__(self, vector: jax.Array, key: jax.Array) -> jax.Array:
    if self.p == 0:
      return vector
    return jnp.where(jax.random.uniform(key, vector.shape) < self.p, 0.0, vector)


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
  """vector + std * N(0, 1) per feature."""

  std: float = 0.5

  def __call__(self, vector: jax.Array, key: jax.Array) -> jax.Array:
    if self.std == 0:
      return vector
    return vector + self.std * jax.random.normal(key, vector.shape, vector.dtype)


# ------------------------------------------------------------------------------------
# Views and batches.


@dataclasses.dataclass(frozen=True)
class DeviceView:
  """The device ops of one view kind, in order; empty for views the host finishes.

  standardised: the ops take standardised float inputs and run after the normalisation
  (the vector ops); otherwise they take uint8 images as [0, 1] floats and run before it.
  """

  ops: tuple[DeviceOp, ...] = ()
  standardised: bool = False

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    """float32 [H, W, C] in [0, 1] -> float32 [H, W, C] in [0, 1] (or a standardised vector [F] -> [F])."""
    keys = jax.random.split(key, max(len(self.ops), 1))
    for op, op_key in zip(self.ops, keys):
      image = op(image, op_key)
    return image


def example_keys(seed: int, stream: int, example: jax.Array, salt: Optional[jax.Array] = None) -> jax.Array:
  """[b] keys from [b, 2] (global batch number, position in the global batch); `salt` re-keys a whole pass."""
  base = random_streams.stream_key(seed, stream)
  if salt is not None:
    base = jax.random.fold_in(base, salt)
  return jax.vmap(lambda e: jax.random.fold_in(jax.random.fold_in(base, e[0]), e[1]))(example)


@dataclasses.dataclass(frozen=True)
class DeviceAugment:
  """Batch of uint8 views (or float vectors) -> float32 views, augmented and normalised.

  views: one `DeviceView` per view of `Batch.views`; neighbours: the neighbours' view (or
  None); mean, std: per channel (images) or per feature (vectors); stream: keeps passes
  other than training (`random_streams.PASS_AUGMENT_STREAM`, `EVAL_AUGMENT`) on their own draws. Images arrive as
  uint8 [b, V, H, W, C] and become (x / 255 - mean) / std after the view's ops; vectors
  arrive as float32 [b, V, F] and are normalised, then go through their view's vector ops if
  it has any (`DeviceView.standardised`). Hashable, so `jitted` compiles once per distinct
  augmentation.
  """

  views: tuple[DeviceView, ...]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  seed: int
  neighbours: Optional[DeviceView] = None
  stream: int = random_streams.TRAIN_AUGMENT_STREAM

  def _augment(self, stack: jax.Array, view: DeviceView, keys: jax.Array, slot: int) -> jax.Array:
    """[b, H, W, C] uint8 (or [b, F] float) of view (or neighbour) `slot` -> float32, normalised."""
    view_keys = jax.vmap(lambda k: jax.random.fold_in(k, slot))(keys)
    if view.ops and view.standardised:  # vector ops: on the normalised vectors, every example at once
      return jax.vmap(view)(normalise(stack, self.mean, self.std), view_keys)
    if stack.dtype != jnp.uint8 or not view.ops:
      return normalise(stack, self.mean, self.std)
    x = stack.astype(jnp.float32) * (1.0 / 255.0)
    if jax.default_backend() == "cpu":  # one example at a time: branches an example skips cost nothing
      x = jax.lax.map(lambda args: view(*args), (x, view_keys))
    else:  # accelerators: the whole batch at once, every branch computed and selected
      x = jax.vmap(view)(x, view_keys)
    return (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)

  def __call__(self, batch: Batch, salt: Optional[jax.Array] = None) -> Batch:
    if batch.views.shape[1] != len(self.views):
      raise ValueError(f"The batch has {batch.views.shape[1]} views; this augmentation has {len(self.views)}.")
    keys = example_keys(self.seed, self.stream, batch.example, salt)
    views = jnp.stack([self._augment(batch.views[:, v], view, keys, v) for v, view in enumerate(self.views)], 1)
    neighbours = batch.neighbours
    if neighbours is not None:
      count, view = neighbours.shape[1], self.neighbours or DeviceView()
      neighbours = jnp.stack([self._augment(neighbours[:, j], view, keys, len(self.views) + j)
                              for j in range(count)], 1)
    return batch._replace(views=views, neighbours=neighbours)


def normalise(inputs: jax.Array, mean, std) -> jax.Array:
  """uint8 images -> (x / 255 - mean) / std; float inputs (vectors, [0, 1] images) -> (x - mean) / std."""
  x = inputs.astype(jnp.float32)
  if inputs.dtype == jnp.uint8:
    x = x * (1.0 / 255.0)
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


@functools.lru_cache(maxsize=32)
def jitted(augment: DeviceAugment) -> Callable:
  """`augment(batch, salt)` jitted once per distinct augmentation, for passes outside the train step."""
  return jax.jit(augment.__call__)
