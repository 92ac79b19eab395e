"""Host-side augmentation: each op against an independent reference, presets, determinism."""

import colorsys
import math
import pickle

import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from coarse2fine.data import augment

SHAPES = [(28, 28, 1), (32, 32, 3)]


def _image_u8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _image_f(shape, seed=0):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


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
      top = (1 - fx) * crop[y0, x0] + fx * crop[y0, x1]
      bottom = (1 - fx) * crop[y1, x0] + fx * crop[y1, x1]
      out[i, j] = (1 - fy) * top + fy * bottom
  return out


# ------------------------------------------------------------------------------------
# Resizing and cropping.


@pytest.mark.parametrize("box,size", [((3, 5, 17, 11), (32, 32)), ((0, 0, 32, 32), (20, 45)), ((10, 2, 5, 30), (28, 7))])
def test_resized_crop_matches_map_coordinates_and_brute_force(box, size):
  image = _image_f((32, 32, 3), seed=1)
  top, left, h, w = box
  got = augment.resized_crop(image, box, size)
  assert got.shape == (*size, 3)
  crop = image[top:top + h, left:left + w].astype(np.float64)
  ys = np.clip((np.arange(size[0]) + 0.5) * h / size[0] - 0.5, 0, h - 1)
  xs = np.clip((np.arange(size[1]) + 0.5) * w / size[1] - 0.5, 0, w - 1)
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  ref = np.stack([ndimage.map_coordinates(crop[..., c], [yy, xx], order=1) for c in range(3)], axis=-1)
  np.testing.assert_allclose(got, ref, atol=1e-5)
  np.testing.assert_allclose(got, _brute_force_resize(crop, *size), atol=1e-5)


def test_resize_of_full_image_to_same_size_is_identity():
  image = _image_f((28, 28, 1), seed=2)
  np.testing.assert_allclose(augment.resize_bilinear(image, (28, 28)), image, atol=1e-6)
  np.testing.assert_array_equal(augment.resize_matrix(28, 28), np.eye(28, dtype=np.float32))


def test_random_resized_crop_respects_scale_and_ratio():
  scale, ratio = (0.2, 0.9), (3 / 4, 4 / 3)
  op = augment.RandomResizedCrop(64, scale=scale, ratio=ratio)
  rng = np.random.default_rng(0)
  for height, width in [(200, 200), (150, 240), (32, 32)]:
    area = height * width
    for _ in range(500):
      top, left, h, w = op.sample_box(height, width, rng)
      assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
      # Sides are rounded from sqrt(area * r) and sqrt(area / r), so each lies within
      # half a pixel of a crop whose area and aspect ratio are exactly in range.
      lo_area, hi_area = (h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)
      assert lo_area <= scale[1] * area and hi_area >= scale[0] * area
      assert (w - 0.5) / (h + 0.5) <= ratio[1] and (w + 0.5) / (h - 0.5) >= ratio[0]


def test_random_resized_crop_covers_the_ranges_and_positions():
  op = augment.RandomResizedCrop(32, scale=(0.1, 1.0))
  rng = np.random.default_rng(1)
  boxes = np.array([op.sample_box(224, 224, rng) for _ in range(2000)])
  fractions = boxes[:, 2] * boxes[:, 3] / 224**2
  ratios = boxes[:, 3] / boxes[:, 2]
  assert fractions.min() < 0.12 and fractions.max() > 0.95
  assert ratios.min() < 0.77 and ratios.max() > 1.3
  # Placed uniformly over the free range, not centred.
  for pos, side in ((boxes[:, 0], boxes[:, 2]), (boxes[:, 1], boxes[:, 3])):
    free = side < 200
    rel = pos[free] / (224 - side[free])
    assert rel.max() <= 1 and rel.min() < 0.05 and rel.max() > 0.95 and abs(rel.mean() - 0.5) < 0.05


def test_random_resized_crop_falls_back_to_ratio_clamped_centre_crop():
  # A 10 x 200 strip holds no crop with area >= 0.9 of it and ratio <= 4/3.
  op = augment.RandomResizedCrop(8, scale=(0.9, 1.0))
  rng = np.random.default_rng(0)
  assert op.sample_box(10, 200, rng) == ((10 - 10) // 2, (200 - 13) // 2, 10, 13)
  assert op.sample_box(200, 10, rng) == ((200 - 13) // 2, 0, 13, 10)


def test_random_resized_crop_output_is_the_resized_sampled_box():
  op = augment.RandomResizedCrop((24, 20), scale=(0.3, 1.0))
  image = _image_f((32, 32, 3), seed=3)
  box = op.sample_box(32, 32, np.random.default_rng(7))
  got = op(image, np.random.default_rng(7))
  np.testing.assert_allclose(got, augment.resized_crop(image, box, (24, 20)), atol=1e-7)


@pytest.mark.parametrize("shape,padding", [((32, 32, 3), 4), ((28, 28, 1), 2)])
def test_crop_with_padding_is_a_slice_of_the_padded_image(shape, padding):
  image = _image_f(shape, seed=4)
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  op = augment.RandomCropWithPadding(shape[:2], padding=padding)
  offsets = set()
  candidates = [(i, j) for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
  for seed in range(1000):
    got = op(image, np.random.default_rng(seed))
    assert got.shape == shape
    match = next((c for c in candidates if np.array_equal(got, padded[c[0]:c[0] + shape[0], c[1]:c[1] + shape[1]])), None)
    assert match is not None
    offsets.add(match)
  assert len(offsets) == (2 * padding + 1)**2  # every offset is reachable


def test_flip():
  image = _image_f((32, 32, 3), seed=5)
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(augment.RandomHorizontalFlip(1.0)(image, rng), image[:, ::-1])
  np.testing.assert_array_equal(augment.RandomHorizontalFlip(0.0)(image, rng), image)
  flips = [augment.RandomHorizontalFlip(0.5)(image, rng)[0, 0, 0] != image[0, 0, 0] for _ in range(400)]
  assert 0.4 < np.mean(flips) < 0.6


# ------------------------------------------------------------------------------------
# Colour.


def test_brightness_formula():
  image = _image_f((32, 32, 3), seed=6)
  np.testing.assert_allclose(augment.adjust_brightness(image, 1.3), np.minimum(image * 1.3, 1.0), atol=1e-6)
  np.testing.assert_allclose(augment.adjust_brightness(image, 0.6), image * 0.6, atol=1e-6)


def test_brightness_only_jitter_uses_a_factor_in_range():
  image = np.full((8, 8, 3), 0.5, dtype=np.float32)
  op = augment.ColorJitter(brightness=0.4, contrast=0, saturation=0, hue=0, p=1.0)
  values = np.array([op(image, np.random.default_rng(s))[0, 0, 0] for s in range(300)])
  assert values.min() >= 0.5 * 0.6 - 1e-6 and values.max() <= 0.5 * 1.4 + 1e-6
  assert values.min() < 0.5 * 0.65 and values.max() > 0.5 * 1.35
  out = op(image, np.random.default_rng(0))
  np.testing.assert_allclose(out, out[0, 0, 0])  # one factor for the whole image


def test_contrast_and_saturation_formulas():
  image = _image_f((16, 16, 3), seed=7)
  gray = image @ np.array([0.299, 0.587, 0.114])
  ref = np.clip(1.5 * image + (1 - 1.5) * gray.mean(), 0, 1)
  np.testing.assert_allclose(augment.adjust_contrast(image, 1.5), ref, atol=1e-5)
  ref = np.clip(0.3 * image + 0.7 * gray[..., None], 0, 1)
  np.testing.assert_allclose(augment.adjust_saturation(image, 0.3), ref, atol=1e-5)
  zero = augment.adjust_saturation(image, 0.0)
  np.testing.assert_allclose(zero, np.repeat(gray[..., None], 3, axis=-1), atol=1e-6)


def test_grayscale_is_luma():
  image = _image_f((16, 16, 3), seed=8)
  gray = 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]
  np.testing.assert_allclose(augment.to_grayscale(image), np.stack([gray] * 3, axis=-1), atol=1e-6)
  rng = np.random.default_rng(0)
  np.testing.assert_allclose(augment.RandomGrayscale(1.0)(image, rng), np.stack([gray] * 3, axis=-1), atol=1e-6)
  np.testing.assert_array_equal(augment.RandomGrayscale(0.0)(image, rng), image)
  single = _image_f((16, 16, 1), seed=8)
  np.testing.assert_array_equal(augment.RandomGrayscale(1.0)(single, rng), single)


def test_hsv_round_trip_against_colorsys():
  rng = np.random.default_rng(9)
  rgb = rng.random((500, 3)).astype(np.float32)
  rgb[:20] = rng.random((20, 1))  # greys: hue and saturation 0
  rgb[20:40, 0] = rgb[20:40, 1]  # ties for the max
  rgb[40] = 0.0
  hsv_ref = np.array([colorsys.rgb_to_hsv(*p) for p in rgb.astype(np.float64)])
  np.testing.assert_allclose(augment.rgb_to_hsv(rgb), hsv_ref, atol=1e-5)
  rgb_ref = np.array([colorsys.hsv_to_rgb(*p) for p in hsv_ref])
  np.testing.assert_allclose(augment.hsv_to_rgb(hsv_ref), rgb_ref, atol=1e-5)
  np.testing.assert_allclose(augment.hsv_to_rgb(augment.rgb_to_hsv(rgb)), rgb, atol=1e-5)
  # Shape is kept for image-shaped input.
  assert augment.rgb_to_hsv(rgb.reshape(10, 50, 3)).shape == (10, 50, 3)


@pytest.mark.parametrize("shift", [0.0, 0.1, -0.07, 0.5, -0.5])
def test_hue_shift_against_colorsys(shift):
  image = _image_f((12, 12, 3), seed=10)
  image[0, :4] = 0.3  # grey pixels stay grey
  ref = np.array([colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
                  for h, s, v in (colorsys.rgb_to_hsv(*p) for p in image.reshape(-1, 3).astype(np.float64))])
  got = augment.adjust_hue(image, shift)
  np.testing.assert_allclose(got, ref.reshape(image.shape), atol=1e-5)
  if shift == 0.0:
    np.testing.assert_allclose(got, image, atol=1e-5)


def test_jitter_is_identity_on_single_channel_for_saturation_and_hue():
  image = _image_f((28, 28, 1), seed=11)
  op = augment.ColorJitter(brightness=0, contrast=0, saturation=0.9, hue=0.5, p=1.0)
  np.testing.assert_array_equal(op(image, np.random.default_rng(0)), image)


def test_jitter_order_is_random():
  # Brightness then contrast differs from contrast then brightness once clipping bites.
  image = _image_f((16, 16, 3), seed=12)
  op = augment.ColorJitter(brightness=0.9, contrast=0.9, saturation=0, hue=0, p=1.0)
  outputs = set()
  for seed in range(40):
    u = np.random.default_rng(seed).random(9)
    b, c = 0.1 + 1.8 * u[1], 0.1 + 1.8 * u[2]
    got = op(image, np.random.default_rng(seed))
    first = "b" if u[5] < u[6] else "c"
    if first == "b":
      ref = augment.adjust_contrast(augment.adjust_brightness(image, b), c)
    else:
      ref = augment.adjust_brightness(augment.adjust_contrast(image, c), b)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    outputs.add(first)
  assert outputs == {"b", "c"}


def test_jitter_probability():
  image = _image_f((8, 8, 3), seed=13)
  op = augment.ColorJitter(p=0.8)
  changed = [not np.array_equal(op(image, np.random.default_rng(s)), image) for s in range(500)]
  assert 0.72 < np.mean(changed) < 0.88


# ------------------------------------------------------------------------------------
# Blur.


def test_gaussian_kernel():
  k = augment.gaussian_kernel1d(1.3, 7)
  x = np.arange(7) - 3
  ref = np.exp(-x**2 / (2 * 1.3**2))
  np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-7)


@pytest.mark.parametrize("shape,sigma,kernel", [((32, 32, 3), 1.1, 3), ((28, 20, 1), 1.7, 7), ((9, 9, 3), 2.0, 23)])
def test_blur_matches_scipy(shape, sigma, kernel):
  image = _image_f(shape, seed=14)
  ref = image.astype(np.float64)
  for axis in (0, 1):  # scipy's 'mirror' is numpy's/torch's 'reflect' (edge not repeated)
    ref = ndimage.gaussian_filter1d(ref, sigma, axis=axis, mode="mirror", radius=kernel // 2)
  np.testing.assert_allclose(augment.gaussian_blur(image, sigma, kernel), ref, atol=1e-5)


def test_blur_preserves_constants_and_mean():
  constant = np.full((32, 32, 3), 0.37, dtype=np.float32)
  np.testing.assert_allclose(augment.gaussian_blur(constant, 1.5, 5), constant, atol=1e-6)
  image = _image_f((32, 32, 3), seed=15)
  blurred = augment.gaussian_blur(image, 1.5, 5)
  np.testing.assert_allclose(blurred.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=5e-3)
  assert blurred.std() < 0.7 * image.std()  # it does smooth


def test_blur_op_probability_and_sigma_range():
  image = _image_f((16, 16, 3), seed=16)
  op = augment.GaussianBlur(5, sigma=(0.5, 1.0), p=1.0)
  for seed in range(10):
    sigma = 0.5 + 0.5 * np.random.default_rng(seed).random(2)[1]
    np.testing.assert_allclose(op(image, np.random.default_rng(seed)), augment.gaussian_blur(image, sigma, 5), atol=1e-6)
  np.testing.assert_array_equal(augment.GaussianBlur(5, p=0.0)(image, np.random.default_rng(0)), image)
  with pytest.raises(ValueError):
    augment.GaussianBlur(4)


# ------------------------------------------------------------------------------------
# Presets, determinism, views.


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", sorted(augment.AUGMENTATIONS))
def test_presets_dtype_shape_range_and_determinism(kind, shape):
  aug = augment.make_augmentation({"kind": kind}, shape)
  image = _image_u8(shape)
  outs = [aug(image, np.random.default_rng(seed)) for seed in (0, 0, 1, 2, 3)]
  for out in outs:
    assert out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous
    assert out.min() >= 0.0 and out.max() <= 1.0
  np.testing.assert_array_equal(outs[0], outs[1])
  if kind == "none":
    np.testing.assert_allclose(outs[0], image / 255.0, atol=1e-6)
    assert all(np.array_equal(outs[0], o) for o in outs[2:])
  else:
    assert not all(np.array_equal(outs[0], o) for o in outs[2:])


def test_presets_accept_config_dict_overrides_and_size():
  spec = ml_collections.ConfigDict({"kind": "strong", "min_scale": 0.5, "jitter": 0.2, "blur_p": 1.0,
                                    "grayscale_p": 0.0, "size": (16, 24)})
  aug = augment.make_augmentation(spec, (32, 32, 3))
  out = aug(_image_u8((32, 32, 3)), np.random.default_rng(0))
  assert out.shape == (16, 24, 3)
  crop, flip, jitter, gray, blur = aug.ops.ops
  assert crop.scale == (0.5, 1.0) and crop.size == (16, 24)
  assert (jitter.brightness, jitter.hue) == (0.2, 0.05)
  assert gray.p == 0.0 and blur.p == 1.0 and blur.kernel_size == 3
  big = augment.make_augmentation({"kind": "strong"}, (224, 224, 3))
  assert big.ops.ops[-1].kernel_size == 23


def test_crop_flip_spec():
  aug = augment.make_augmentation({"kind": "crop_flip", "padding": 2, "flip": False}, (28, 28, 1))
  (crop,) = aug.ops.ops
  assert crop.padding == 2


def test_make_augmentation_errors():
  with pytest.raises(ValueError, match="crop_flip"):
    augment.make_augmentation({"kind": "nope"}, (32, 32, 3))
  with pytest.raises(ValueError, match="blur_prob"):
    augment.make_augmentation({"kind": "strong", "blur_prob": 0.5}, (32, 32, 3))
  aug = augment.make_augmentation({"kind": "none"}, (32, 32, 3))
  with pytest.raises(ValueError):
    aug(np.zeros((32, 32, 3), np.float32), np.random.default_rng(0))


def test_same_seed_same_output_under_pickling():
  # grain ships the transform to worker processes.
  aug = augment.make_augmentation({"kind": "strong"}, (32, 32, 3))
  copy = pickle.loads(pickle.dumps(aug))
  image = _image_u8((32, 32, 3))
  for seed in range(5):
    np.testing.assert_array_equal(aug(image, np.random.default_rng(seed)), copy(image, np.random.default_rng(seed)))


@pytest.mark.parametrize("shape", SHAPES)
def test_multi_view(shape):
  weak = augment.make_augmentation({"kind": "weak"}, shape)
  strong = augment.make_augmentation({"kind": "strong"}, shape)
  views = augment.multi_view([weak, strong, strong])
  image = _image_u8(shape)
  out = views(image, np.random.default_rng(0))
  assert out.shape == (3, *shape) and out.dtype == np.float32
  assert not np.array_equal(out[1], out[2]) and not np.array_equal(out[0], out[1])
  np.testing.assert_array_equal(out, views(image, np.random.default_rng(0)))
  assert not np.array_equal(out, views(image, np.random.default_rng(1)))


def test_maskcon_presets_compose_the_paper_ops():
  """MaskCon's views (shared/METHODS.md 4.4): op order and defaults of the AutoAugment and perspective kinds."""
  from coarse2fine.data.autoaugment import AutoAugment
  from coarse2fine.data.perspective import RandomPerspective

  def ops(kind, **fields):
    return augment.make_augmentation({"kind": kind, **fields}, (32, 32, 3)).ops.ops

  crop, flip, auto = ops("autoaugment")
  assert isinstance(crop, augment.RandomResizedCrop) and crop.scale == (0.2, 1.0)
  assert isinstance(flip, augment.RandomHorizontalFlip) and isinstance(auto, AutoAugment)
  assert len(auto.policy) == 25
  types = [type(op) for op in ops("strong_perspective")]
  assert types == [augment.RandomResizedCrop, augment.RandomHorizontalFlip, RandomPerspective, augment.ColorJitter,
                   augment.RandomGrayscale, augment.GaussianBlur]
  crop, _, persp = ops("perspective")
  assert crop.scale == (0.2, 1.0) and (persp.distortion_scale, persp.p) == (0.5, 0.5)
  crop, _, persp = ops("weak_perspective", perspective_scale=0.3, perspective_p=1.0)
  assert crop.scale == (0.5, 1.0) and (persp.distortion_scale, persp.p) == (0.3, 1.0)
  assert [type(op) for op in ops("perspective", flip=False)] == [augment.RandomResizedCrop, RandomPerspective]
  jitter = ops("strong_perspective", jitter=0.2)[3]
  assert (jitter.brightness, jitter.hue, jitter.p) == (0.2, 0.05, 0.8)


@pytest.mark.parametrize("kind", ["autoaugment", "strong_perspective", "perspective", "weak_perspective"])
def test_maskcon_presets_at_224_and_under_pickling(kind):
  shape = (224, 224, 3)
  aug = augment.make_augmentation({"kind": kind, "size": 64}, shape)
  copy = pickle.loads(pickle.dumps(aug))
  image = _image_u8(shape)
  for seed in range(3):
    out = aug(image, np.random.default_rng(seed))
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, copy(image, np.random.default_rng(seed)))
