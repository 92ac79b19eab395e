"""Content digests of a saved train state, so that a corrupted checkpoint is caught at restore.

orbax writes arrays through TensorStore without checksums: a block of bytes overwritten inside
a data file restores without error as wrong values. At save, `state_digests` hashes every
array of the state (its dtype, shape and bytes) into the checkpoint's JSON metadata; at
restore, `first_mismatch` recomputes them on the restored arrays. Arrays are replicated over
the mesh (data parallelism), so every process hashes the same full values.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import jax
import numpy as np

DIGEST = "sha256"


def _leaves(state_dict: Any) -> list[tuple[str, Any]]:
  flat = jax.tree_util.tree_flatten_with_path(state_dict)[0]
  return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


def array_digest(array: np.ndarray) -> str:
  """sha256 of a host array's dtype, shape and C-order bytes."""
  array = np.ascontiguousarray(array)
  digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
  digest.update(memoryview(array).cast("B"))
  return digest.hexdigest()


def host_arrays(state_dict: Any) -> dict[str, np.ndarray]:
  """{tree path: numpy array} of every array leaf of a state dict (flax.serialization.to_state_dict)."""
  arrays = {}
  for path, leaf in _leaves(state_dict):
    if hasattr(leaf, "shape"):
      if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        leaf = leaf.addressable_data(0)  # replicated: this process's copy is the whole array
      arrays[path] = np.asarray(jax.device_get(leaf))
  return arrays


def state_digests(state_dict: Any, arrays: Optional[dict[str, np.ndarray]] = None) -> dict[str, str]:
  """{tree path: digest} of every array leaf of a state dict (or of its `host_arrays`, when given)."""
  arrays = host_arrays(state_dict) if arrays is None else arrays
  return {path: array_digest(array) for path, array in arrays.items()}


def first_nonfinite(arrays: dict[str, np.ndarray]) -> Optional[str]:
  """The first tree path (in order) of `host_arrays` holding a NaN or an infinity, or None."""
  for path, array in arrays.items():
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
      return path
  return None


def first_mismatch(state_dict: Any, saved: dict[str, str]) -> Optional[str]:
  """The first tree path whose restored array differs from its saved digest, or None when all agree."""
  restored = state_digests(state_dict)
  for path in sorted(set(saved) | set(restored)):
    if saved.get(path) != restored.get(path):
      return path
  return None
