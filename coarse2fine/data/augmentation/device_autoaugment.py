"""AutoAugment's CIFAR-10 policy in JAX, as a device op (the host form is `autoaugment.AutoAugment`).

Each op reproduces the Pillow operation torchvision's AutoAugment applies to PIL images,
on pixel values 0..255 rounded to integers after every op as Pillow's uint8 images are:
geometric ops (shear, translate, rotate) are one nearest-neighbour affine warp with fill 0
(Pillow's `transform`: pixel centres, coordinates floored); Brightness, Color, Contrast and
Sharpness blend with a degenerate image and truncate (`ImageEnhance`); Posterize, Solarize,
AutoContrast, Equalize and Invert follow `ImageOps`. The op kind is a `lax.switch`: vmapped,
as on accelerators, every example computes all ten kinds of its two slots and selects its own,
cheap next to a train step there; mapped one example at a time, as on a CPU, only its own.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from coarse2fine.data.augmentation import autoaugment as host_policy

# Op kinds computed per slot; the five geometric ops share the affine warp.
KINDS = ("Affine", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast",
         "Equalize", "Invert")
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
NAMES = GEOMETRIC + KINDS[1:]  # the 14 ops of the policy


def _luma(x: jax.Array) -> jax.Array:
  """Pillow's "L" of RGB values 0..255: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
  if x.shape[-1] == 1:
    return x[..., 0]
  weighted = x[..., 0] * 19595.0 + x[..., 1] * 38470.0 + x[..., 2] * 7471.0
  return jnp.floor((weighted + 32768.0) / 65536.0)


def _blend(degenerate, x, factor):
  """Pillow's Image.blend(degenerate, x, factor): degenerate + factor (x - degenerate), truncated to 0..255."""
  return jnp.clip(jnp.floor(degenerate + factor * (x - degenerate)), 0.0, 255.0)


def brightness(x, factor):
  return _blend(0.0, x, factor)


def color(x, factor):
  return x if x.shape[-1] == 1 else _blend(_luma(x)[..., None], x, factor)


def contrast(x, factor):
  mean = jnp.floor(jnp.mean(_luma(x)) + 0.5)
  return _blend(mean, x, factor)


def smooth(x):
  """Pillow's ImageFilter.SMOOTH: 3x3 kernel (1 1 1; 1 5 1; 1 1 1) / 13, the border pixels kept."""
  padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = x.shape[:2]
  total = sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) + 4.0 * x
  inner = jnp.clip(jnp.floor(total / 13.0 + 0.5), 0.0, 255.0)
  rows = jnp.arange(h)[:, None, None]
  cols = jnp.arange(w)[None, :, None]
  border = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)
  return jnp.where(border, x, inner)


def sharpness(x, factor):
  return _blend(smooth(x), x, factor)


def posterize(x, bits):
  """Keeps the `bits` most significant bits (bits in 4..8)."""
  step = jnp.exp2(8.0 - bits)
  return jnp.floor(x / step) * step


def solarize(x, threshold):
  return jnp.where(x >= threshold, 255.0 - x, x)


def autocontrast(x):
  """Each channel's [min, max] stretched to [0, 255] (Pillow truncates); constant channels kept."""
  lo = jnp.min(x, axis=(0, 1))
  hi = jnp.max(x, axis=(0, 1))
  # Exact in float32 ((x - lo) 255 is an integer below 2^16); Pillow's x * scale + offset in
  # doubles can fall a hair below an integer, so a rare pixel may differ by one level.
  out = jnp.clip(jnp.floor((x - lo) * 255.0 / jnp.maximum(hi - lo, 1.0) + 1e-4), 0.0, 255.0)
  return jnp.where(hi > lo, out, x)


def equalize(x):
  """Pillow's ImageOps.equalize, channel by channel: a lookup table from the cumulative histogram."""

  def channel(values):
    index = values.astype(jnp.int32).reshape(-1)
    histogram = jnp.zeros(256, jnp.int32).at[index].add(1)
    present = histogram > 0
    last = histogram[255 - jnp.argmax(present[::-1])]  # the count of the last non-empty bin
    step = (jnp.sum(histogram) - last) // 255
    counts_before = jnp.cumsum(histogram) - histogram
    lut = jnp.clip((step // 2 + counts_before) // jnp.maximum(step, 1), 0, 255)
    keep = (jnp.sum(present) <= 1) | (step == 0)
    return jnp.where(keep, values, lut[index].reshape(values.shape).astype(values.dtype))

  return jnp.stack([channel(x[..., c]) for c in range(x.shape[-1])], axis=-1)


def affine_nearest(x, matrix):
  """Output pixel (i, j) reads input at floor(matrix @ (j + .5, i + .5, 1)), fill 0 outside (Pillow's transform)."""
  h, w = x.shape[:2]
  a, b, c, d, e, f = (matrix[k] for k in range(6))
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                        indexing="ij")
  sx, sy = a * xx + b * yy + c, d * xx + e * yy + f
  inside = (sx >= 0) & (sy >= 0) & (sx < w) & (sy < h)
  ix = jnp.clip(jnp.floor(sx), 0, w - 1).astype(jnp.int32)
  iy = jnp.clip(jnp.floor(sy), 0, h - 1).astype(jnp.int32)
  return jnp.where(inside[..., None], x[iy, ix], 0.0)


def geometric_matrix(kind: jax.Array, m: jax.Array, h: int, w: int) -> jax.Array:
  """[6] affine matrix of geometric op `kind` (index into GEOMETRIC) at signed magnitude m, as autoaugment.py's."""
  angle = -m * (math.pi / 180.0)
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  cx, cy = w / 2.0, h / 2.0
  rotate = jnp.stack([cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy])
  shift = jnp.trunc(m)  # translations move by int(m) pixels
  one, zero = jnp.ones_like(m), jnp.zeros_like(m)
  options = jnp.stack([
      jnp.stack([one, m, zero, zero, one, zero]),  # ShearX
      jnp.stack([one, zero, zero, m, one, zero]),  # ShearY
      jnp.stack([one, zero, -shift, zero, one, zero]),  # TranslateX
      jnp.stack([one, zero, zero, zero, one, -shift]),  # TranslateY
      rotate,
  ])
  return options[kind]


def _policy_tables(policy, height: int, width: int):
  """[P, 2] op index into NAMES, probability, unsigned magnitude, signed flag (numpy, static)."""
  ops = np.zeros((len(policy), 2), np.int32)
  probs = np.zeros((len(policy), 2), np.float32)
  mags = np.zeros((len(policy), 2), np.float32)
  signed = np.zeros((len(policy), 2), bool)
  for s, sub_policy in enumerate(policy):
    for k, (name, p, bin_index) in enumerate(sub_policy):
      ops[s, k] = NAMES.index(name)
      probs[s, k] = p
      mags[s, k] = host_policy.magnitude(name, bin_index, height, width)
      signed[s, k] = name in host_policy.SIGNED
  return ops, probs, mags, signed


@dataclasses.dataclass(frozen=True)
class AutoAugment:
  """One uniformly drawn sub-policy of `policy`, each of its two ops applied with its probability (device op).

  Takes and returns float32 [H, W, C] in [0, 1]; works on 0..255 integers inside.
  """

  policy: tuple = host_policy.CIFAR10_POLICY

  def apply_op(self, x: jax.Array, op: jax.Array, m: jax.Array) -> jax.Array:
    """x (0..255 values) through op index `op` of NAMES at signed magnitude m (a `lax.switch` over the kinds)."""
    h, w = x.shape[:2]
    geometric = op < len(GEOMETRIC)
    matrix = geometric_matrix(jnp.minimum(op, len(GEOMETRIC) - 1), m, h, w)
    branches = [lambda x, m: affine_nearest(x, matrix), lambda x, m: brightness(x, 1.0 + m),
                lambda x, m: color(x, 1.0 + m), lambda x, m: contrast(x, 1.0 + m),
                lambda x, m: sharpness(x, 1.0 + m), posterize, solarize, lambda x, m: autocontrast(x),
                lambda x, m: equalize(x), lambda x, m: 255.0 - x]
    kind = jnp.where(geometric, 0, op - len(GEOMETRIC) + 1)
    return jax.lax.switch(kind, branches, x, m)

  def __call__(self, image: jax.Array, key: jax.Array) -> jax.Array:
    h, w = image.shape[:2]
    ops, probs, mags, signed = (jnp.asarray(t) for t in _policy_tables(self.policy, h, w))
    k_policy, k_apply, k_sign = jax.random.split(key, 3)
    s = jax.random.randint(k_policy, (), 0, len(self.policy))
    applied = jax.random.uniform(k_apply, (2,)) < probs[s]
    negate = signed[s] & (jax.random.uniform(k_sign, (2,)) < 0.5)
    x = jnp.round(image * 255.0)
    for k in range(2):
      m = jnp.where(negate[k], -mags[s, k], mags[s, k])
      x = jax.lax.cond(applied[k], lambda x: self.apply_op(x, ops[s, k], m), lambda x: x, x)
    return x / 255.0
