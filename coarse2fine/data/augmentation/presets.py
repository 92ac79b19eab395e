"""Augmentation presets: each view kind as a host stage (cut, resize, flip) and a device stage (colour, blur).

`make_view(spec, image_shape)` builds the preset `spec.kind`:

  kind                host stage (uint8, per example)                  device stage (jitted, per batch)
  none                the stored image (a file's evaluation view)      -
  crop_flip           padded random crop, flip                          -
  weak                RandomResizedCrop (area .5-1), flip               -
  strong              RandomResizedCrop (.2-1), flip                    colour jitter, grayscale, blur, solarize
  autoaugment         RandomResizedCrop (.2-1), flip                    AutoAugment (CIFAR-10 policy)
  strong_perspective  RandomResizedCrop (.2-1), flip                    perspective, then as strong
  perspective         RandomResizedCrop (.2-1), flip                    perspective
  weak_perspective    RandomResizedCrop (.5-1), flip                    perspective

Vectors (single cells, tabular rows) have no host stage. Their one kind with ops is
`mask_noise`: on the device, after the standardisation, each feature is zeroed (set to its
mean) with probability `feature_mask_p`, then N(0, `feature_noise`^2) is added to every
feature, as in contrastive learning on tabular and single-cell data. Every image kind leaves
a vector as stored (standardised only).

Normalisation by the dataset's mean and std always runs on the device, last. AutoAugment and
RandomPerspective have a host form too (Pillow; numpy) that `autoaugment_on` and
`perspective_on` = "host" select. The device form is the default: on an accelerator it costs
next to nothing beside the step and frees the host cores, which decode. On a 2-core CPU, per
224-px image (benchmarks/input_pipeline.py): perspective 1.3 ms as a device op (normalisation
included) against 6.7 ms on the host; AutoAugment about 0.65 ms as a device op against 0.5 ms
in Pillow, so a CPU-only run that is input-bound may pick `autoaugment_on="host"`.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional, Sequence

import ml_collections
import numpy as np

from coarse2fine.data.augmentation import device as dev
from coarse2fine.data.augmentation import device_autoaugment, host
from coarse2fine.data.augmentation.autoaugment import AutoAugment
from coarse2fine.engine import random_streams


class ViewAugmentation(NamedTuple):
  """One view kind's two stages: `host` (stored example, rng) -> uint8 [h, w, C]; `device` its jitted ops."""

  host: host.HostView
  device: dev.DeviceView


def _get(spec, key: str, default):
  value = spec.get(key, None)
  return default if value is None else value


def blur_kernel_size(out_size: tuple[int, int]) -> int:
  """About 10% of the smaller side, made odd, at least 3 (SimCLR's choice)."""
  k = max(3, int(round(0.1 * min(out_size))))
  return k if k % 2 else k + 1


def _flip(spec) -> list:
  return [host.HorizontalFlip(0.5)] if _get(spec, "flip", True) else []


def _resized_crop(spec, out_size, min_scale: float):
  return host.ResizedCrop(out_size, scale=(_get(spec, "min_scale", min_scale), _get(spec, "max_scale", 1.0)))


def _colour_and_blur(spec, out_size) -> list:
  """Colour jitter, grayscale, blur and solarize of the 'strong' presets (MoCo v2's, with SimCLR's blur)."""
  jitter = float(_get(spec, "jitter", 0.4))
  kernel = int(_get(spec, "blur_kernel", blur_kernel_size(out_size)))
  return [
      dev.ColorJitter(jitter, jitter, jitter, float(_get(spec, "hue", jitter / 4)), p=_get(spec, "jitter_p", 0.8)),
      dev.RandomGrayscale(_get(spec, "grayscale_p", 0.2)),
      dev.GaussianBlur(kernel, sigma=tuple(_get(spec, "blur_sigma", (0.1, 2.0))), p=_get(spec, "blur_p", 0.5)),
      dev.RandomSolarize(_get(spec, "solarize_threshold", 0.5), p=_get(spec, "solarize_p", 0.0)),
  ]


def _side(spec, field: str) -> str:
  """Where an op with both forms runs: `spec[field]`, "device" (the default) or "host"."""
  where = _get(spec, field, "device")
  if where not in ("host", "device"):
    raise ValueError(f"data.augment.{field} must be 'host' or 'device', got {where!r}.")
  return where


def _perspective(spec) -> tuple[list, list]:
  """(host ops, device ops) of RandomPerspective, on the side `perspective_on` names."""
  scale, p = _get(spec, "perspective_scale", 0.5), _get(spec, "perspective_p", 0.5)
  if _side(spec, "perspective_on") == "host":
    return [host.PerspectiveWarp(scale, p)], []
  return [], [dev.RandomPerspective(scale, p)]


# kind -> builder(spec, image_shape, out_size) -> (crop, host ops, device ops).
def _none(spec, image_shape, out_size):
  return host.StoredView(out_size), [], []


def _crop_flip(spec, image_shape, out_size):
  return host.PaddedCrop(out_size, padding=_get(spec, "padding", 4)), _flip(spec), []


def _weak(spec, image_shape, out_size):
  return _resized_crop(spec, out_size, 0.5), _flip(spec), []


def _strong(spec, image_shape, out_size):
  return _resized_crop(spec, out_size, 0.2), _flip(spec), _colour_and_blur(spec, out_size)


def _autoaugment(spec, image_shape, out_size):
  """MaskCon's CIFAR/ImageNet32 query view: crop, flip, AutoAugment's CIFAR-10 policy."""
  if _side(spec, "autoaugment_on") == "host":
    return _resized_crop(spec, out_size, 0.2), _flip(spec) + [AutoAugment()], []
  return _resized_crop(spec, out_size, 0.2), _flip(spec), [device_autoaugment.AutoAugment()]


def _strong_perspective(spec, image_shape, out_size):
  """MaskCon's Cars196 query view: crop, flip, perspective, then the 'strong' colour and blur."""
  host_ops, device_ops = _perspective(spec)
  return _resized_crop(spec, out_size, 0.2), _flip(spec) + host_ops, device_ops + _colour_and_blur(spec, out_size)


def _perspective_view(spec, image_shape, out_size):
  """MaskCon's SOP query view: crop (strong scale range), flip, perspective."""
  host_ops, device_ops = _perspective(spec)
  return _resized_crop(spec, out_size, 0.2), _flip(spec) + host_ops, device_ops


def _weak_perspective(spec, image_shape, out_size):
  """MaskCon's Cars196/SOP key view: 'weak' (crop, flip) plus perspective."""
  host_ops, device_ops = _perspective(spec)
  return _resized_crop(spec, out_size, 0.5), _flip(spec) + host_ops, device_ops


def _mask_noise(spec) -> list:
  """The vector view: feature masking, then Gaussian noise, on the standardised vector."""
  p, std = float(_get(spec, "feature_mask_p", 0.2)), float(_get(spec, "feature_noise", 0.5))
  if not 0.0 <= p < 1.0:
    raise ValueError(f"data.augment.feature_mask_p must lie in [0, 1), got {p}.")
  if std < 0:
    raise ValueError(f"data.augment.feature_noise must be >= 0, got {std}.")
  return [dev.FeatureMask(p), dev.GaussianNoise(std)]


# Vector kind -> builder(spec) -> device ops on the standardised vector.
VECTOR_AUGMENTATIONS: dict[str, Callable] = {
    "mask_noise": _mask_noise,
}

AUGMENTATIONS: dict[str, Callable] = {
    "none": _none,
    "crop_flip": _crop_flip,
    "weak": _weak,
    "strong": _strong,
    "autoaugment": _autoaugment,
    "strong_perspective": _strong_perspective,
    "perspective": _perspective_view,
    "weak_perspective": _weak_perspective,
}

# Every spec field any preset reads. One spec may carry fields for several kinds (the
# pipeline reuses one config per view and only swaps `kind`), so fields are checked
# against this union, which still catches typos.
SPEC_FIELDS = frozenset({
    "kind", "size", "flip", "padding", "min_scale", "max_scale", "jitter", "hue", "jitter_p",
    "grayscale_p", "blur_p", "blur_sigma", "blur_kernel", "solarize_p", "solarize_threshold",
    "perspective_scale", "perspective_p", "perspective_on", "autoaugment_on", "feature_mask_p", "feature_noise",
})


def make_view(spec: Mapping, image_shape: Sequence[int]) -> ViewAugmentation:
  """Builds the preset `spec.kind` for uint8 images of `image_shape` = (H, W, C).

  spec is an ml_collections.ConfigDict or a dict. Fields (all optional except kind):
    size: output (h, w) or int; default the input's (H, W).
    flip: random horizontal flip (every kind but 'none'); default True.
    padding: zero padding of 'crop_flip' in pixels; default 4.
    min_scale, max_scale: RandomResizedCrop area range; defaults 0.5 ('weak',
      'weak_perspective') or 0.2 (the others), and 1.0.
    jitter: brightness/contrast/saturation strength ('strong', 'strong_perspective'); default 0.4.
    hue: hue strength (same kinds); default jitter / 4.
    jitter_p, grayscale_p, blur_p, solarize_p: probabilities (same kinds); defaults .8, .2, .5, 0.
    blur_sigma: (low, high) in pixels; default (0.1, 2.0).
    blur_kernel: odd kernel size; default about 10% of the output size.
    solarize_threshold: in [0, 1] units; default 0.5.
    perspective_scale: RandomPerspective distortion scale, the largest corner move as a
      fraction of half the side (the perspective kinds); default 0.5.
    perspective_p: probability of the perspective warp (same kinds); default 0.5.
    perspective_on, autoaugment_on: where RandomPerspective and AutoAugment run, "device"
      (default) or "host".
    feature_mask_p, feature_noise: the vector kind `mask_noise`'s (`make_views`); images ignore them.
  """
  kind = spec.get("kind", None)
  if kind in VECTOR_AUGMENTATIONS:
    raise ValueError(f"Augmentation kind {kind!r} is for vectors, but the data are images of shape "
                     f"{tuple(image_shape)}; use an image kind: {sorted(AUGMENTATIONS)}.")
  if kind not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation kind {kind!r}; valid kinds: {sorted(AUGMENTATIONS)}.")
  unknown = set(spec.keys()) - SPEC_FIELDS
  if unknown:
    raise ValueError(f"Unknown augmentation fields {sorted(unknown)}; known: {sorted(SPEC_FIELDS)}.")
  if len(image_shape) != 3 or image_shape[2] not in (1, 3):
    raise ValueError(f"image_shape must be (H, W, 1) or (H, W, 3), got {tuple(image_shape)}.")
  out_size = host.pair(_get(spec, "size", tuple(image_shape[:2])))
  crop, host_ops, device_ops = AUGMENTATIONS[kind](spec, image_shape, out_size)
  return ViewAugmentation(host.HostView(crop, host_ops, image_shape), dev.DeviceView(tuple(device_ops)))


def view_spec(augment_config: Mapping, kind: str) -> ml_collections.ConfigDict:
  """The config's `data.augment` fields with `kind` set."""
  spec = ml_collections.ConfigDict(dict(augment_config))
  spec.kind = kind
  return spec


def make_views(augment_config: Mapping, kinds: Sequence[str], image_shape: Optional[Sequence[int]]
               ) -> list[ViewAugmentation]:
  """The views of `kinds` for images of `image_shape`; for vectors (None), device ops of the vector kinds only.

  An image kind on vectors is a view without any op (the standardised vector), as the vector
  configs' "none" views are; a name no table knows is an error.
  """
  if image_shape is None:
    views = []
    for kind in kinds:
      if kind in VECTOR_AUGMENTATIONS:
        ops = VECTOR_AUGMENTATIONS[kind](view_spec(augment_config, kind))
        views.append(ViewAugmentation(None, dev.DeviceView(tuple(ops), standardised=True)))
      elif kind in AUGMENTATIONS:
        views.append(ViewAugmentation(None, dev.DeviceView()))
      else:
        raise ValueError(f"Unknown augmentation kind {kind!r} in data.views; vector kinds: "
                         f"{sorted(VECTOR_AUGMENTATIONS)}, image kinds: {sorted(AUGMENTATIONS)}.")
    return views
  return [make_view(view_spec(augment_config, kind), image_shape) for kind in kinds]


def device_augment(views: Sequence[ViewAugmentation], mean: np.ndarray, std: np.ndarray, seed: int,
                   neighbours: Optional[ViewAugmentation] = None, stream: int = random_streams.TRAIN_AUGMENT_STREAM
                   ) -> dev.DeviceAugment:
  """The device stage of a batch of `views` (and neighbours in `neighbours`'s kind)."""
  as_floats = lambda values: tuple(float(v) for v in np.asarray(values, np.float32).reshape(-1))
  return dev.DeviceAugment(tuple(v.device for v in views), as_floats(mean), as_floats(std), int(seed),
                           neighbours=None if neighbours is None else neighbours.device, stream=stream)
