"""Decoding stored images straight into a view: header, DCT-scaled JPEG decode, antialiased box resize.

`decode_box(image, box, size)` is the host half of every file-backed view: the JPEG is
decoded at the coarsest DCT scale (1, 1/2, 1/4 or 1/8) at which the box still covers the
output size, the box is resized with Pillow's antialiased bilinear filter (torchvision's
`resized_crop` on PIL images) straight to the output size, and the result is uint8; no
full-resolution float copy is ever made.

Decoders, chosen by measurement (benchmarks/input_pipeline.py --stage=codecs; a 500x375
JPEG at quality 90 on one core of the 2-core CPU): simplejpeg (libjpeg-turbo) 1.1 ms,
OpenCV 1.1 ms, Pillow 1.8 ms (plus a copy to reach numpy). libjpeg-turbo's other M/8 scales
(3/8, 7/8, ...) decode *slower* than full size (2.3 ms at 7/8), so only powers of two are
used. Resizers: Pillow's antialiased `resize(box=...)` 0.8-1.3 ms; OpenCV's INTER_LINEAR is
6x faster but aliases when it shrinks, and INTER_AREA is a different filter from
torchvision's, so Pillow it is. Non-JPEG files (PNG, WebP, ...), and JPEGs simplejpeg
refuses (CMYK, a PNG named .JPEG, as a few ImageNet files are), go through Pillow.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Optional

import numpy as np

JPEG_MAGIC = b"\xff\xd8"
DCT_FACTORS = (8, 4, 2, 1)  # libjpeg's power-of-two scales, coarsest first


@dataclasses.dataclass(frozen=True)
class EncodedImage:
  """An encoded image file's bytes and its size (from the header; nothing decoded yet)."""

  data: bytes
  height: int
  width: int
  is_jpeg: bool


def open_encoded(data: bytes) -> EncodedImage:
  """Reads the header of an encoded image (JPEG, PNG, WebP, ... anything Pillow opens)."""
  data = bytes(data)
  if data[:2] == JPEG_MAGIC:
    try:
      import simplejpeg

      height, width, _, _ = simplejpeg.decode_jpeg_header(data)
      return EncodedImage(data, int(height), int(width), True)
    except ValueError:
      pass  # not a baseline/progressive JPEG simplejpeg reads: Pillow below
  from PIL import Image

  with Image.open(io.BytesIO(data)) as image:
    width, height = image.size
  return EncodedImage(data, int(height), int(width), False)


def dct_factor(image: EncodedImage, box_height: float, box_width: float, out_height: int, out_width: int) -> int:
  """The largest of 8, 4, 2, 1 by which a JPEG may be downscaled while the box still covers the output."""
  if not image.is_jpeg:
    return 1
  for factor in DCT_FACTORS:
    if box_height >= factor * out_height and box_width >= factor * out_width:
      return factor
  return 1


def _decode_jpeg(image: EncodedImage, factor: int, channels: int) -> Optional[np.ndarray]:
  """[ceil(H / factor), ceil(W / factor), channels] uint8, or None if simplejpeg cannot read the file."""
  import simplejpeg

  try:
    return simplejpeg.decode_jpeg(image.data, colorspace="GRAY" if channels == 1 else "RGB",
                                  min_height=-(-image.height // factor), min_width=-(-image.width // factor),
                                  min_factor=factor)
  except ValueError:
    return None


def _decode_pil(image: EncodedImage, channels: int):
  from PIL import Image

  with Image.open(io.BytesIO(image.data)) as opened:
    return opened.convert("L" if channels == 1 else "RGB")


def decode_box_pil(image: EncodedImage, box, size, channels: int = 3):
  """The box (top, left, height, width) of `image`, resized to size (h, w): a Pillow image ("RGB" or "L").

  Coordinates are in the original image's pixels and may be fractional (`crop_boxes.EvalView`).
  Host ops that follow (flip, AutoAugment) work on the Pillow image without a copy to numpy.
  """
  from PIL import Image

  top, left, height, width = (float(v) for v in box)
  out_h, out_w = size
  factor = dct_factor(image, height, width, out_h, out_w)
  pixels = _decode_jpeg(image, factor, channels) if image.is_jpeg else None
  if pixels is None:
    factor, pil = 1, _decode_pil(image, channels)
  else:
    # libjpeg's scaled pixel i covers original pixels [i f, (i + 1) f): the box scales by 1/f.
    mode = "L" if channels == 1 else "RGB"
    pil = Image.frombuffer(mode, (pixels.shape[1], pixels.shape[0]), pixels, "raw", mode, 0, 1)  # no copy
  crop = (left / factor, top / factor, (left + width) / factor, (top + height) / factor)
  return pil.resize((out_w, out_h), Image.Resampling.BILINEAR, box=crop)


def to_array(image) -> np.ndarray:
  """A Pillow image ("RGB" or "L") or an array -> uint8 [H, W, C]."""
  out = np.asarray(image)
  return out[..., None] if out.ndim == 2 else out


def decode_box(image: EncodedImage, box, size, channels: int = 3) -> np.ndarray:
  """`decode_box_pil` as uint8 [h, w, channels]."""
  return to_array(decode_box_pil(image, box, size, channels))


def decode_full(data: bytes, channels: int = 3) -> np.ndarray:
  """The whole image at full size, uint8 [H, W, channels]."""
  image = open_encoded(data)
  return decode_box(image, (0, 0, image.height, image.width), (image.height, image.width), channels)

