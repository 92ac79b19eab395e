"""The device stage: each op against Pillow, colorsys, scipy or numpy; draws, keys and whole batches."""

import colorsys
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance
from scipy import ndimage, stats

from coarse2fine.data.augmentation import device as dev
from coarse2fine.data.batch import Batch, example_ids
from tests.data.augmentation.test_perspective import _brute_force_warp


def _u8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _unit(u8):
  return jnp.asarray(u8, jnp.float32) / 255.0


# ------------------------------------------------------------------------------------
# Colour, against Pillow's ImageEnhance (uint8, truncating: within 1.3 levels) and numpy.


@pytest.mark.parametrize("factor", [0.0, 0.3, 0.8, 1.25, 1.6])
@pytest.mark.parametrize("op,enhance", [(dev.adjust_brightness, ImageEnhance.Brightness),
                                        (dev.adjust_contrast, ImageEnhance.Contrast),
                                        (dev.adjust_saturation, ImageEnhance.Color)])
def test_blends_match_pillow_image_enhance(op, enhance, factor):
  image = _u8((24, 31, 3), seed=1)
  got = np.asarray(op(_unit(image), factor)) * 255.0
  want = np.asarray(enhance(Image.fromarray(image)).enhance(factor), np.float64)
  np.testing.assert_allclose(got, want, atol=1.3)


def test_blends_on_single_channel_images():
  image = _u8((20, 20, 1), seed=2)
  x = _unit(image)
  np.testing.assert_array_equal(dev.adjust_saturation(x, 0.2), x)  # no colour to saturate
  want = np.asarray(ImageEnhance.Contrast(Image.fromarray(image[..., 0])).enhance(1.4), np.float64)
  np.testing.assert_allclose(np.asarray(dev.adjust_contrast(x, 1.4))[..., 0] * 255.0, want, atol=1.3)


@pytest.mark.parametrize("shift", [0.0, 0.1, -0.07, 0.25, 0.5, -0.5])
def test_hue_against_colorsys(shift):
  rng = np.random.default_rng(3)
  pixels = rng.random((400, 3)).astype(np.float32)
  pixels[:20] = rng.random((20, 1))  # greys stay grey
  pixels[20:40, 0] = pixels[20:40, 1]  # ties for the maximum
  pixels[40] = 0.0
  want = np.array([colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
                   for h, s, v in (colorsys.rgb_to_hsv(*p) for p in pixels.astype(np.float64))])
  got = np.asarray(dev.adjust_hue(jnp.asarray(pixels.reshape(20, 20, 3)), shift)).reshape(-1, 3)
  np.testing.assert_allclose(got, want, atol=2e-6)
  np.testing.assert_array_equal(dev.adjust_hue(jnp.ones((4, 4, 1)) * 0.3, 0.2), jnp.ones((4, 4, 1)) * 0.3)


def test_grayscale_and_solarize_against_numpy():
  image = np.random.default_rng(4).random((16, 12, 3)).astype(np.float32)
  luma = 0.2989 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]  # torchvision's rgb_to_grayscale
  np.testing.assert_allclose(dev.to_grayscale(jnp.asarray(image)), np.stack([luma] * 3, -1), atol=1e-6)
  np.testing.assert_allclose(dev.solarize(jnp.asarray(image), 0.6), np.where(image >= 0.6, 1 - image, image))
  grey = np.random.default_rng(4).random((16, 12, 1)).astype(np.float32)
  np.testing.assert_array_equal(dev.RandomGrayscale(1.0)(jnp.asarray(grey), jax.random.PRNGKey(0)), grey)


def _numpy_jitter(image, factors, shift, order):
  """torchvision's ColorJitter on a float image with given draws, op by op in numpy and colorsys."""
  out = image.astype(np.float64)
  for op in order:
    gray = out @ np.array([0.299, 0.587, 0.114])
    if op == 0:
      out = np.clip(factors[0] * out, 0, 1)
    elif op == 1:
      out = np.clip(factors[1] * out + (1 - factors[1]) * gray.mean(), 0, 1)
    elif op == 2:
      out = np.clip(factors[2] * out + (1 - factors[2]) * gray[..., None], 0, 1)
    else:
      out = np.array([colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
                      for h, s, v in (colorsys.rgb_to_hsv(*p) for p in out.reshape(-1, 3))]).reshape(out.shape)
  return out


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2), (2, 0, 3, 1), (0, 2, 1, 3)])
def test_jitter_with_given_draws_matches_the_ops_in_that_order(order):
  image = np.random.default_rng(5).random((10, 12, 3)).astype(np.float32)
  factors, shift = np.array([1.35, 0.62, 1.3]), 0.08
  jitter = dev.ColorJitter(0.4, 0.4, 0.4, 0.1)
  got = jitter.apply(jnp.asarray(image), jnp.asarray(factors, jnp.float32), shift, jnp.asarray(order))
  np.testing.assert_allclose(got, _numpy_jitter(image, factors, shift, order), atol=2e-5)


def test_jitter_leaves_out_zero_strengths():
  image = np.random.default_rng(6).random((8, 8, 3)).astype(np.float32)
  only_brightness = dev.ColorJitter(0.5, 0.0, 0.0, 0.0)
  got = only_brightness.apply(jnp.asarray(image), jnp.asarray([1.3, 0.2, 0.2]), 0.3, jnp.asarray([3, 2, 1, 0]))
  np.testing.assert_allclose(got, np.clip(1.3 * image, 0, 1), atol=1e-6)


def test_jitter_draws_follow_torchvision_ranges_and_probability():
  jitter = dev.ColorJitter(0.4, 0.3, 0.2, 0.1, p=0.8)
  keys = jax.random.split(jax.random.PRNGKey(0), 4000)
  apply, factors, shift, order = jax.jit(jax.vmap(jitter.draw))(keys)
  apply, factors, shift, order = map(np.asarray, (apply, factors, shift, order))
  assert abs(apply.mean() - 0.8) < 0.02
  for k, strength in enumerate((0.4, 0.3, 0.2)):
    assert stats.kstest(factors[:, k], stats.uniform(1 - strength, 2 * strength).cdf).pvalue > 1e-3
  assert stats.kstest(shift, stats.uniform(-0.1, 0.2).cdf).pvalue > 1e-3
  counts = {perm: 0 for perm in itertools.permutations(range(4))}
  for row in order:
    counts[tuple(row)] += 1
  assert stats.chisquare(list(counts.values())).pvalue > 1e-3  # all 24 orders equally likely


# ------------------------------------------------------------------------------------
# Blur, against scipy (torch's 'reflect' padding is scipy's 'mirror').


@pytest.mark.parametrize("shape,sigma,kernel", [((32, 32, 3), 1.1, 3), ((28, 20, 1), 1.7, 7), ((9, 9, 3), 2.0, 23),
                                                ((40, 36, 3), 0.1, 5)])
def test_blur_matches_scipy(shape, sigma, kernel):
  image = np.random.default_rng(7).random(shape).astype(np.float32)
  want = image.astype(np.float64)
  for axis in (0, 1):
    want = ndimage.gaussian_filter1d(want, sigma, axis=axis, mode="mirror", radius=kernel // 2)
  np.testing.assert_allclose(dev.gaussian_blur(jnp.asarray(image), sigma, kernel), want, atol=1e-5)


def test_blur_kernel_is_torchvisions():
  x = np.arange(7) - 3
  want = np.exp(-x**2 / (2 * 1.3**2))
  np.testing.assert_allclose(dev.gaussian_kernel1d(1.3, 7), want / want.sum(), atol=1e-7)


def test_blur_op_draws_sigma_in_range_and_applies_with_p():
  image = jnp.asarray(np.random.default_rng(8).random((16, 16, 3)), jnp.float32)
  blur = dev.GaussianBlur(5, sigma=(0.5, 1.0), p=0.5)
  keys = jax.random.split(jax.random.PRNGKey(1), 400)
  outputs = np.asarray(jax.jit(jax.vmap(blur, in_axes=(None, 0)))(image, keys))
  blurred = np.array([not np.array_equal(o, image) for o in outputs])
  assert 0.42 < blurred.mean() < 0.58
  first = int(np.flatnonzero(blurred)[0])
  sigmas = np.linspace(0.5, 1.0, 201)  # the sigma used lies in the range: some sigma there reproduces it
  errors = [np.abs(np.asarray(dev.gaussian_blur(image, s, 5)) - outputs[first]).max() for s in sigmas]
  assert min(errors) < 2e-3
  with pytest.raises(ValueError):
    dev.GaussianBlur(4)


# ------------------------------------------------------------------------------------
# Perspective, against the brute-force warp of the host tests.


def test_device_perspective_warp_matches_brute_force():
  image = np.random.default_rng(9).random((14, 17, 3)).astype(np.float32)
  corners = np.asarray(dev.image_corners(14, 17))
  moved = corners + np.array([[3, 2], [-1, 4], [-4, -2], [2, -3]])
  coeffs = dev.solve_homography(jnp.asarray(moved, jnp.float32), jnp.asarray(corners))
  got = dev.warp_perspective(jnp.asarray(image), coeffs)
  np.testing.assert_allclose(got, _brute_force_warp(image, np.asarray(coeffs, np.float64)), atol=1e-4)


def test_random_perspective_moves_corners_inward_by_whole_pixels():
  ones = jnp.ones((32, 32, 1))
  warp = dev.RandomPerspective(0.5, p=1.0)  # corners move up to 8 of 32 pixels
  outputs = np.asarray(jax.jit(jax.vmap(warp, in_axes=(None, 0)))(ones, jax.random.split(jax.random.PRNGKey(2), 50)))
  np.testing.assert_allclose(outputs[:, 16, 16], 1.0, atol=1e-5)  # the centre stays inside
  filled = (outputs[:, [0, 0, -1, -1], [0, -1, -1, 0], 0] == 0).mean()
  assert 0.5 < filled < 1.0  # most corner pixels fall outside their moved corner
  never = dev.RandomPerspective(0.5, p=0.0)(ones, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(never, ones)


# ------------------------------------------------------------------------------------
# Whole batches: keys, views, neighbours, normalisation.


def _batch(views, neighbours=None, number=0):
  n = len(views)
  zeros = np.zeros(n, np.int32)
  return Batch(views=views, coarse=zeros, fine=zeros, index=np.arange(n, dtype=np.int32), dataset=zeros,
               example=example_ids(number, np.arange(n)), neighbours=neighbours)


def _strong_view():
  return dev.DeviceView((dev.ColorJitter(p=1.0), dev.RandomGrayscale(0.2), dev.GaussianBlur(3, p=0.5)))


def test_device_augment_keys_each_example_by_batch_number_and_position():
  images = np.repeat(_u8((1, 1, 8, 8, 3), seed=10), 6, axis=0)  # six copies of one image
  augment = dev.jitted(dev.DeviceAugment((_strong_view(), dev.DeviceView()), mean=(0.5, 0.5, 0.5),
                                          std=(0.25, 0.25, 0.25), seed=3))
  two_views = np.concatenate([images, images], axis=1)
  out = np.asarray(augment(_batch(two_views)).views)
  assert out.shape == (6, 2, 8, 8, 3) and out.dtype == np.float32
  assert len({o.tobytes() for o in out[:, 0]}) == 6  # each position draws its own jitter
  np.testing.assert_allclose(out[:, 1], (images[:, 0] / 255.0 - 0.5) / 0.25, atol=1e-6)  # 'none': normalised
  again = np.asarray(augment(_batch(two_views)).views)
  np.testing.assert_array_equal(again, out)
  other_batch = np.asarray(augment(_batch(two_views, number=1)).views)
  assert not np.array_equal(other_batch[:, 0], out[:, 0])
  # An example's draws do not depend on the rest of the batch: positions 0..2 alone give the same.
  half = np.asarray(augment(_batch(two_views[:3])).views)
  np.testing.assert_array_equal(half, out[:3])
  salted = np.asarray(augment(_batch(two_views), jnp.int32(7)).views)
  assert not np.array_equal(salted[:, 0], out[:, 0])  # a pass's salt re-keys every example


def test_device_augment_neighbours_take_their_own_draws_and_vectors_are_normalised():
  images = _u8((4, 1, 8, 8, 3), seed=11)
  neighbours = np.repeat(images, 3, axis=1)  # three copies of each example as its neighbours
  augment = dev.jitted(dev.DeviceAugment((_strong_view(),), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), seed=0,
                                          neighbours=_strong_view()))
  out = augment(_batch(images, neighbours))
  assert out.neighbours.shape == (4, 3, 8, 8, 3)
  assert len({np.asarray(n).tobytes() for n in out.neighbours[0]}) == 3
  vectors = np.random.default_rng(12).normal(size=(5, 2, 7)).astype(np.float32)
  mean, std = np.arange(7, dtype=np.float32), np.full(7, 2.0, np.float32)
  flat = dev.DeviceAugment((dev.DeviceView(), dev.DeviceView()), tuple(mean), tuple(std), seed=0)
  np.testing.assert_allclose(flat(_batch(vectors)).views, (vectors - mean) / std, rtol=1e-6)
  with pytest.raises(ValueError, match="views"):
    flat(_batch(vectors[:, :1]))


def test_normalise_uint8_and_float_inputs():
  u8 = _u8((3, 4, 4, 3), seed=13)
  mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
  want = (u8 / 255.0 - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(dev.normalise(jnp.asarray(u8), mean, std), want, atol=1e-5)
  np.testing.assert_allclose(dev.normalise(jnp.asarray(u8 / 255.0, jnp.float32), mean, std), want, atol=1e-5)


def test_jitted_is_compiled_once_per_distinct_augmentation():
  a = dev.DeviceAugment((_strong_view(),), (0.5,) * 3, (0.2,) * 3, seed=0)
  b = dev.DeviceAugment((_strong_view(),), (0.5,) * 3, (0.2,) * 3, seed=0)
  assert dev.jitted(a) is dev.jitted(b)  # equal configurations share one compiled function
  assert dev.jitted(a) is not dev.jitted(dev.DeviceAugment((_strong_view(),), (0.5,) * 3, (0.2,) * 3, seed=1))
