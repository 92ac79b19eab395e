"""AutoAugment's CIFAR-10 policy: the table, each op against a numpy reference, the random op."""

import pickle

import numpy as np
import pytest
from PIL import Image

from coarse2fine.data.augmentation import autoaugment as aa

NO_MAGNITUDE = {"AutoContrast", "Equalize", "Invert"}


def _u8(shape, seed=0, low=0, high=256):
  return np.random.default_rng(seed).integers(low, high, shape, dtype=np.uint8)


def _pil(u8):
  return Image.fromarray(u8)


def _arr(img):
  return np.asarray(img)


# ------------------------------------------------------------------------------------
# The policy table and magnitudes.


def test_cifar10_policy_table():
  policy = aa.CIFAR10_POLICY
  assert len(policy) == 25
  for sub_policy in policy:
    assert len(sub_policy) == 2
    for name, p, bin_index in sub_policy:
      assert name in aa.OPS
      assert 0.0 <= p <= 1.0
      assert (bin_index is None) == (name in NO_MAGNITUDE)
      assert bin_index is None or 0 <= bin_index <= 9
  # Rows of Cubuk et al. 2019's CIFAR-10 table, checked by hand against the paper.
  assert policy[0] == (("Invert", 0.1, None), ("Contrast", 0.2, 6))
  assert policy[3] == (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9))
  assert policy[14] == (("Solarize", 0.5, 2), ("Invert", 0.0, None))
  assert policy[22] == (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3))
  assert policy[24] == (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None))
  # The CIFAR-10 policy never uses ShearX (it appears in the SVHN and ImageNet ones).
  assert {name for sub in policy for name, _, _ in sub} == set(aa.OPS) - {"ShearX"}


def test_magnitudes():
  assert [aa.magnitude("Posterize", b, 32, 32) for b in range(10)] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
  np.testing.assert_allclose([aa.magnitude("Solarize", b, 32, 32) for b in range(10)], np.linspace(255, 0, 10))
  np.testing.assert_allclose([aa.magnitude("Rotate", b, 32, 32) for b in range(10)], np.linspace(0, 30, 10))
  np.testing.assert_allclose(aa.magnitude("ShearY", 9, 32, 32), 0.3)
  np.testing.assert_allclose(aa.magnitude("Brightness", 3, 32, 32), 0.3)
  # Translations scale with the side they move along: 150/331 of it at bin 9.
  np.testing.assert_allclose(aa.magnitude("TranslateX", 9, 20, 40), 150 / 331 * 40)
  np.testing.assert_allclose(aa.magnitude("TranslateY", 9, 20, 40), 150 / 331 * 20)
  assert aa.magnitude("Equalize", None, 32, 32) == 0.0
  with pytest.raises(ValueError):
    aa.magnitude("Rotate", 10, 32, 32)


# ------------------------------------------------------------------------------------
# The ops, on uint8 PIL images, against numpy references.


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 3)])
def test_invert(shape):
  x = _u8(shape)
  np.testing.assert_array_equal(_arr(aa.invert(_pil(x), 0.0)), 255 - x)


@pytest.mark.parametrize("threshold", [0.0, 28.33, 128.0, 198.33, 255.0])
def test_solarize(threshold):
  x = _u8((16, 16, 3), seed=1)
  ref = np.where(x >= threshold, 255 - x, x)
  np.testing.assert_array_equal(_arr(aa.solarize(_pil(x), threshold)), ref)


@pytest.mark.parametrize("bits", range(1, 9))
def test_posterize(bits):
  x = _u8((16, 16, 3), seed=2)
  mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
  np.testing.assert_array_equal(_arr(aa.posterize(_pil(x), float(bits))), x & mask)


def _equalize_reference(channel):
  """Histogram equalisation of one uint8 channel, transcribed from the classic PIL/torchvision rule.

  The step is (pixels - count of the highest occupied level) // 255; level i maps to
  (pixels below i + step // 2) // step; with one occupied level or a zero step, identity.
  """
  hist = np.bincount(channel.reshape(-1), minlength=256)
  occupied = hist[hist > 0]
  if len(occupied) <= 1:
    return channel
  step = (occupied.sum() - occupied[-1]) // 255
  if step == 0:
    return channel
  below = np.concatenate([[0], np.cumsum(hist)[:-1]])
  lut = np.minimum((below + step // 2) // step, 255).astype(np.uint8)
  return lut[channel]


@pytest.mark.parametrize("low,high", [(0, 256), (40, 90), (100, 101)])
def test_equalize(low, high):
  x = _u8((40, 40, 3), seed=3, low=low, high=high)
  # Skew one channel so the channels' luts differ.
  x[..., 1] = (x[..., 1].astype(np.int32) * x[..., 1] // 255).astype(np.uint8)
  ref = np.stack([_equalize_reference(x[..., c]) for c in range(3)], axis=-1)
  np.testing.assert_array_equal(_arr(aa.equalize(_pil(x), 0.0)), ref)
  gray = x[..., 0]
  np.testing.assert_array_equal(_arr(aa.equalize(_pil(gray), 0.0)), _equalize_reference(gray))


def test_equalize_small_image_with_few_levels():
  # 255, 255, 255 and 10 pixels at levels 10, 20, 30, 200: step (775 - 10) // 255 = 3, and
  # level i maps to (pixels below i + 1) // 3: 1 // 3, 256 // 3, 511 // 3, 766 // 3.
  x = np.repeat(np.array([10, 20, 30, 200], dtype=np.uint8), [255, 255, 255, 10])
  x = np.random.default_rng(0).permutation(x).reshape(25, 31)
  got = _arr(aa.equalize(_pil(x), 0.0))
  lut = {10: 0, 20: 85, 30: 170, 200: 255}
  np.testing.assert_array_equal(got, np.vectorize(lut.get)(x))
  np.testing.assert_array_equal(got, _equalize_reference(x))


def test_autocontrast():
  x = _u8((16, 16, 3), seed=4, low=50, high=180)
  x[..., 2] = 77  # a flat channel is left alone
  got = _arr(aa.autocontrast(_pil(x), 0.0)).astype(np.int32)
  for c in range(2):
    lo, hi = int(x[..., c].min()), int(x[..., c].max())
    ref = np.floor((x[..., c].astype(np.float64) - lo) * 255.0 / (hi - lo))
    assert np.abs(got[..., c] - ref).max() <= 1  # PIL truncates x * scale + offset in float
    assert got[..., c].min() == 0 and got[..., c].max() >= 254
  np.testing.assert_array_equal(got[..., 2], 77)


@pytest.mark.parametrize("shape", [(12, 12), (12, 12, 3)])
def test_rotate_90_is_rot90(shape):
  x = _u8(shape, seed=5)
  np.testing.assert_array_equal(_arr(aa.rotate(_pil(x), 90.0)), np.rot90(x, 1))  # counter-clockwise
  np.testing.assert_array_equal(_arr(aa.rotate(_pil(x), -90.0)), np.rot90(x, -1))


def test_rotate_fills_with_zero_and_keeps_the_centre():
  x = np.full((33, 33, 3), 200, dtype=np.uint8)
  x[16, 16] = 7
  got = _arr(aa.rotate(_pil(x), 30.0))
  assert (got[0, 0] == 0).all() and (got[-1, -1] == 0).all()  # corners come from outside
  assert (got[16, 16] == 7).all()


def _shift(x, n, axis):
  """np.roll with zero fill instead of wrap-around."""
  out = np.roll(x, n, axis=axis)
  index = [slice(None)] * x.ndim
  index[axis] = slice(0, n) if n >= 0 else slice(n, None)
  out[tuple(index)] = 0
  return out


@pytest.mark.parametrize("n", [0, 3, -5, 14])
@pytest.mark.parametrize("shape", [(10, 16), (10, 16, 3)])
def test_translate_is_a_zero_filled_roll(n, shape):
  x = _u8(shape, seed=6)
  np.testing.assert_array_equal(_arr(aa.translate_x(_pil(x), float(n))), _shift(x, n, axis=1))
  np.testing.assert_array_equal(_arr(aa.translate_y(_pil(x), float(n))), _shift(x, n, axis=0))


def test_translate_truncates_the_magnitude():
  x = _u8((10, 16, 3), seed=7)
  np.testing.assert_array_equal(_arr(aa.translate_x(_pil(x), 3.9)), _shift(x, 3, axis=1))
  np.testing.assert_array_equal(_arr(aa.translate_x(_pil(x), -3.9)), _shift(x, -3, axis=1))


@pytest.mark.parametrize("m", [0.3, -0.2])
def test_shear_matches_nearest_neighbour_reference(m):
  x = _u8((12, 10, 3), seed=8)
  h, w = x.shape[:2]
  rows, cols = np.mgrid[0:h, 0:w]
  # Output pixel centre (col + .5, row + .5) reads the input pixel containing
  # (col + .5 + m (row + .5), row + .5) for ShearX, and the transpose for ShearY.
  ref_x = np.zeros_like(x)
  src = np.floor(cols + 0.5 + m * (rows + 0.5)).astype(int)
  inside = (src >= 0) & (src < w)
  ref_x[inside] = x[rows[inside], src[inside]]
  np.testing.assert_array_equal(_arr(aa.shear_x(_pil(x), m)), ref_x)
  ref_y = np.zeros_like(x)
  src = np.floor(rows + 0.5 + m * (cols + 0.5)).astype(int)
  inside = (src >= 0) & (src < h)
  ref_y[inside] = x[src[inside], cols[inside]]
  np.testing.assert_array_equal(_arr(aa.shear_y(_pil(x), m)), ref_y)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 3)])
def test_enhancers_at_factor_one_are_identity_and_brightness_zero_is_black(shape):
  x = _u8(shape, seed=9)
  for op in (aa.brightness, aa.color, aa.contrast, aa.sharpness):
    np.testing.assert_array_equal(_arr(op(_pil(x), 0.0)), x)
  np.testing.assert_array_equal(_arr(aa.brightness(_pil(x), -1.0)), 0)


def test_brightness_scales():
  x = _u8((8, 8, 3), seed=10, high=128)
  got = _arr(aa.brightness(_pil(x), 0.5)).astype(np.float64)
  assert np.abs(got - 1.5 * x).max() <= 1


def test_contrast_factor_zero_is_the_mean_grey():
  x = _u8((8, 8), seed=11)
  got = _arr(aa.contrast(_pil(x), -1.0))
  np.testing.assert_array_equal(got, np.full_like(x, int(x.mean() + 0.5)))


def test_color_factor_zero_is_luma_and_a_no_op_on_grey():
  x = _u8((8, 8, 3), seed=12)
  got = _arr(aa.color(_pil(x), -1.0)).astype(np.float64)
  luma = x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  assert np.abs(got - luma[..., None]).max() <= 1
  gray = x[..., 0]
  np.testing.assert_array_equal(_arr(aa.color(_pil(gray), 0.9)), gray)


def test_sharpness_factor_zero_is_the_smoothing_filter():
  x = _u8((10, 10), seed=13).astype(np.float64)
  got = _arr(aa.sharpness(_pil(x.astype(np.uint8)), -1.0)).astype(np.float64)
  # PIL's SMOOTH kernel: 5 at the centre, 1 on the 8 neighbours, / 13; borders kept.
  kernel = np.ones((3, 3))
  kernel[1, 1] = 5
  smooth = sum(kernel[i, j] * x[i:i + 8, j:j + 8] for i in range(3) for j in range(3)) / 13
  assert np.abs(got[1:-1, 1:-1] - smooth).max() <= 1
  np.testing.assert_array_equal(got[0], x[0])
  np.testing.assert_array_equal(got[:, -1], x[:, -1])


# ------------------------------------------------------------------------------------
# The random op.


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_autoaugment_dtype_shape_and_determinism(shape):
  op = aa.AutoAugment()
  image = _u8(shape, seed=14)
  outs = [op(image, np.random.default_rng(seed)) for seed in range(40)]
  for out in outs:
    assert out.shape == shape and out.dtype == np.uint8
  for seed in (0, 7):
    np.testing.assert_array_equal(outs[seed], op(image, np.random.default_rng(seed)))
  changed = [o for o in outs if not np.array_equal(o, image)]
  assert len(changed) >= 10  # about 60% of draws apply at least one op
  assert len({o.tobytes() for o in outs}) >= 10  # different seeds, different outputs


def test_pil_round_trip_is_exact():
  x = _u8((6, 5, 3), seed=15)
  for image in (x, x[..., :1]):
    pil = aa.to_pil(image)
    assert pil.mode == ("L" if image.shape[2] == 1 else "RGB")
    np.testing.assert_array_equal(_arr(pil).reshape(image.shape), image)
    back = aa.from_pil(pil)
    assert back.shape == image.shape and back.dtype == np.uint8
    np.testing.assert_array_equal(back, image)


def test_sub_policy_ops_apply_in_order():
  x = _u8((8, 8, 3), seed=16)
  # Invert, then solarize at bin 0 (threshold 255): only the pixels that were 0 flip back to 0.
  op = aa.AutoAugment(((("Invert", 1.0, None), ("Solarize", 1.0, 0)),))
  inverted = 255 - x
  np.testing.assert_array_equal(op(x, np.random.default_rng(0)), np.where(inverted >= 255, 0, inverted))


def test_signed_magnitudes_take_both_signs():
  x = _u8((32, 32, 3), seed=17)
  op = aa.AutoAugment(((("TranslateX", 1.0, 9), ("Invert", 0.0, None)),))
  n = int(150 / 331 * 32)  # 14 pixels at bin 9
  right, left = _shift(x, n, axis=1), _shift(x, -n, axis=1)
  seen = set()
  for seed in range(20):
    out = op(x, np.random.default_rng(seed))
    seen.add("right" if np.array_equal(out, right) else "left" if np.array_equal(out, left) else "other")
  assert seen == {"right", "left"}


def test_zero_probability_ops_never_apply():
  x = _u8((8, 8, 3), seed=18)
  op = aa.AutoAugment(((("Invert", 0.0, None), ("Equalize", 0.0, None)),))
  for seed in range(20):
    assert op(x, np.random.default_rng(seed)) is x


def test_sub_policies_are_drawn_uniformly():
  # Five sub-policies, each inverting one channel or leaving the image alone; count which ran.
  x = np.zeros((4, 4, 3), dtype=np.uint8)
  op = aa.AutoAugment([(("Invert", 1.0, None), ("Invert", 0.0, None))] + [(("Invert", 0.0, None),) * 2] * 4)
  inverted = sum(op(x, np.random.default_rng(seed)).max() == 255 for seed in range(2000))
  assert abs(inverted / 2000 - 0.2) < 0.03


def test_bad_policy_and_pickling():
  with pytest.raises(ValueError):
    aa.AutoAugment(((("Zoom", 0.5, 3), ("Invert", 0.1, None)),))
  with pytest.raises(ValueError):
    aa.AutoAugment(((("Rotate", 1.5, 3), ("Invert", 0.1, None)),))
  op = aa.AutoAugment()
  copy = pickle.loads(pickle.dumps(op))
  x = _u8((32, 32, 3), seed=19)
  for seed in range(5):
    np.testing.assert_array_equal(op(x, np.random.default_rng(seed)), copy(x, np.random.default_rng(seed)))
