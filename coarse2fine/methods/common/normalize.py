"""L2 normalisation with a finite gradient at zero, for embeddings inside jitted losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """x / max(||x||, 1e-12) along `axis`, as torch's F.normalize, with a finite gradient at 0.

  `jnp.linalg.norm`'s square root has an infinite derivative at 0, so an all-zero row (a
  padded queue slot, a dead ReLU output) would get a NaN gradient. Zero rows take the norm of
  a row of ones instead (then discarded), so their gradient is x / eps. Other rows get the
  plain formula's values bit for bit forward, and its gradient up to floating-point rounding:
  XLA orders the guarded backward differently, which moves ANCOR's Fashion-MNIST run in the
  last digits (coarse, SCGM-G and MaskCon runs are bitwise unchanged).
  """
  nonzero = jnp.any(x != 0, axis=axis, keepdims=True)
  norm = jnp.linalg.norm(jnp.where(nonzero, x, 1.0), axis=axis, keepdims=True)
  return x / jnp.maximum(jnp.where(nonzero, norm, 0.0), EPS)


def l2_normalize_host(x, dtype=np.float32) -> np.ndarray:
  """numpy x [..., d] as `dtype`, scaled to unit L2 norm along the last axis (zero rows stay zero).

  The host's version, for embeddings already fetched from the devices (evaluation, figures,
  SCGM's relation from its means); float32 where results must match the device's precision.
  """
  x = np.asarray(x, dtype)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
