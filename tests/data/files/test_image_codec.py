"""Decoding a box of a stored image at the DCT scale it needs, against Pillow decoding it all."""

import io

import numpy as np
import pytest
from PIL import Image

from coarse2fine.data.files import image_codec
from tests.data import images


def _pil_reference(encoded: bytes, box, size, mode="RGB") -> np.ndarray:
  """torchvision's resized_crop on a PIL image: full decode, then the box resized (bilinear, antialiased)."""
  top, left, h, w = box
  image = Image.open(io.BytesIO(encoded)).convert(mode)
  out = np.asarray(image.resize(size[::-1], Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)))
  return out[..., None] if out.ndim == 2 else out


def test_headers_give_the_size_without_decoding():
  photo = images.photo(30, 50, seed=1)
  for fmt, is_jpeg in (("JPEG", True), ("PNG", False), ("WEBP", False)):
    image = image_codec.open_encoded(images.encode(photo, fmt))
    assert (image.height, image.width, image.is_jpeg) == (30, 50, is_jpeg)


@pytest.mark.parametrize("box,size", [((40, 60, 200, 260), (224, 224)), ((0, 0, 375, 500), (224, 224)),
                                      ((100, 100, 90, 60), (64, 48)), ((10.5, 20.25, 300.5, 290.0), (224, 224))])
def test_full_scale_boxes_match_pillow(box, size):
  encoded = images.jpeg(375, 500, seed=2)
  image = image_codec.open_encoded(encoded)
  assert image_codec.dct_factor(image, box[2], box[3], *size) == 1  # none of these boxes is twice the output
  got = image_codec.decode_box(image, box, size)
  want = _pil_reference(encoded, box, size)
  assert got.shape == (*size, 3) and got.dtype == np.uint8
  assert np.abs(got.astype(int) - want).max() <= 1


def test_dct_factor_is_the_coarsest_power_of_two_that_covers_the_output():
  image = image_codec.open_encoded(images.jpeg(64, 64))
  rng = np.random.default_rng(3)
  for _ in range(500):
    bh, bw, oh, ow = rng.uniform(1, 3000), rng.uniform(1, 3000), rng.integers(1, 400), rng.integers(1, 400)
    covering = [f for f in (1, 2, 4, 8) if bh / f >= oh and bw / f >= ow]
    assert image_codec.dct_factor(image, bh, bw, oh, ow) == max(covering or [1])
  png = image_codec.open_encoded(images.encode(images.photo(64, 64), "PNG"))
  assert image_codec.dct_factor(png, 3000, 3000, 10, 10) == 1  # only JPEGs have DCT scales


@pytest.mark.parametrize("box,size,factor", [((0, 0, 1200, 1600), (224, 224), 4), ((300, 200, 700, 900), (160, 200), 4),
                                             ((100, 100, 500, 480), (224, 224), 2), ((0, 0, 1200, 1600), (128, 150), 8)])
def test_large_images_decode_at_a_reduced_scale_and_still_match(monkeypatch, box, size, factor):
  import simplejpeg

  encoded = images.jpeg(1200, 1600, seed=4)
  decoded_shapes = []
  decode = simplejpeg.decode_jpeg

  def recording(*args, **kwargs):
    out = decode(*args, **kwargs)
    decoded_shapes.append(out.shape)
    return out

  monkeypatch.setattr(simplejpeg, "decode_jpeg", recording)
  image = image_codec.open_encoded(encoded)
  got = image_codec.decode_box(image, box, size)
  assert decoded_shapes == [(1200 // factor, 1600 // factor, 3)]  # the JPEG was never decoded at full size
  want = _pil_reference(encoded, box, size)
  difference = np.abs(got.astype(int) - want)
  # The same picture: DCT scaling averages 2-8 pixel blocks where Pillow's filter is a wider triangle.
  assert difference.mean() < 3.0 and np.percentile(difference, 99) <= 10


def test_grey_outputs_png_webp_and_a_cmyk_jpeg():
  photo = images.photo(40, 56, seed=5)
  box, size = (5, 6, 30, 40), (24, 32)
  for fmt in ("JPEG", "PNG", "WEBP"):
    encoded = images.encode(photo, fmt)
    got = image_codec.decode_box(image_codec.open_encoded(encoded), box, size, channels=1)
    assert got.shape == (24, 32, 1)
    difference = np.abs(got.astype(int) - _pil_reference(encoded, box, size, "L"))
    if fmt == "JPEG":  # a JPEG's own luma plane, where Pillow recomputes luma from the decoded RGB
      assert difference.mean() < 1.0 and difference.max() <= 6
    else:
      assert difference.max() <= 1
  cmyk = io.BytesIO()
  Image.fromarray(photo).convert("CMYK").save(cmyk, format="JPEG")  # simplejpeg refuses these; Pillow reads them
  encoded = cmyk.getvalue()
  got = image_codec.decode_box(image_codec.open_encoded(encoded), box, size)
  assert np.abs(got.astype(int) - _pil_reference(encoded, box, size)).max() <= 1


def test_decode_full_and_a_broken_file():
  photo = images.photo(20, 30, seed=6)
  np.testing.assert_array_equal(image_codec.decode_full(images.encode(photo, "PNG")), photo)
  with pytest.raises(Exception):
    image_codec.open_encoded(b"\xff\xd8 not really a jpeg")
