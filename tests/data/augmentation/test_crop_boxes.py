"""Crop boxes: torchvision's RandomResizedCrop draw, given uniforms and in distribution; evaluation views."""

import io
import math

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from coarse2fine.data.augmentation.crop_boxes import EvalView, ResizedCropBoxes
from coarse2fine.data.files import lazy_images
from coarse2fine.data.pipeline import ExampleStreams
from tests.data import images


def _torchvision_get_params(height, width, scale, ratio, uniform, integer):
  """torchvision.transforms.RandomResizedCrop.get_params, transcribed with the draws supplied.

  uniform(low, high) stands for torch.empty(1).uniform_(low, high), integer(n) for
  torch.randint(0, n, size=(1,)).
  """
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * uniform(scale[0], scale[1])
    aspect_ratio = math.exp(uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target_area * aspect_ratio)))
    h = int(round(math.sqrt(target_area / aspect_ratio)))
    if 0 < w <= width and 0 < h <= height:
      i = integer(height - h + 1)
      j = integer(width - w + 1)
      return i, j, h, w
  in_ratio = float(width) / float(height)
  if in_ratio < min(ratio):
    w = width
    h = int(round(w / min(ratio)))
  elif in_ratio > max(ratio):
    h = height
    w = int(round(h * max(ratio)))
  else:
    w = width
    h = height
  return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("scale,ratio", [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.2, 1.0), (3 / 4, 4 / 3)),
                                         ((0.5, 1.0), (0.5, 2.0)), ((0.9, 1.0), (3 / 4, 4 / 3))])
@pytest.mark.parametrize("height,width", [(375, 500), (224, 224), (32, 32), (10, 200), (500, 120)])
def test_boxes_are_torchvisions_for_the_same_draws(height, width, scale, ratio):
  boxes = ResizedCropBoxes(scale, ratio)
  rng = np.random.default_rng(height * 1000 + width)
  for _ in range(300):
    u = rng.random(boxes.draws)
    attempts = iter(u[:-2])  # the attempts consume (area, ratio) pairs in order; the position comes last
    want = _torchvision_get_params(height, width, scale, ratio,
                                   lambda lo, hi: lo + (hi - lo) * next(attempts),
                                   lambda n, position=iter(u[-2:]): int(next(position) * n))
    assert boxes.box_from_uniforms(height, width, u.tolist()) == want


def test_the_centre_fallback_clamps_the_ratio():
  boxes = ResizedCropBoxes((0.9, 1.0))  # a 10 x 200 strip holds no box of area >= .9 and ratio <= 4/3
  rng = np.random.default_rng(0)
  assert boxes.sample(10, 200, rng) == (0, (200 - 13) // 2, 10, 13)
  assert boxes.sample(200, 10, rng) == ((200 - 13) // 2, 0, 13, 10)
  with pytest.raises(ValueError, match="ranges"):
    ResizedCropBoxes((0.5, 0.2))


def _reference_boxes(height, width, scale, n):
  """n boxes from torchvision itself where installed, else from the transcription on numpy's generator."""
  try:
    import torch
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    dummy = torch.zeros(1, height, width)
    return np.array([RandomResizedCrop.get_params(dummy, list(scale), [3 / 4, 4 / 3]) for _ in range(n)])
  except ImportError:
    rng = np.random.default_rng(0)
    return np.array([_torchvision_get_params(height, width, scale, (3 / 4, 4 / 3), rng.uniform, rng.integers)
                     for _ in range(n)])


@pytest.mark.parametrize("height,width,scale", [(375, 500, (0.08, 1.0)), (224, 224, (0.2, 1.0))])
def test_box_distribution_matches_the_reference(height, width, scale):
  """Drawn through the pipeline's per-example streams, the boxes follow torchvision's distribution."""
  n = 3000
  keys = np.stack([np.zeros(n, int), np.arange(n) // 256, np.arange(n) % 256], 1)
  streams = ExampleStreams(keys)
  boxes = ResizedCropBoxes(scale)
  ours = np.array([boxes.sample(height, width, streams[i]) for i in range(n)])
  theirs = _reference_boxes(height, width, scale, n)
  features = lambda b: {"area": b[:, 2] * b[:, 3], "aspect": b[:, 3] / b[:, 2],
                        "top": b[:, 0] / np.maximum(height - b[:, 2], 1), "left": b[:, 1] / np.maximum(width - b[:, 3], 1)}
  for name, a in features(ours).items():
    assert stats.ks_2samp(a, features(theirs)[name]).pvalue > 1e-3, name


# ------------------------------------------------------------------------------------
# Evaluation views, decoded, against torchvision's Resize + CenterCrop (or Pillow doing the same).


def _resize_centre_crop(image: Image.Image, resize: int, size: int) -> np.ndarray:
  try:
    from torchvision import transforms

    if resize:
      return np.asarray(transforms.CenterCrop(size)(transforms.Resize(resize)(image)))
    return np.asarray(transforms.Resize((size, size))(image))
  except ImportError:
    width, height = image.size
    if not resize:
      return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    new = (resize, int(resize * height / width)) if width <= height else (int(resize * width / height), resize)
    resized = image.resize(new, Image.Resampling.BILINEAR)
    left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
    return np.asarray(resized.crop((left, top, left + size, top + size)))


@pytest.mark.parametrize("height,width,resize,size", [(375, 500, 256, 224), (500, 333, 256, 224), (90, 60, 40, 32),
                                                      (375, 500, 0, 224), (50, 80, 0, 64), (84, 84, 84, 84)])
def test_evaluation_view_is_resize_and_centre_crop_in_one_pass(height, width, resize, size):
  encoded = images.encode(images.photo(height, width, seed=1), "PNG")  # lossless: only the resampling differs
  got = lazy_images.decode_view(encoded, EvalView(size, resize))
  want = _resize_centre_crop(Image.open(io.BytesIO(encoded)).convert("RGB"), resize, size)
  assert got.shape == want.shape == (size, size, 3)
  assert np.abs(got.astype(int) - want).max() <= 1


def test_evaluation_view_checks_its_sizes():
  with pytest.raises(ValueError, match="resize"):
    EvalView(224, 200)
  top, left, h, w = EvalView(224, 256).box(375, 500)  # resized to 341 x 256 (torchvision truncates), then cropped
  assert (h, w) == (pytest.approx(224 * 375 / 256), pytest.approx(224 * 500 / 341))
  assert (top, left) == (pytest.approx(16 * 375 / 256), pytest.approx(58 * 500 / 341))
