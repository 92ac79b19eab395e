"""The device mesh and how arrays are laid out on it.

One `Mesh` with a single `data` axis, also on one device. The train step is written on
the global batch; `jit` with these shardings inserts the collectives (so BatchNorm
statistics are global, cross-device ones).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def local_mesh() -> Mesh:
  """A `data` mesh over this process's devices only, for host-side work every process repeats."""
  return Mesh(np.asarray(jax.local_devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the `data` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh, what: str = "train.batch_size") -> None:
  devices = mesh.devices.size
  if global_batch_size % devices:
    raise ValueError(
        f"{what}={global_batch_size} is not divisible by the {devices} devices of the mesh; "
        f"use a multiple of {devices}.")


def eval_batch_size(requested: int, mesh: Mesh) -> int:
  """`requested` rounded up to a multiple of the mesh's devices: evaluation pads its batches, so any size works."""
  devices = mesh.devices.size
  return -(-max(requested, 1) // devices) * devices


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
  """Assembles each process's share (a pytree of [b, ...] arrays) into global arrays sharded along the batch axis."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda v: jax.make_array_from_process_local_data(sharding, np.asarray(v)), local_batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def host_to_replicated(tree: Any, target: Any) -> Any:
  """Host values (the same on every process) as global replicated arrays with `target`'s shardings.

  target: a mesh (every leaf replicated over it) or a pytree of arrays like `tree` whose
  shardings the leaves take. Built with `make_array_from_callback`, which works when the
  sharding spans several processes (where `device_put` of a numpy array may not).
  """
  leaves, treedef = jax.tree.flatten(tree)
  if isinstance(target, Mesh):
    shardings = [replicated(target)] * len(leaves)
  else:
    shardings = [leaf.sharding for leaf in treedef.flatten_up_to(target)]
  arrays = []
  for value, where in zip(leaves, shardings):
    value = np.asarray(value)
    arrays.append(jax.make_array_from_callback(value.shape, where, lambda index, value=value: value[index]))
  return treedef.unflatten(arrays)


def local_value(array: jax.Array) -> np.ndarray:
  """A numpy copy of a replicated array, also one that spans several processes.

  `jax.device_get` refuses an array with shards on other processes; every shard of a
  replicated array holds the whole value, so the first local one is read.
  """
  if array.is_fully_addressable:
    return np.asarray(jax.device_get(array))
  return np.asarray(array.addressable_data(0))
