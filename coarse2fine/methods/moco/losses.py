"""MoCo v3's loss and momentum schedule (docs/methods/moco.md#loss), as pure jittable functions.

* `contrastive_loss`: ctr(q, k) = 2 tau * mean_i CE(q_i . k / tau, i): each query against
  every key of the global batch, its own key the positive (no queue).
* `symmetric_loss`: ctr(q1, k2) + ctr(q2, k1).
* `momentum_at`: m(t) = 1 - (1 - m0) (1 + cos(pi t / T)) / 2, from m0 at step 0 to 1 at step T.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from coarse2fine.methods.common.normalize import l2_normalize


def contrastive_logits(q: jax.Array, k: jax.Array, temperature: float) -> jax.Array:
  """[B, B] logits n(q) n(k)^T / tau; q: [B, e] (gradient flows), k: [B, e] (under stop-gradient)."""
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  return q @ k.T / temperature


def contrastive_loss(q: jax.Array, k: jax.Array, temperature: float) -> jax.Array:
  """2 tau * mean_i [logsumexp_j(l_ij) - l_ii], l = `contrastive_logits(q, k, tau)`.

  The factor 2 tau keeps the gradient's scale independent of tau (the paper's Algorithm 1).
  """
  logits = contrastive_logits(q, k, temperature)
  return 2.0 * temperature * jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.diagonal(logits))


def symmetric_loss(q1: jax.Array, q2: jax.Array, k1: jax.Array, k2: jax.Array, temperature: float) -> jax.Array:
  """ctr(q1, k2) + ctr(q2, k1): each view's query against the other view's keys."""
  return contrastive_loss(q1, k2, temperature) + contrastive_loss(q2, k1, temperature)


def momentum_at(step: jax.Array, total_steps: int, m0: float, schedule: str = "cosine") -> jax.Array:
  """The momentum of step `step` (0-based) of `total_steps`: m0 (constant) or m0 -> 1 by half a cosine."""
  if schedule == "constant":
    return jnp.asarray(m0, jnp.float32)
  if schedule != "cosine":
    raise ValueError(f"Unknown moco.momentum_schedule {schedule!r}; choose 'cosine' or 'constant'.")
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / max(total_steps, 1), 1.0)
  return 1.0 - (1.0 - m0) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
