"""AutoAugment on the device: every op against the Pillow op the host form applies, and the policy's draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from coarse2fine.data.augmentation import autoaugment as aa
from coarse2fine.data.augmentation import device_autoaugment as daa


def _u8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _pillow(name, image, m):
  return aa.from_pil(aa.OPS[name](aa.to_pil(image), m)).astype(np.float64)


_APPLY_OP = jax.jit(daa.AutoAugment().apply_op)  # op and magnitude traced: one compile per image shape


def _device(name, image, m):
  out = _APPLY_OP(jnp.asarray(image, jnp.float32), jnp.int32(daa.NAMES.index(name)), jnp.float32(m))
  return np.asarray(out, np.float64)


CASES = [("ShearX", 0.3), ("ShearX", -0.17), ("ShearY", 0.2), ("TranslateX", 9.6), ("TranslateX", -4.0),
         ("TranslateY", 7.0), ("Rotate", 30.0), ("Rotate", -13.3), ("Rotate", 0.0), ("Brightness", 0.6),
         ("Brightness", -0.9), ("Color", 0.7), ("Color", -1.0), ("Contrast", 0.4), ("Contrast", -0.6),
         ("Sharpness", 0.9), ("Sharpness", -1.0), ("Posterize", 4.0), ("Posterize", 7.0), ("Solarize", 200.0),
         ("Solarize", 0.0), ("AutoContrast", 0.0), ("Equalize", 0.0), ("Invert", 0.0)]


@pytest.mark.parametrize("shape", [(20, 24, 3), (16, 16, 1)])
@pytest.mark.parametrize("name,m", CASES)
def test_each_op_matches_pillow(name, m, shape):
  image = _u8(shape, seed=len(name))
  if name == "AutoContrast":
    image = (image // 2 + 40).astype(np.uint8)  # a range to stretch
  got, want = _device(name, image, m), _pillow(name, image, m)
  assert got.shape == want.shape
  if name in daa.GEOMETRIC:
    # Where a pixel centre maps exactly onto a pixel edge, Pillow's accumulated doubles and our
    # float32 may floor to either side; everywhere else the warp is exact.
    on_edge = _source_on_pixel_edge(name, m, *shape[:2])
    np.testing.assert_array_equal(got[~on_edge], want[~on_edge])
  elif name == "AutoContrast":  # Pillow's x * scale + offset in doubles can land a hair below an integer
    assert np.abs(got - want).max() <= 1 and np.mean(got != want) < 0.05
  else:
    np.testing.assert_array_equal(got, want)


def _source_on_pixel_edge(name, m, h, w):
  """[h, w] bool: output pixels whose source coordinate (float64) lies within 1e-4 of an integer."""
  angle = -np.radians(m)
  cos, sin = round(np.cos(angle), 15), round(np.sin(angle), 15)
  matrix = {  # the float64 matrices of the Pillow calls in coarse2fine/data/augmentation/autoaugment.py
      "ShearX": [1, m, 0, 0, 1, 0], "ShearY": [1, 0, 0, m, 1, 0], "TranslateX": [1, 0, -int(m), 0, 1, 0],
      "TranslateY": [1, 0, 0, 0, 1, -int(m)],
      "Rotate": [cos, sin, cos * -w / 2 + sin * -h / 2 + w / 2, -sin, cos, -sin * -w / 2 + cos * -h / 2 + h / 2],
  }[name]
  yy, xx = np.mgrid[:h, :w] + 0.5
  sx = matrix[0] * xx + matrix[1] * yy + matrix[2]
  sy = matrix[3] * xx + matrix[4] * yy + matrix[5]
  edge = lambda v: np.abs(v - np.round(v)) < 1e-4
  return edge(sx) | edge(sy)


def test_equalize_and_autocontrast_on_flat_and_two_level_images():
  flat = np.full((8, 8, 3), 77, np.uint8)
  for name in ("Equalize", "AutoContrast"):
    np.testing.assert_array_equal(_device(name, flat, 0.0), _pillow(name, flat, 0.0))
  two = np.where(_u8((8, 8, 1), seed=3) > 128, 200, 10).astype(np.uint8)
  np.testing.assert_array_equal(_device("Equalize", two, 0.0), _pillow("Equalize", two, 0.0))


def test_policy_draws_sub_policies_uniformly_with_their_probabilities():
  # Five sub-policies, each inverting with certainty or never; count how often the image was inverted.
  policy = ((("Invert", 1.0, None), ("Invert", 0.0, None)),) + (((("Invert", 0.0, None),) * 2),) * 4
  op = daa.AutoAugment(policy)
  image = jnp.zeros((4, 4, 3))
  keys = jax.random.split(jax.random.PRNGKey(0), 2000)
  inverted = np.asarray(jax.jit(jax.vmap(op, in_axes=(None, 0)))(image, keys))[:, 0, 0, 0] == 1.0
  assert stats.binomtest(int(inverted.sum()), 2000, 0.2).pvalue > 1e-3


def test_cifar10_policy_outputs_stay_images_and_vary():
  image = jnp.asarray(_u8((32, 32, 3), seed=4), jnp.float32) / 255.0
  keys = jax.random.split(jax.random.PRNGKey(1), 64)
  out = np.asarray(jax.jit(jax.vmap(daa.AutoAugment(), in_axes=(None, 0)))(image, keys))
  assert out.shape == (64, 32, 32, 3) and out.min() >= 0 and out.max() <= 1
  np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-3)  # integer levels, as Pillow's
  changed = [not np.array_equal(o, image) for o in out]
  assert 0.4 < np.mean(changed) < 0.95  # most draws apply at least one op
