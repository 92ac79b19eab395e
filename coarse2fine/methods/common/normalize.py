"""L2 normalisation with a finite gradient at zero, for embeddings inside jitted losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-12


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """x / max(||x||, 1e-12) along `axis`, as torch's F.normalize.

  Written as x / sqrt(max(sum x^2, eps^2)) rather than through `jnp.linalg.norm`, whose
  square root has an infinite derivative at 0: an all-zero row (a padded queue slot, a dead
  ReLU output) then gets gradient x / eps instead of NaN.
  """
  squared = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x / jnp.sqrt(jnp.maximum(squared, EPS * EPS))
