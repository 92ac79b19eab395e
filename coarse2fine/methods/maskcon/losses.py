"""MaskCon's targets and losses (docs/methods/maskcon.md#losses), as pure jittable functions.

MaskCon (Feng & Patras, CVPR 2023) is MoCo with one global FIFO queue of keys, each stored
with its coarse label, and a soft target over [positive key, queue] instead of the one-hot:

* `LabelledQueue` / `init_labelled_queue` / `enqueue`: the queue of Nq L2-normalised keys
  and their coarse labels, written FIFO with wrap-around.
* `contrastive_logits`: [q.k, q.queue_1 .. q.queue_Nq] / T1, shared by every variant.
* `maskcon_targets`: the MaskCon soft target, built from the key k and the queue *before*
  the current batch is enqueued, mixed with the SelfCon one-hot by w.
* `grafit_targets` (SupCon is w = 1) and `selfcon_targets` (MoCo InfoNCE): the baselines that
  share the same logits. Grafit is MaskCon in the limit T2 -> inf.
* `soft_cross_entropy`: -mean_i sum_j t_ij log_softmax(logits_i)_j; since every target is a
  mix w * z + (1 - w) * e_0, this is [P]'s w * L_maskcon + (1 - w) * L_selfcon.
* `coins_loss`: CoIns, w * CE(classifier) + (1 - w) * SelfCon (SupCE is w = 1).

The key encoder's momentum update is `common.momentum.momentum_update`.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from coarse2fine.methods.common.normalize import l2_normalize


class LabelledQueue(flax.struct.PyTreeNode):
  """One global FIFO queue of keys with their coarse labels.

  keys: [Nq, e] float32, L2-normalised key-encoder outputs.
  labels: [Nq] int32 coarse labels; -1 marks a slot never written (it matches no class).
  pointer: [] int32, the slot the next batch starts writing at.
  """

  keys: jax.Array
  labels: jax.Array
  pointer: jax.Array

  @property
  def size(self) -> int:
    return self.keys.shape[0]


def init_labelled_queue(rng: jax.Array, size: int, dim: int) -> LabelledQueue:
  """Random normal keys [size, dim] normalised along dim, labels -1, pointer 0.

  The reference code gives the random slots random labels, then fills the whole queue
  before training; label -1 keeps an unfilled slot out of every target instead.
  """
  keys = l2_normalize(jax.random.normal(rng, (size, dim), jnp.float32))
  return LabelledQueue(keys=keys, labels=jnp.full((size,), -1, jnp.int32), pointer=jnp.zeros((), jnp.int32))


def enqueue(queue: LabelledQueue, keys: jax.Array, labels: jax.Array) -> LabelledQueue:
  """Writes keys [B, e] and labels [B] at slots pointer, pointer + 1, .. mod Nq; pointer += B mod Nq.

  Keys are stored as given (pass the normalised, stop-gradient keys). Needs B <= Nq, so
  that a batch never overwrites its own rows.
  """
  batch, size = keys.shape[0], queue.size
  if batch > size:
    raise ValueError(f"a batch of {batch} keys does not fit in a queue of {size}.")
  slots = (queue.pointer + jnp.arange(batch, dtype=jnp.int32)) % size
  new_keys = queue.keys.at[slots].set(jax.lax.stop_gradient(keys).astype(queue.keys.dtype))
  new_labels = queue.labels.at[slots].set(labels.astype(queue.labels.dtype))
  return LabelledQueue(keys=new_keys, labels=new_labels, pointer=(queue.pointer + batch) % size)


def contrastive_logits(q: jax.Array, k: jax.Array, queue_keys: jax.Array, t1: float) -> jax.Array:
  """[B, 1+Nq] logits [q_i.k_i, q_i.queue_1 .. q_i.queue_Nq] / T1.

  q: [B, e] normalised queries (gradient flows); k: [B, e] normalised keys and queue_keys:
  [Nq, e], both under stop-gradient here.
  """
  k, queue_keys = jax.lax.stop_gradient((k, queue_keys))
  positive = jnp.sum(q * k, axis=-1, keepdims=True)  # [B, 1]
  negatives = q @ queue_keys.T  # [B, Nq]
  return jnp.concatenate([positive, negatives], axis=-1) / t1


def _with_positive(z: jax.Array, w: jax.Array | float) -> jax.Array:
  """w * [1, z_1 .. z_Nq] / (1 + sum_j z_j) + (1 - w) * e_0, for z [B, Nq] >= 0."""
  ones = jnp.ones(z.shape[:-1] + (1,), z.dtype)
  full = jnp.concatenate([ones, z], axis=-1)
  full = full / jnp.sum(full, axis=-1, keepdims=True)
  e_0 = jax.nn.one_hot(jnp.zeros(z.shape[:-1], jnp.int32), full.shape[-1], dtype=z.dtype)
  return w * full + (1.0 - w) * e_0


def maskcon_targets(k: jax.Array, queue_keys: jax.Array, queue_labels: jax.Array, labels: jax.Array,
                    t2: float, w: jax.Array | float) -> jax.Array:
  """[B, 1+Nq] float32 MaskCon targets t = w z + (1 - w) e_0 (no gradient).

  k: [B, e] normalised keys; queue_keys: [Nq, e]; queue_labels: [Nq] int32; labels: [B] int32
  coarse labels (the queue is the one *before* this batch is enqueued).
  z'_j = masked softmax_j(k.queue_j / T2) rescaled by its row max, which is exactly
  mask_j exp(s_j - max_{masked} s): the softmax normaliser cancels, so it is computed that
  way, with the max taken over same-class entries only. A row whose class is absent from
  the queue has z' = 0, hence z = e_0 (the reference code gives NaN there).
  """
  k, queue_keys = jax.lax.stop_gradient((k.astype(jnp.float32), queue_keys.astype(jnp.float32)))
  mask = queue_labels[None, :] == labels[:, None]  # [B, Nq]
  scores = jnp.where(mask, k @ queue_keys.T / t2, -jnp.inf)
  row_max = jnp.max(scores, axis=-1, keepdims=True)
  row_max = jnp.where(jnp.any(mask, axis=-1, keepdims=True), row_max, 0.0)  # empty class: avoid -inf - -inf
  rescaled = jnp.where(mask, jnp.exp(scores - row_max), 0.0)  # z'_j / max_j z'_j, nearest neighbour -> 1
  return jax.lax.stop_gradient(_with_positive(rescaled, w))


def grafit_targets(queue_labels: jax.Array, labels: jax.Array, w: jax.Array | float) -> jax.Array:
  """[B, 1+Nq] float32 Grafit targets w zsup + (1 - w) e_0, zsup = [1, mask_1 .. mask_Nq] / (1 + sum mask).

  queue_labels: [Nq] int32; labels: [B] int32. SupCon is w = 1. Soft cross-entropy against
  this mix is w CE_soft(logits, zsup) + (1 - w) CE_soft(logits, e_0), the [C] Grafit loss.
  """
  mask = (queue_labels[None, :] == labels[:, None]).astype(jnp.float32)
  return _with_positive(mask, w)


def selfcon_targets(batch: int, queue_size: int) -> jax.Array:
  """[batch, 1+queue_size] float32 one-hot at the positive key, e_0 (MoCo InfoNCE)."""
  return jax.nn.one_hot(jnp.zeros((batch,), jnp.int32), 1 + queue_size, dtype=jnp.float32)


def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """-mean_i sum_j t_ij log_softmax(logits_i)_j. logits, targets: [B, 1+Nq]; targets get no gradient."""
  targets = jax.lax.stop_gradient(targets)
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def selfcon_loss(logits: jax.Array) -> jax.Array:
  """SelfCon / MoCo InfoNCE: mean_i logsumexp(logits_i) - logits_i0. logits: [B, 1+Nq]."""
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[:, 0])


def coins_loss(contrastive_logits: jax.Array, class_logits: jax.Array, labels: jax.Array,
               w: jax.Array | float) -> jax.Array:
  """CoIns: w CE(class_logits, labels) + (1 - w) SelfCon(contrastive_logits). SupCE is w = 1.

  contrastive_logits: [B, 1+Nq]; class_logits: [B, C] from the coarse classifier on the
  query's backbone features; labels: [B] int32 coarse labels.
  """
  log_probs = jax.nn.log_softmax(class_logits, axis=-1)
  ce = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None].astype(jnp.int32), axis=-1))
  return w * ce + (1.0 - w) * selfcon_loss(contrastive_logits)
