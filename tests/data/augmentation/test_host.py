"""The host stage: crops of arrays and of stored files, flips, the view wrapper, against independent references."""

import io
import math
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from coarse2fine.data.augmentation import host
from coarse2fine.data.augmentation.crop_boxes import EvalView, ResizedCropBoxes
from coarse2fine.data.augmentation.perspective import RandomPerspective
from coarse2fine.data.files import image_codec
from coarse2fine.data.files.lazy_images import StoredFile
from tests.data import images


def _u8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _stored(height, width, seed=0, view=EvalView(24, 28)) -> StoredFile:
  encoded = images.encode(images.photo(height, width, seed), "PNG")
  return StoredFile(image_codec.open_encoded(encoded), view, 3)


def _brute_force_resize(crop, out_h, out_w):
  """Per-pixel bilinear sampling at pixel centres with edge clamping, in float64."""
  h, w, c = crop.shape
  out = np.zeros((out_h, out_w, c))
  for i in range(out_h):
    y = min(max((i + 0.5) * h / out_h - 0.5, 0.0), h - 1)
    y0 = int(math.floor(y))
    y1, fy = min(y0 + 1, h - 1), y - y0
    for j in range(out_w):
      x = min(max((j + 0.5) * w / out_w - 0.5, 0.0), w - 1)
      x0 = int(math.floor(x))
      x1, fx = min(x0 + 1, w - 1), x - x0
      out[i, j] = (1 - fy) * ((1 - fx) * crop[y0, x0] + fx * crop[y0, x1]) + fy * ((1 - fx) * crop[y1, x0] + fx * crop[y1, x1])
  return out


# ------------------------------------------------------------------------------------
# In-memory arrays: the numpy bilinear path, rounded to uint8.


@pytest.mark.parametrize("box,size", [((3, 5, 17, 11), (32, 32)), ((0, 0, 32, 32), (20, 45)), ((10, 2, 5, 30), (28, 7))])
def test_resized_crop_of_an_array_matches_map_coordinates_and_brute_force(box, size):
  image = _u8((32, 32, 3), seed=1)
  top, left, h, w = box
  got = host.resized_crop(image, box, size)
  assert got.shape == (*size, 3) and got.dtype == np.uint8
  crop = image[top:top + h, left:left + w].astype(np.float64)
  ys = np.clip((np.arange(size[0]) + 0.5) * h / size[0] - 0.5, 0, h - 1)
  xs = np.clip((np.arange(size[1]) + 0.5) * w / size[1] - 0.5, 0, w - 1)
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  ref = np.stack([ndimage.map_coordinates(crop[..., c], [yy, xx], order=1) for c in range(3)], axis=-1)
  assert np.abs(got - np.floor(ref + 0.5)).max() <= 1  # rounding ties may fall either way in float32
  assert np.abs(got - _brute_force_resize(crop, *size)).max() <= 0.5 + 1e-3


def test_resize_of_a_whole_array_to_its_own_size_is_identity():
  image = _u8((28, 28, 1), seed=2)
  np.testing.assert_array_equal(host.resize_bilinear(image, (28, 28)), image)
  np.testing.assert_array_equal(host.resize_matrix(28, 28), np.eye(28, dtype=np.float32))


def test_resized_crop_op_cuts_the_sampled_box():
  image = _u8((32, 32, 3), seed=3)
  op = host.ResizedCrop((24, 20), scale=(0.3, 1.0))
  box = ResizedCropBoxes((0.3, 1.0)).sample(32, 32, np.random.default_rng(7))
  np.testing.assert_array_equal(op(image, np.random.default_rng(7)), host.resized_crop(image, box, (24, 20)))


@pytest.mark.parametrize("shape,padding", [((32, 32, 3), 4), ((28, 28, 1), 2)])
def test_padded_crop_is_a_slice_of_the_zero_padded_image(shape, padding):
  image = _u8(shape, seed=4)
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  op = host.PaddedCrop(shape[:2], padding=padding)
  offsets = set()
  candidates = [(i, j) for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
  for seed in range(1000):
    got = op(image, np.random.default_rng(seed))
    assert got.shape == shape and got.dtype == np.uint8
    match = next((c for c in candidates if np.array_equal(got, padded[c[0]:c[0] + shape[0], c[1]:c[1] + shape[1]])),
                 None)
    assert match is not None
    offsets.add(match)
  assert len(offsets) == (2 * padding + 1)**2  # every offset is reachable
  with pytest.raises(ValueError, match="larger than the padded image"):
    host.PaddedCrop((40, 40), padding=2)(image, np.random.default_rng(0))


def test_flip():
  image = _u8((8, 8, 3), seed=5)
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(host.HorizontalFlip(1.0)(image, rng), image[:, ::-1])
  pil = Image.fromarray(image)  # a file's view is a Pillow image until it is written into the batch
  np.testing.assert_array_equal(np.asarray(host.HorizontalFlip(1.0)(pil, rng)), image[:, ::-1])
  np.testing.assert_array_equal(host.HorizontalFlip(0.0)(image, rng), image)
  flips = [not np.array_equal(host.HorizontalFlip(0.5)(image, rng), image) for _ in range(400)]
  assert 0.4 < np.mean(flips) < 0.6


# ------------------------------------------------------------------------------------
# Stored files: decoded for the view alone.


def test_resized_crop_of_a_file_is_torchvisions_resized_crop_of_the_whole_image():
  stored = _stored(90, 120, seed=6)
  op = host.ResizedCrop((32, 32), scale=(0.2, 1.0))
  for seed in range(5):
    top, left, h, w = ResizedCropBoxes((0.2, 1.0)).sample(90, 120, np.random.default_rng(seed))
    got = image_codec.to_array(op(stored, np.random.default_rng(seed)))  # files stay Pillow images until written
    # torchvision's F.resized_crop on PIL: crop, then resize (bilinear, antialiased); the box
    # resize reads past the crop's edge where the crop clamps, hence a little slack there.
    pil = Image.open(io.BytesIO(stored.image.data)).convert("RGB")
    want = np.asarray(pil.crop((left, top, left + w, top + h)).resize((32, 32), Image.Resampling.BILINEAR))
    difference = np.abs(got.astype(int) - want)
    assert got.shape == (32, 32, 3) and difference.mean() < 0.5
    assert difference[2:-2, 2:-2].max() <= 1  # away from the edge, where the filters see the same pixels


def test_stored_view_and_padded_crop_of_a_file_start_from_its_evaluation_view():
  stored = _stored(50, 70, seed=7, view=EvalView(24, 28))
  from coarse2fine.data.files.lazy_images import decode_view

  evaluation = decode_view(stored.image.data, stored.view)
  np.testing.assert_array_equal(image_codec.to_array(host.StoredView((24, 24))(stored, np.random.default_rng(0))),
                                evaluation)
  for seed in range(20):
    want = host.PaddedCrop((24, 24), padding=3)(evaluation, np.random.default_rng(seed))
    np.testing.assert_array_equal(host.PaddedCrop((24, 24), padding=3)(stored, np.random.default_rng(seed)), want)


# ------------------------------------------------------------------------------------
# The view wrapper and the host perspective.


def test_host_view_checks_arrays_copies_once_and_pickles():
  view = host.HostView(host.PaddedCrop((16, 16), 2), [host.HorizontalFlip(1.0)], (16, 16, 3))
  image = _u8((16, 16, 3), seed=8)
  out = view(image, np.random.default_rng(0))
  assert out.flags.c_contiguous and out.dtype == np.uint8 and out.shape == (16, 16, 3)
  copy = pickle.loads(pickle.dumps(view))
  np.testing.assert_array_equal(copy(image, np.random.default_rng(0)), out)
  with pytest.raises(ValueError, match="Expected uint8"):
    view(image.astype(np.float32), np.random.default_rng(0))
  with pytest.raises(ValueError, match="Expected uint8"):
    view(_u8((20, 16, 3)), np.random.default_rng(0))


def test_host_perspective_is_the_numpy_warp_rounded():
  image = _u8((24, 24, 3), seed=9)
  for seed in range(10):
    want = RandomPerspective(0.5, p=1.0)(image.astype(np.float32), np.random.default_rng(seed))
    got = host.PerspectiveWarp(0.5, p=1.0)(image, np.random.default_rng(seed))
    assert got.dtype == np.uint8
    assert np.abs(got - np.floor(np.clip(want, 0, 255) + 0.5)).max() <= 1
