"""AutoAugment with the CIFAR-10 policy (Cubuk et al. 2019) as a host-side augmentation op.

`AutoAugment` is a host-stage op (coarse2fine.data.augmentation.host): (image uint8 [H, W, C],
C = 1 or 3, or a Pillow image, rng) -> the same kind. It picks one of the policy's 25 sub-policies uniformly
and applies each of its two ops with that op's probability. The ops run in Pillow (the
library torchvision's AutoAugment uses on PIL inputs, as MaskCon's code feeds it).

Magnitudes follow torchvision's AutoAugment: a bin b in 0..9 (10 bins) indexes an even grid
from 0 to the op's maximum (ShearX/Y 0.3, TranslateX/Y 150/331 of the width/height in
pixels, Rotate 30 degrees, Brightness/Color/Contrast/Sharpness 0.9 added to a factor of 1),
Posterize keeps 8 - round(b / 2.25) bits and Solarize thresholds at 255 * (1 - b / 9).
Signed ops are negated with probability 1/2. Geometric ops sample nearest-neighbour and fill
uncovered pixels with 0.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

NUM_BINS = 10

# The 25 CIFAR-10 sub-policies of Cubuk et al. 2019 (appendix table), each two
# (op name, probability, magnitude bin); the bin is None for ops without a magnitude.
CIFAR10_POLICY = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)


# ------------------------------------------------------------------------------------
# The ops: (PIL image, mode 'L' or 'RGB', magnitude) -> PIL image of the same size and mode.


def _affine(img: Image.Image, matrix) -> Image.Image:
  """Output pixel at continuous (x, y) samples the input at (a x + b y + c, d x + e y + f)."""
  return img.transform(img.size, Image.Transform.AFFINE, tuple(matrix), Image.Resampling.NEAREST, fillcolor=0)


def shear_x(img: Image.Image, m: float) -> Image.Image:
  """Shear about the top-left corner: output (x, y) reads input (x + m y, y)."""
  return _affine(img, (1.0, m, 0.0, 0.0, 1.0, 0.0))


def shear_y(img: Image.Image, m: float) -> Image.Image:
  """Output (x, y) reads input (x, y + m x)."""
  return _affine(img, (1.0, 0.0, 0.0, m, 1.0, 0.0))


def translate_x(img: Image.Image, m: float) -> Image.Image:
  """Moves the content right by int(m) pixels (left for m < 0)."""
  return _affine(img, (1.0, 0.0, -float(int(m)), 0.0, 1.0, 0.0))


def translate_y(img: Image.Image, m: float) -> Image.Image:
  """Moves the content down by int(m) pixels (up for m < 0)."""
  return _affine(img, (1.0, 0.0, 0.0, 0.0, 1.0, -float(int(m))))


def rotate(img: Image.Image, m: float) -> Image.Image:
  """Rotates counter-clockwise by m degrees about the centre."""
  return img.rotate(m, resample=Image.Resampling.NEAREST, fillcolor=0)


def brightness(img: Image.Image, m: float) -> Image.Image:
  """Blends with black at factor 1 + m (0 gives black)."""
  return ImageEnhance.Brightness(img).enhance(1.0 + m)


def color(img: Image.Image, m: float) -> Image.Image:
  """Blends with the luma image at factor 1 + m (saturation); no-op for 'L'."""
  return ImageEnhance.Color(img).enhance(1.0 + m)


def contrast(img: Image.Image, m: float) -> Image.Image:
  """Blends with the mean luma at factor 1 + m."""
  return ImageEnhance.Contrast(img).enhance(1.0 + m)


def sharpness(img: Image.Image, m: float) -> Image.Image:
  """Blends with a smoothed image at factor 1 + m (above 1 sharpens)."""
  return ImageEnhance.Sharpness(img).enhance(1.0 + m)


def posterize(img: Image.Image, m: float) -> Image.Image:
  """Keeps the int(m) most significant bits of each channel."""
  return ImageOps.posterize(img, int(m))


def solarize(img: Image.Image, m: float) -> Image.Image:
  """Inverts the pixels at or above the threshold m (in 0..255)."""
  return ImageOps.solarize(img, m)


def autocontrast(img: Image.Image, m: float) -> Image.Image:
  """Stretches each channel's [min, max] to [0, 255]."""
  return ImageOps.autocontrast(img)


def equalize(img: Image.Image, m: float) -> Image.Image:
  """Histogram-equalises each channel."""
  return ImageOps.equalize(img)


def invert(img: Image.Image, m: float) -> Image.Image:
  """255 - x."""
  return ImageOps.invert(img)


OPS: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x, "TranslateY": translate_y,
    "Rotate": rotate, "Brightness": brightness, "Color": color, "Contrast": contrast,
    "Sharpness": sharpness, "Posterize": posterize, "Solarize": solarize,
    "AutoContrast": autocontrast, "Equalize": equalize, "Invert": invert,
}

# Ops whose magnitude is negated with probability 1/2.
SIGNED = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
                    "Sharpness"})

# Maximum magnitude (at bin NUM_BINS - 1) of the linearly binned ops; translations are in
# image widths/heights, converted to pixels by `magnitude`.
_MAX = {"ShearX": 0.3, "ShearY": 0.3, "TranslateX": 150 / 331, "TranslateY": 150 / 331, "Rotate": 30.0,
        "Brightness": 0.9, "Color": 0.9, "Contrast": 0.9, "Sharpness": 0.9}


def magnitude(name: str, bin_index, height: int, width: int) -> float:
  """The unsigned magnitude of op `name` at bin 0..9 for an image of height x width pixels."""
  if bin_index is None:
    return 0.0
  if not 0 <= bin_index < NUM_BINS:
    raise ValueError(f"Magnitude bin {bin_index} is outside 0..{NUM_BINS - 1}.")
  t = bin_index / (NUM_BINS - 1)
  if name in _MAX:
    scale = width if name == "TranslateX" else height if name == "TranslateY" else 1.0
    return _MAX[name] * scale * t
  if name == "Posterize":
    return float(8 - round(4 * t))  # 8 bits at bin 0 down to 4 at bin 9
  if name == "Solarize":
    return 255.0 * (1.0 - t)
  return 0.0


# ------------------------------------------------------------------------------------
# The op.


def to_pil(image: np.ndarray) -> Image.Image:
  """uint8 [H, W, C] -> PIL 'L' (C = 1) or 'RGB' (C = 3)."""
  return Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[2] == 1 else image))


def from_pil(img: Image.Image) -> np.ndarray:
  """PIL 'L' or 'RGB' -> uint8 [H, W, C]."""
  u8 = np.asarray(img)
  return u8[..., None] if u8.ndim == 2 else u8


class AutoAugment:
  """One uniformly drawn sub-policy of `policy` (default CIFAR-10), each op with its probability."""

  def __init__(self, policy=CIFAR10_POLICY):
    for sub_policy in policy:
      for name, p, bin_index in sub_policy:
        if name not in OPS or not 0 <= p <= 1 or (bin_index is not None and not 0 <= bin_index < NUM_BINS):
          raise ValueError(f"Bad AutoAugment op {(name, p, bin_index)}.")
    self.policy = tuple(tuple(tuple(op) for op in sub_policy) for sub_policy in policy)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # One call for all draws: [sub-policy, 2 application draws, 2 sign draws].
    u = rng.random(5).tolist()
    sub_policy = self.policy[min(int(u[0] * len(self.policy)), len(self.policy) - 1)]
    applied = [(op, u[3 + i]) for i, op in enumerate(sub_policy) if u[1 + i] < op[1]]
    if not applied:
      return image
    img = image if isinstance(image, Image.Image) else to_pil(image)  # host views may already be Pillow images
    width, height = img.size
    for (name, _, bin_index), sign_draw in applied:
      m = magnitude(name, bin_index, height, width)
      if name in SIGNED and sign_draw < 0.5:
        m = -m
      img = OPS[name](img, m)
    return img if isinstance(image, Image.Image) else from_pil(img)
