"""Random perspective: the homography solve, the bilinear warp against references, the random op."""

import math
import pickle

import numpy as np
import pytest
from scipy import ndimage

from coarse2fine.data.augmentation import perspective as pp


def _image_f(shape, seed=0):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _quad(rng, height, width, max_move):
  """A random convex quadrilateral: the image corners each moved inward by up to max_move."""
  return pp.image_corners(height, width) + np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * rng.uniform(
      0, max_move, (4, 2))


def _brute_force_warp(image, coeffs):
  """Per-pixel python loop: homography of the pixel centre, bilinear with zero outside, float64."""
  a, b, c, d, e, f, g, h = coeffs
  height, width, channels = image.shape
  img = image.astype(np.float64)

  def pixel(i, j):
    return img[i, j] if 0 <= i < height and 0 <= j < width else np.zeros(channels)

  out = np.zeros((height, width, channels))
  for i in range(height):
    for j in range(width):
      x, y = j + 0.5, i + 0.5
      denom = g * x + h * y + 1
      sx = (a * x + b * y + c) / denom - 0.5  # back to pixel-index units
      sy = (d * x + e * y + f) / denom - 0.5
      j0, i0 = math.floor(sx), math.floor(sy)
      fx, fy = sx - j0, sy - i0
      out[i, j] = ((1 - fy) * ((1 - fx) * pixel(i0, j0) + fx * pixel(i0, j0 + 1)) +
                   fy * ((1 - fx) * pixel(i0 + 1, j0) + fx * pixel(i0 + 1, j0 + 1)))
  return out


# ------------------------------------------------------------------------------------
# The homography.


@pytest.mark.parametrize("seed", range(5))
def test_solved_homography_maps_the_four_corners_exactly(seed):
  rng = np.random.default_rng(seed)
  src = _quad(rng, 32, 48, 12)
  dst = _quad(rng, 32, 48, 12)
  coeffs = pp.solve_homography(src, dst)
  assert coeffs.shape == (8,)
  # Check in plain numpy, with the projective form written out.
  a, b, c, d, e, f, g, h = coeffs
  x, y = src[:, 0], src[:, 1]
  w = g * x + h * y + 1
  np.testing.assert_allclose(np.stack([(a * x + b * y + c) / w, (d * x + e * y + f) / w], axis=1), dst, atol=1e-9)
  np.testing.assert_allclose(np.stack(pp.apply_homography(coeffs, x, y), axis=1), dst, atol=1e-9)


def test_solve_recovers_a_known_homography():
  known = np.array([1.1, 0.05, -3.0, -0.02, 0.9, 2.0, 1e-3, -2e-3])
  src = np.array([[0.0, 0.0], [30.0, 1.0], [29.0, 25.0], [2.0, 27.0]])
  dst = np.stack(pp.apply_homography(known, src[:, 0], src[:, 1]), axis=1)
  np.testing.assert_allclose(pp.solve_homography(src, dst), known, rtol=1e-9, atol=1e-12)
  identity = pp.solve_homography(src, src)
  np.testing.assert_allclose(identity, [1, 0, 0, 0, 1, 0, 0, 0], atol=1e-12)


# ------------------------------------------------------------------------------------
# The warp.


@pytest.mark.parametrize("shape", [(20, 24, 3), (28, 28, 1)])
def test_identity_warp(shape):
  image = _image_f(shape, seed=1)
  out = pp.warp_perspective(image, np.array([1.0, 0, 0, 0, 1.0, 0, 0, 0]))
  assert out.shape == shape and out.dtype == np.float32
  np.testing.assert_allclose(out, image, atol=1e-6)


@pytest.mark.parametrize("shape", [(14, 17, 3), (16, 16, 1)])
def test_known_homography_matches_brute_force_and_map_coordinates(shape):
  height, width, channels = shape
  image = _image_f(shape, seed=2)
  # Output corners moved inward: the image shrinks into a quadrilateral, with zero fill around it.
  end = pp.image_corners(height, width) + np.array([[3, 2], [-1, 4], [-4, -2], [2, -3]])
  coeffs = pp.solve_homography(end, pp.image_corners(height, width))
  got = pp.warp_perspective(image, coeffs)
  ref = _brute_force_warp(image, coeffs)
  np.testing.assert_allclose(got, ref, atol=1e-5)
  # scipy's linear interpolation with the zero-extended ('grid-constant') border agrees too.
  rows, cols = np.mgrid[0:height, 0:width]
  sx, sy = pp.apply_homography(coeffs, cols + 0.5, rows + 0.5)
  scipy_ref = np.stack([ndimage.map_coordinates(image[..., k].astype(np.float64), [sy - 0.5, sx - 0.5], order=1,
                                                mode="grid-constant", cval=0.0) for k in range(channels)], axis=-1)
  np.testing.assert_allclose(got, scipy_ref, atol=1e-5)
  # The interior really is interpolated image content; the corners moved inward are empty.
  assert got[0, 0].max() == 0.0 and got[-1, -1].max() == 0.0
  assert got[height // 2, width // 2].min() > 0.0


def test_warp_of_a_strong_homography_matches_brute_force():
  image = _image_f((12, 12, 3), seed=3)
  coeffs = np.array([0.8, 0.3, 1.0, -0.2, 1.2, -1.5, 0.02, -0.01])
  np.testing.assert_allclose(pp.warp_perspective(image, coeffs), _brute_force_warp(image, coeffs), atol=1e-5)


# ------------------------------------------------------------------------------------
# The random op.


def test_zero_distortion_or_probability_is_identity():
  image = _image_f((32, 32, 3), seed=4)
  for op in (pp.RandomPerspective(0.0, p=1.0), pp.RandomPerspective(0.5, p=0.0)):
    for seed in range(10):
      np.testing.assert_array_equal(op(image, np.random.default_rng(seed)), image)


def test_offsets_cover_the_torchvision_range():
  op = pp.RandomPerspective(0.5, p=1.0)
  rng = np.random.default_rng(5)
  offsets = np.stack([op.sample_offsets(24, 31, rng.random(8)) for _ in range(2000)])
  # Horizontal moves up to int(0.5 * (31 // 2)) = 7 pixels, vertical up to int(0.5 * 12) = 6.
  assert set(np.unique(offsets[:, :, 0])) == set(range(8))
  assert set(np.unique(offsets[:, :, 1])) == set(range(7))


def test_random_perspective_squeezes_the_image_into_the_moved_corners():
  ones = np.ones((32, 32, 1), dtype=np.float32)
  op = pp.RandomPerspective(0.5, p=1.0)  # corners move up to 8 of 32 pixels
  saw_fill = 0
  for seed in range(20):
    out = op(ones, np.random.default_rng(seed))
    assert out.shape == ones.shape and out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(out[16, 16], 1.0, atol=1e-6)  # the centre stays inside the quadrilateral
    # A corner moved inward by 2 pixels or more leaves its corner pixel outside the image: fill.
    u = np.random.default_rng(seed).random(9)
    offsets = op.sample_offsets(32, 32, u[1:])
    corners = [out[0, 0, 0], out[0, -1, 0], out[-1, -1, 0], out[-1, 0, 0]]
    for (dx, dy), value in zip(offsets, corners):
      if dx >= 2 or dy >= 2:
        assert value == 0.0
        saw_fill += 1
  assert saw_fill > 40  # of the 80 corners


def test_random_perspective_determinism_probability_and_pickling():
  image = _image_f((32, 32, 3), seed=6)
  op = pp.RandomPerspective(0.5, p=0.5)
  outs = [op(image, np.random.default_rng(seed)) for seed in range(200)]
  np.testing.assert_array_equal(outs[3], op(image, np.random.default_rng(3)))
  warped = sum(not np.array_equal(o, image) for o in outs)
  assert 70 < warped < 130  # p = 0.5 (less the rare all-zero offsets)
  copy = pickle.loads(pickle.dumps(op))
  np.testing.assert_array_equal(copy(image, np.random.default_rng(3)), outs[3])
  with pytest.raises(ValueError):
    pp.RandomPerspective(1.5)
