"""The host stage of a view: cut it from the stored image, flip it, and the few ops that stay on the host.

A `HostView` maps one stored example to a uint8 [h, w, C] view at the output size, drawing
from the example's own `np.random.Generator` (pipeline.ExampleStreams). The stored example
is either an in-memory uint8 array [H, W, C] (Fashion-MNIST, CIFAR, user arrays: their fast
numpy path) or a `lazy_images.StoredFile` (BREEDS, tieredImageNet, Cars196, SOP, CUB: the
file's bytes, decoded here at the DCT scale the view's box needs). A file's view stays a
Pillow image through the ops that follow (a flip there costs 0.03 ms at 224 px against 0.4 ms
for numpy's strided copy) and becomes an array once, when it is written into the batch.
Colour, blur, solarize and normalisation happen later, on the device (`augmentation.device`).

Crops (the first op of every view):
  StoredView   'none': the stored image (a file's evaluation view), resized if the size differs.
  PaddedCrop   'crop_flip': a crop of the zero-padded stored image (of a file's evaluation view).
  ResizedCrop  'weak', 'strong', ...: torchvision's RandomResizedCrop box of the whole image.
Then ops on the view (a uint8 [h, w, C] array or a Pillow image): HorizontalFlip, AutoAugment
(Pillow), PerspectiveWarp (numpy).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence, Union

import numpy as np

from coarse2fine.data.augmentation.crop_boxes import ResizedCropBoxes
from coarse2fine.data.augmentation.perspective import RandomPerspective
from coarse2fine.data.files import image_codec
from coarse2fine.data.files.lazy_images import StoredFile

Stored = Union[np.ndarray, StoredFile]  # what a crop reads: an array [H, W, C] uint8, or a file
Op = Callable[[object, np.random.Generator], object]  # a view (uint8 [h, w, C] or Pillow image) -> a view


def pair(size) -> tuple[int, int]:
  if isinstance(size, (int, np.integer)):
    return int(size), int(size)
  h, w = size
  return int(h), int(w)


# ------------------------------------------------------------------------------------
# In-memory resizing: separable bilinear maps as two small matrix products per channel.


@functools.lru_cache(maxsize=512)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] float32 bilinear-interpolation matrix along one axis.

  Output pixel i samples the input at pixel-centre coordinate (i + 0.5) * n_in / n_out - 0.5
  (align_corners=False), clamped to [0, n_in - 1] so the border pixels replicate. No
  antialiasing: in-memory images are small (28-32 px) and their crops are mostly enlarged.
  """
  src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
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
  """Box (top, left, height, width) of uint8 [H, W, C], bilinearly resized to size (h, w): uint8, rounded."""
  top, left, h, w = box
  out_h, out_w = pair(size)
  planes = image[top:top + h, left:left + w].transpose(2, 0, 1).astype(np.float32)  # [C, h, w]
  tmp = resize_matrix(h, out_h) @ planes  # [C, out_h, w]
  channels = tmp.shape[0]
  # The second product as one 2-D matmul over all channels' rows: faster than a batched one.
  out = (tmp.reshape(channels * out_h, w) @ resize_matrix(w, out_w).T).reshape(channels, out_h, out_w)
  out += 0.5
  return np.clip(out, 0.0, 255.0).astype(np.uint8).transpose(1, 2, 0)


def resize_bilinear(image: np.ndarray, size) -> np.ndarray:
  """Resizes a whole uint8 [H, W, C] image to size (h, w)."""
  return resized_crop(image, (0, 0, image.shape[0], image.shape[1]), size)


def stored_view(stored: Stored, size: tuple[int, int]):
  """The stored image at `size`: an array (resized if it differs), or a file's evaluation view (Pillow)."""
  if isinstance(stored, StoredFile):
    box = stored.view.box(stored.image.height, stored.image.width)
    return image_codec.decode_box_pil(stored.image, box, size, stored.channels)
  return stored if stored.shape[:2] == size else resize_bilinear(stored, size)


# ------------------------------------------------------------------------------------
# Crops: (stored example, rng) -> uint8 [h, w, C].


class StoredView:
  """The stored image (a file's evaluation view) at the output size; draws nothing."""

  def __init__(self, size):
    self.size = pair(size)

  def __call__(self, stored: Stored, rng: np.random.Generator) -> np.ndarray:
    return stored_view(stored, self.size)


class PaddedCrop:
  """Zero-pads every side of the stored image by `padding` pixels, then takes a uniformly placed crop."""

  def __init__(self, size, padding: int = 4):
    self.size = pair(size)
    self.padding = int(padding)

  def __call__(self, stored: Stored, rng: np.random.Generator) -> np.ndarray:
    if isinstance(stored, StoredFile):
      image = image_codec.to_array(stored_view(stored, (stored.view.size,) * 2))
    else:
      image = stored
    height, width, channels = image.shape
    out_h, out_w = self.size
    p = self.padding
    if out_h > height + 2 * p or out_w > width + 2 * p:
      raise ValueError(f"Crop {self.size} is larger than the padded image {(height + 2 * p, width + 2 * p)}; "
                       "lower data.augment.size or raise data.augment.padding.")
    u = rng.random(2).tolist()
    # Crop origin in padded coordinates, shifted back to the unpadded image's.
    top = int(u[0] * (height + 2 * p - out_h + 1)) - p
    left = int(u[1] * (width + 2 * p - out_w + 1)) - p
    # Copy only the overlap with the image instead of materialising the padded image.
    y0, y1 = max(top, 0), min(top + out_h, height)
    x0, x1 = max(left, 0), min(left + out_w, width)
    out = np.zeros((out_h, out_w, channels), np.uint8)
    out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    return out


class ResizedCrop:
  """A RandomResizedCrop box of the whole stored image (`crop_boxes.ResizedCropBoxes`), resized to `size`.

  Files are decoded for the box alone, at the coarsest DCT scale that still covers the output,
  and resized with antialiasing (Pillow's bilinear, as torchvision on PIL images); in-memory
  arrays use the numpy bilinear path.
  """

  def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    self.size = pair(size)
    self.boxes = ResizedCropBoxes(tuple(float(s) for s in scale), tuple(float(r) for r in ratio))

  def __call__(self, stored: Stored, rng: np.random.Generator) -> np.ndarray:
    if isinstance(stored, StoredFile):
      box = self.boxes.sample(stored.image.height, stored.image.width, rng)
      return image_codec.decode_box_pil(stored.image, box, self.size, stored.channels)
    box = self.boxes.sample(stored.shape[0], stored.shape[1], rng)
    return resized_crop(stored, box, self.size)


# ------------------------------------------------------------------------------------
# Ops on the cropped view.


class HorizontalFlip:
  """Mirrors left-right with probability p (an array's flip is a view; `HostView` copies once at the end)."""

  def __init__(self, p: float = 0.5):
    self.p = float(p)

  def __call__(self, image, rng: np.random.Generator):
    if rng.random() >= self.p:
      return image
    if isinstance(image, np.ndarray):
      return image[:, ::-1]
    from PIL import Image

    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


class PerspectiveWarp:
  """torchvision's RandomPerspective on uint8: the numpy warp of `perspective`, rounded back to uint8."""

  def __init__(self, distortion_scale: float = 0.5, p: float = 0.5):
    self.warp = RandomPerspective(distortion_scale, p)

  def __call__(self, image, rng: np.random.Generator) -> np.ndarray:
    out = self.warp(image_codec.to_array(image).astype(np.float32), rng)
    return np.clip(out + 0.5, 0.0, 255.0).astype(np.uint8)


class HostView:
  """(stored example, rng) -> uint8 [h, w, C], C-contiguous: a crop, then ops, drawn in turn from rng.

  Checks in-memory inputs against `image_shape` so a config/data mismatch fails loudly.
  Picklable, for grain's worker processes.
  """

  def __init__(self, crop, ops: Sequence[Op], image_shape: Sequence[int]):
    self.crop, self.ops = crop, list(ops)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.out_shape = (*crop.size, self.image_shape[2])

  def view(self, stored: Stored, rng: np.random.Generator):
    """The view as the ops leave it: a uint8 [h, w, C] array (maybe strided) or a Pillow image."""
    if not isinstance(stored, StoredFile) and (stored.dtype != np.uint8 or stored.shape != self.image_shape):
      raise ValueError(f"Expected uint8 {self.image_shape}, got {stored.dtype} {stored.shape}.")
    image = self.crop(stored, rng)
    for op in self.ops:
      image = op(image, rng)
    return image

  def into(self, out: np.ndarray, stored: Stored, rng: np.random.Generator) -> None:
    """Writes the view into `out` [h, w, C] uint8 (a slot of the batch): the one copy it makes."""
    np.copyto(out, image_codec.to_array(self.view(stored, rng)))

  def __call__(self, stored: Stored, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(image_codec.to_array(self.view(stored, rng)))

