"""Where a view is cut from its image: crop boxes in the stored image's pixels.

A box is (top, left, height, width). Random boxes follow torchvision's
`RandomResizedCrop.get_params`; the evaluation boxes give torchvision's deterministic views
(`Resize(r) + CenterCrop(s)`, or `Resize((s, s))`) as one box of the original image, so a
decoder can cut and resize in one pass (`coarse2fine.data.files.image_codec.decode_box`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MAX_ATTEMPTS = 10  # torchvision's tries before the centre fallback


@dataclasses.dataclass(frozen=True)
class ResizedCropBoxes:
  """Random boxes of random area fraction and aspect ratio, as torchvision's `RandomResizedCrop.get_params`.

  Up to 10 attempts draw an area fraction uniformly in `scale` and an aspect ratio
  (width / height) log-uniformly in `ratio`; the first box that fits is placed uniformly.
  If none fits, the central box of the whole image clamped to the ratio range is used.
  """

  scale: tuple[float, float] = (0.08, 1.0)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)

  def __post_init__(self):
    if not 0 < self.scale[0] <= self.scale[1] or not 0 < self.ratio[0] <= self.ratio[1]:
      raise ValueError(f"Bad RandomResizedCrop ranges: scale={self.scale}, ratio={self.ratio}; "
                       "both need 0 < low <= high.")

  @property
  def draws(self) -> int:
    """Uniform numbers one box consumes: two per attempt, then two for its position."""
    return 2 * MAX_ATTEMPTS + 2

  def box_from_uniforms(self, height: int, width: int, u) -> tuple[int, int, int, int]:
    """The box for `draws` uniforms in [0, 1): (area, log-ratio) per attempt, then (top, left)."""
    area = height * width
    (s0, s1) = self.scale
    l0, l1 = math.log(self.ratio[0]), math.log(self.ratio[1])
    for k in range(MAX_ATTEMPTS):
      target = area * (s0 + (s1 - s0) * u[2 * k])
      aspect = math.exp(l0 + (l1 - l0) * u[2 * k + 1])
      w = round(math.sqrt(target * aspect))
      h = round(math.sqrt(target / aspect))
      if 0 < w <= width and 0 < h <= height:
        return int(u[-2] * (height - h + 1)), int(u[-1] * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < self.ratio[0]:
      w, h = width, round(width / self.ratio[0])
    elif in_ratio > self.ratio[1]:
      h, w = height, round(height * self.ratio[1])
    else:
      h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w

  def sample(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box of a height x width image, from one call to `rng` (generator calls are slow)."""
    return self.box_from_uniforms(height, width, rng.random(self.draws).tolist())


@dataclasses.dataclass(frozen=True)
class EvalView:
  """A stored image's deterministic view as one box: torchvision's Resize + CenterCrop, or a squash.

  resize > 0: `Resize(resize)` (the shorter side becomes `resize`, the longer one
  `int(resize * long / short)`, as torchvision computes it), then `CenterCrop(size)`.
  resize == 0: `Resize((size, size))`, the whole image squashed to a square (Cars196, SOP,
  CUB in MaskCon's and F-SC's code).
  """

  size: int
  resize: int = 0

  def __post_init__(self):
    if self.size <= 0 or self.resize < 0 or (self.resize and self.resize < self.size):
      raise ValueError(f"EvalView(size={self.size}, resize={self.resize}): need size > 0 and resize 0 or >= size.")

  def box(self, height: int, width: int) -> tuple[float, float, float, float]:
    """(top, left, height, width) in the original image's pixels (fractional) that the view covers."""
    if not self.resize:
      return 0.0, 0.0, float(height), float(width)
    if width <= height:
      new_w, new_h = self.resize, int(self.resize * height / width)
    else:
      new_w, new_h = int(self.resize * width / height), self.resize
    scale_y, scale_x = new_h / height, new_w / width
    top, left = int(round((new_h - self.size) / 2.0)), int(round((new_w - self.size) / 2.0))
    return top / scale_y, left / scale_x, self.size / scale_y, self.size / scale_x
