"""The pure-functional train state: everything a jitted step reads and writes."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import optax


class TrainState(flax.struct.PyTreeNode):
  """One pytree holding the whole trainable state of a run.

  Attributes:
    step: [] int32, optimizer steps taken so far.
    params: the model's trainable parameters.
    batch_stats: BatchNorm running statistics (empty dict for models without BN).
    opt_state: the optax optimizer state.
    rng: [2] uint32 base key; a step's randomness is `fold_in(rng, step)`, so no key
      is ever split and stored back.
    extra: method-owned state (EMA or momentum params, queues, mixture means, ...).
    tx: the optax transformation (static: not part of the pytree's leaves).
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  extra: Any
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @property
  def variables(self) -> dict:
    """Flax variables for `module.apply` in evaluation mode."""
    return {"params": self.params, "batch_stats": self.batch_stats}

  def step_rng(self) -> jax.Array:
    return jax.random.fold_in(self.rng, self.step)
