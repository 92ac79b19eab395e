"""Encoded test images: smooth colour fields with edges and texture, as JPEG, PNG or WebP bytes."""

import io

import numpy as np
from PIL import Image


def photo(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
  """uint8 [height, width, channels]: a bicubic-upsampled colour field, a few discs, and grain."""
  rng = np.random.default_rng(seed)
  small = (rng.random((height // 16 + 2, width // 16 + 2, 3)) * 255).astype(np.uint8)
  image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32)
  yy, xx = np.mgrid[:height, :width]
  for _ in range(4):
    cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(3, max(4, min(height, width) // 3))
    image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.random(3) * 255
  image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
  return image[..., :1] if channels == 1 else image


def encode(image: np.ndarray, fmt: str = "JPEG", **options) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format=fmt, **options)
  return buffer.getvalue()


def jpeg(height: int, width: int, seed: int = 0, quality: int = 90) -> bytes:
  return encode(photo(height, width, seed), "JPEG", quality=quality)
