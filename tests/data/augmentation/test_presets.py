"""Augmentation presets: which ops each kind runs on the host and on the device, and both stages end to end."""

import pickle

import jax
import ml_collections
import numpy as np
import pytest

from coarse2fine.data.augmentation import device as dev
from coarse2fine.data.augmentation import device_autoaugment, host
from coarse2fine.data.augmentation import presets as augment
from coarse2fine.data.augmentation.autoaugment import AutoAugment
from coarse2fine.data.batch import Batch, example_ids

SHAPES = [(28, 28, 1), (32, 32, 3)]


def _u8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _types(ops):
  return [type(op) for op in ops]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", sorted(augment.AUGMENTATIONS))
def test_host_stage_of_every_kind_gives_seeded_uint8_views(kind, shape):
  view = augment.make_view({"kind": kind}, shape)
  image = _u8(shape)
  outs = [view.host(image, np.random.default_rng(seed)) for seed in (0, 0, 1, 2, 3)]
  for out in outs:
    assert out.shape == shape and out.dtype == np.uint8 and out.flags.c_contiguous
  np.testing.assert_array_equal(outs[0], outs[1])
  if kind == "none":
    assert all(np.array_equal(image, o) for o in outs)
  else:
    assert not all(np.array_equal(outs[0], o) for o in outs[2:])


def test_which_ops_run_where():
  ops = lambda kind, **fields: augment.make_view({"kind": kind, **fields}, (32, 32, 3))
  colour = [dev.ColorJitter, dev.RandomGrayscale, dev.GaussianBlur, dev.RandomSolarize]
  strong = ops("strong")
  assert isinstance(strong.host.crop, host.ResizedCrop) and strong.host.crop.boxes.scale == (0.2, 1.0)
  assert _types(strong.host.ops) == [host.HorizontalFlip] and _types(strong.device.ops) == colour
  weak = ops("weak")
  assert weak.host.crop.boxes.scale == (0.5, 1.0) and weak.device.ops == ()
  crop_flip = ops("crop_flip", padding=2, flip=False)
  assert isinstance(crop_flip.host.crop, host.PaddedCrop) and crop_flip.host.crop.padding == 2
  assert crop_flip.host.ops == [] and crop_flip.device.ops == ()
  auto = ops("autoaugment", autoaugment_on="host")
  assert _types(auto.host.ops) == [host.HorizontalFlip, AutoAugment] and len(auto.host.ops[1].policy) == 25
  on_device = ops("autoaugment", autoaugment_on="device")
  assert _types(on_device.host.ops) == [host.HorizontalFlip]
  assert _types(on_device.device.ops) == [device_autoaugment.AutoAugment]
  # MaskCon's Cars and SOP views: the perspective warp before the colour ops.
  assert _types(ops("strong_perspective", perspective_on="device").device.ops) == [dev.RandomPerspective] + colour
  assert _types(ops("perspective", perspective_on="device").device.ops) == [dev.RandomPerspective]
  persp = ops("weak_perspective", perspective_scale=0.3, perspective_p=1.0, perspective_on="device")
  assert persp.host.crop.boxes.scale == (0.5, 1.0)
  assert (persp.device.ops[0].distortion_scale, persp.device.ops[0].p) == (0.3, 1.0)
  on_host = ops("strong_perspective", perspective_on="host")
  assert _types(on_host.host.ops) == [host.HorizontalFlip, host.PerspectiveWarp]
  assert _types(on_host.device.ops) == colour
  assert _types(ops("perspective", flip=False, perspective_on="device").host.ops) == []
  # Both run on the device unless the spec says "host".
  assert _types(ops("perspective").device.ops) == [dev.RandomPerspective]
  assert _types(ops("autoaugment").device.ops) == [device_autoaugment.AutoAugment]


def test_config_dict_fields_reach_the_ops():
  spec = ml_collections.ConfigDict({"kind": "strong", "min_scale": 0.5, "jitter": 0.2, "blur_p": 1.0,
                                    "grayscale_p": 0.0, "solarize_p": 0.3, "size": (16, 24)})
  view = augment.make_view(spec, (32, 32, 3))
  assert view.host(_u8((32, 32, 3)), np.random.default_rng(0)).shape == (16, 24, 3)
  assert view.host.crop.boxes.scale == (0.5, 1.0) and view.host.crop.size == (16, 24)
  jitter, gray, blur, solarize = view.device.ops
  assert (jitter.brightness, jitter.hue, jitter.p) == (0.2, 0.05, 0.8)
  assert gray.p == 0.0 and blur.p == 1.0 and blur.kernel_size == 3 and solarize.p == 0.3
  assert augment.make_view({"kind": "strong"}, (224, 224, 3)).device.ops[2].kernel_size == 23


def test_make_view_errors():
  with pytest.raises(ValueError, match="crop_flip"):
    augment.make_view({"kind": "nope"}, (32, 32, 3))
  with pytest.raises(ValueError, match="blur_prob"):
    augment.make_view({"kind": "strong", "blur_prob": 0.5}, (32, 32, 3))
  with pytest.raises(ValueError, match="perspective_on"):
    augment.make_view({"kind": "perspective", "perspective_on": "gpu"}, (32, 32, 3))
  with pytest.raises(ValueError, match="image_shape"):
    augment.make_view({"kind": "weak"}, (32, 32, 2))


@pytest.mark.parametrize("kind", ["autoaugment", "strong_perspective", "perspective", "weak_perspective", "strong"])
def test_views_at_224_survive_pickling(kind):
  view = augment.make_view({"kind": kind, "size": 64, "perspective_on": "host"}, (224, 224, 3))
  copy = pickle.loads(pickle.dumps(view.host))
  image = _u8((224, 224, 3))
  for seed in range(3):
    out = view.host(image, np.random.default_rng(seed))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, copy(image, np.random.default_rng(seed)))


@pytest.mark.parametrize("shape", SHAPES)
def test_both_stages_of_a_strong_and_a_weak_view(shape):
  views = augment.make_views({"min_scale": 0.2}, ("strong", "weak"), shape)
  images = _u8((6, *shape), seed=1)
  rngs = [np.random.default_rng(i) for i in range(6)]
  host_views = np.stack([np.stack([v.host(image, rng) for v in views]) for image, rng in zip(images, rngs)])
  mean, std = np.full(shape[-1], 0.4, np.float32), np.full(shape[-1], 0.2, np.float32)
  device = augment.device_augment(views, mean, std, seed=0)
  zeros = np.zeros(6, np.int32)
  batch = Batch(views=host_views, coarse=zeros, fine=zeros, index=zeros, dataset=zeros,
                example=example_ids(0, np.arange(6)))
  out = np.asarray(jax.jit(device)(batch).views)
  assert out.shape == (6, 2, *shape) and out.dtype == np.float32
  np.testing.assert_allclose(out[:, 1], (host_views[:, 1] / 255.0 - mean) / std, atol=1e-5)  # weak: host only
  unit = out[:, 0] * std + mean
  assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5  # colour ops stay in [0, 1]
  assert not np.allclose(unit, host_views[:, 0] / 255.0, atol=1e-3)  # and do change the strong view


def _vector_batch(vectors, number=0):
  n = len(vectors)
  zeros = np.zeros(n, np.int32)
  return Batch(views=vectors, coarse=zeros, fine=zeros, index=np.arange(n, dtype=np.int32), dataset=zeros,
               example=example_ids(number, np.arange(n)))


def test_mask_noise_masks_then_adds_noise_to_standardised_vectors():
  spec = ml_collections.ConfigDict({"feature_mask_p": 0.3, "feature_noise": 0.0, "padding": 2})
  made = augment.make_views(spec, ("mask_noise", "none", "crop_flip"), None)
  assert _types(made[0].device.ops) == [dev.FeatureMask, dev.GaussianNoise] and made[0].device.standardised
  assert made[1].device.ops == () and made[2].device.ops == ()  # image kinds leave vectors as stored
  rng = np.random.default_rng(0)
  n, f = 64, 200
  mean, std = rng.normal(size=f).astype(np.float32), rng.uniform(0.5, 2, f).astype(np.float32)
  vectors = (mean + std * rng.normal(size=(n, 1, f))).astype(np.float32)
  vectors = np.repeat(vectors, 3, axis=1)
  out = np.asarray(jax.jit(augment.device_augment(made, mean, std, seed=1))(_vector_batch(vectors)).views)
  standardised = (vectors[:, 0] - mean) / std
  np.testing.assert_allclose(out[:, 1], standardised, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out[:, 2], standardised, rtol=1e-5, atol=1e-5)
  # Without noise, a feature is either its standardised value or exactly 0 (its mean), 0 in 30% of cases.
  masked = out[:, 0] == 0
  np.testing.assert_allclose(out[:, 0][~masked], standardised[~masked], rtol=1e-5, atol=1e-5)
  assert abs(masked.mean() - 0.3) < 0.02  # 12800 draws: std of the share ~0.004
  # With noise only, the difference from the standardised vector is N(0, 0.5^2).
  spec.feature_mask_p, spec.feature_noise = 0.0, 0.5
  made = augment.make_views(spec, ("mask_noise",), None)
  noisy = np.asarray(augment.device_augment(made, mean, std, seed=1)(_vector_batch(vectors[:, :1])).views[:, 0])
  residual = noisy - standardised
  assert abs(residual.mean()) < 0.02 and abs(residual.std() - 0.5) < 0.02
  # Each example draws its own: two identical rows get different views; batch number 1 draws anew.
  again = np.asarray(augment.device_augment(made, mean, std, seed=1)(_vector_batch(vectors[:, :1], 1)).views)
  assert not np.array_equal(again[:, 0], noisy)


def test_vector_kinds_are_refused_for_images_and_unknown_kinds_for_vectors():
  with pytest.raises(ValueError, match="for vectors"):
    augment.make_view({"kind": "mask_noise"}, (28, 28, 1))
  with pytest.raises(ValueError, match="data.views"):
    augment.make_views({}, ("cutout",), None)
  for field, value in (("feature_mask_p", 1.0), ("feature_noise", -1.0)):
    with pytest.raises(ValueError, match=f"data.augment.{field}"):
      augment.make_views({field: value}, ("mask_noise",), None)
