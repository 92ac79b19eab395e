"""One pass of a model over the whole training split, for host hooks (SCGM's E-step, MaskCon's queue fill).

The E-step of SCGM needs an output for every training example, in index order, computed
with the training augmentation (and, in the reference code, with BatchNorm in train
mode). `training_split_pass` feeds the split in order in global batches, sharded over
the mesh like the train step, through the same two stages as training (host crop, device
colour and normalisation), and keeps the outputs on the devices.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from coarse2fine.data import pipeline
from coarse2fine.data.augmentation import device as device_augment
from coarse2fine.data.batch import example_ids
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine import random_streams, sharding

# (carry, inputs [b, ...] float32, batch number) -> (carry, outputs [b, ...]); jitted by the caller.
PassStep = Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array]]


def training_split_pass(step: PassStep, carry: Any, data: HierarchicalData, data_config: ml_collections.ConfigDict,
                        view: str, batch_size: int, seed: int, mesh,
                        indices: Optional[np.ndarray] = None) -> tuple[Any, jax.Array]:
  """Runs `step` over every training example in index order; returns (carry, outputs [N, ...]).

  `indices` [n] (optional) visits those training examples instead, in that order.

  Batches are global batches of `batch_size`; the last one is filled up with the first
  examples of the split (rather than zeros) so that train-mode BatchNorm statistics stay
  those of real data, and the extra rows are cut off. Each example's host draws come from
  its own generator, keyed by (seed, batch number, position in the global batch), and its
  device draws from the matching JAX key on a stream of their own, so the pass is the same
  for any number of processes. `carry` threads state such as BN statistics through the pass.
  """
  sharding.check_batch_size(batch_size, mesh)
  transform = pipeline.make_transform(data, data_config, (view,))
  # Seed 0 plus a traced salt: one compiled augmentation serves every pass, each with its own draws.
  augment = device_augment.jitted(pipeline.make_device_augment(data, data_config, (view,), seed=0,
                                                               stream=random_streams.PASS_AUGMENT_STREAM))
  order = np.arange(len(data.train)) if indices is None else np.asarray(indices)
  n = len(order)
  process_index, process_count = jax.process_index(), jax.process_count()
  local = batch_size // process_count
  outputs = []
  for number in range(-(-n // batch_size)):
    in_batch = process_index * local + np.arange(local)
    positions = (number * batch_size + in_batch) % n
    # Keys of 4 entries, so they never coincide with the training pipeline's 3-entry ones.
    keys = np.stack([np.full(local, seed), np.full(local, number), in_batch, np.ones(local, np.int64)], axis=1)
    host_batch = transform(order[positions], pipeline.ExampleStreams(keys), example_ids(number, in_batch))
    batch = augment(sharding.global_batch(host_batch, mesh), jnp.asarray(seed % (1 << 31), jnp.int32))
    carry, out = step(carry, batch.views[:, 0], jnp.asarray(number, jnp.int32))
    outputs.append(out)
  return carry, jnp.concatenate(outputs)[:n]


def views_checked(views: Sequence[str], count: int, method: str) -> tuple[str, ...]:
  """The configured `data.views`, which must name exactly `count` views for `method`."""
  views = tuple(views)
  if len(views) != count:
    raise ValueError(f"Method {method!r} takes {count} view(s) per example, but data.views={views}; "
                     f"set --config.data.views to {count} augmentation kinds.")
  return views
