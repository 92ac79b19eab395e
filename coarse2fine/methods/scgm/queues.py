"""Momentum contrast with one FIFO queue of keys per super-class (ANCOR, SCGM-A).

Three pieces, all pure functions of arrays so they run inside the jitted step on the
global batch (the step is the same on one or many devices; jit inserts the collectives):

* `momentum_update` (from `methods.common.momentum`): the key encoder `xi <- m * xi + (1 - m) * theta` (MoCo).
* `angular`: ANCOR's angular normalisation `Ang(u; w) = n(n(u) - n(w))` (SCGM paper Eq. 18).
* `within_superclass_infonce`: InfoNCE of each query against its own key (positive) and
  the queue of its own super-class (negatives), all angular-normalised around the
  super-class reference `w` (L_nce of docs/methods/scgm.md#scgm-a-loss).
* `QueueState` / `enqueue`: C queues of `size` raw keys each, written FIFO per class.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from coarse2fine.methods.common.momentum import momentum_update
from coarse2fine.methods.common.network import train_forward
from coarse2fine.methods.common.normalize import l2_normalize


def angular(u: jax.Array, w: jax.Array) -> jax.Array:
  """Ang(u; w) = n(n(u) - n(w)); u [..., e], w broadcastable to u."""
  return l2_normalize(l2_normalize(u) - l2_normalize(w))


class QueueState(flax.struct.PyTreeNode):
  """C FIFO queues of keys.

  keys: [C, size, e] float32 raw (unnormalised) key-encoder outputs.
  pointer: [C] int32, where class c writes next.
  """

  keys: jax.Array
  pointer: jax.Array

  @property
  def size(self) -> int:
    return self.keys.shape[1]


def init_queues(rng: jax.Array, num_classes: int, size: int, dim: int) -> QueueState:
  """Random normal keys normalised along e, as the reference code initialises its queues."""
  keys = l2_normalize(jax.random.normal(rng, (num_classes, size, dim), jnp.float32))
  return QueueState(keys=keys, pointer=jnp.zeros((num_classes,), jnp.int32))


def enqueue(queues: QueueState, keys: jax.Array, labels: jax.Array) -> QueueState:
  """Writes each key into its class's queue at that class's pointer, FIFO with wrap-around.

  keys: [B, e]; labels: [B] int32. Keys of one class keep their batch order (the global
  batch order, so the result does not depend on how the batch is split over devices).
  Needs B <= size, so that a batch never overwrites its own keys.
  """
  num_classes, size = queues.keys.shape[:2]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.int32)  # [B, C]
  rank_in_class = jnp.sum((jnp.cumsum(one_hot, axis=0) - 1) * one_hot, axis=1)  # [B]
  slot = (queues.pointer[labels] + rank_in_class) % size
  new_keys = queues.keys.at[labels, slot].set(keys.astype(queues.keys.dtype))
  new_pointer = (queues.pointer + one_hot.sum(0)) % size
  return QueueState(keys=new_keys, pointer=new_pointer)


def within_superclass_infonce(query: jax.Array, key: jax.Array, labels: jax.Array, reference: jax.Array,
                              queues: QueueState, temperature: float) -> jax.Array:
  """Mean over the batch of CE([q'.k', q'.Q'_1 .. q'.Q'_size] / T, 0), Q = queue of the label's class.

  query: [B, e] online outputs v; key: [B, e] key-encoder outputs (no gradient taken);
  labels: [B] super-class ids; reference: [C, e] the angular reference per class (the
  super-class means, or the classifier rows; gradients are stopped here);
  q' = Ang(v; w_y), k' = Ang(k; w_y), Q'_j = Ang(queue[y][j]; w_y).

  Negatives come from the example's own super-class only. Rather than gathering a
  [B, size, e] block of queues (gigabytes at size 65536), the classes are visited one at
  a time and each example keeps the log-sum-exp of its own class: B x size logits live
  at once, never B x C x size.
  """
  reference = jax.lax.stop_gradient(reference)
  key = jax.lax.stop_gradient(key)
  w = reference[labels]  # [B, e]
  q = angular(query, w)
  k = angular(key, w)
  positive = jnp.sum(q * k, axis=-1) / temperature  # [B]

  def class_lse(negative_lse, inputs):
    c, queue_c = inputs
    negatives = angular(queue_c, reference[c])  # [size, e]
    lse = jax.nn.logsumexp(q @ negatives.T / temperature, axis=-1)  # [B]
    return jnp.where(labels == c, lse, negative_lse), None

  num_classes = queues.keys.shape[0]
  init = jnp.full(labels.shape, -jnp.inf, positive.dtype)
  negative_lse, _ = jax.lax.scan(
      class_lse, init, (jnp.arange(num_classes), jax.lax.stop_gradient(queues.keys)))
  return jnp.mean(jnp.logaddexp(positive, negative_lse) - positive)


def check_queue_size(queue_size: int, batch_size: int) -> None:
  """A class's keys of one batch (at most the whole batch) must fit in its queue."""
  if queue_size < batch_size:
    raise ValueError(f"contrast.queue_size={queue_size} is smaller than the batch ({batch_size}): "
                     f"a batch would overwrite its own keys.")


class MomentumState(flax.struct.PyTreeNode):
  """The key encoder and its queues, kept in `TrainState.extra`.

  params, batch_stats: the key encoder's variables (a copy of the online model's tree;
    parameters the key forward does not use, such as classifier rows, just ride along).
  queues: the per-super-class key queues.
  """

  params: Any
  batch_stats: Any
  queues: QueueState


def init_momentum_state(rng: jax.Array, variables: dict, num_classes: int, queue_size: int,
                        dim: int) -> MomentumState:
  """Key encoder initialised as a copy of the online model; fresh random queues."""
  copy = lambda tree: jax.tree.map(jnp.array, tree)
  return MomentumState(params=copy(variables["params"]), batch_stats=copy(variables["batch_stats"]),
                       queues=init_queues(rng, num_classes, queue_size, dim))


def momentum_keys(model, online_params: Any, online_batch_stats: Any, state: MomentumState, inputs: jax.Array,
                  momentum: float, rng: jax.Array) -> tuple[jax.Array, MomentumState]:
  """Moves the key encoder towards the online one, then encodes the key view.

  As in the reference code the update comes after the online forward and before the key
  forward, and covers BN statistics too; the key forward runs in train mode (batch
  statistics). Returns the keys [B, e] (no gradient) and the state with the new key
  encoder (queues unchanged: `enqueue` them after the loss).
  """
  online_params, online_batch_stats = jax.lax.stop_gradient((online_params, online_batch_stats))
  params = momentum_update(state.params, online_params, momentum)
  batch_stats = momentum_update(state.batch_stats, online_batch_stats, momentum)
  outputs, batch_stats = train_forward(model, params, batch_stats, inputs, rng)
  new_state = state.replace(params=params, batch_stats=batch_stats)
  return jax.lax.stop_gradient(outputs["embedding"]), new_state
