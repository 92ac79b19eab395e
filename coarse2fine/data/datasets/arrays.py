"""A user's own coarsely labelled arrays: an `.npz` file plus a taxonomy file.

The `.npz` holds `x` ([N, H, W, C] or [N, H, W] uint8 images, or [N, F] float vectors),
`coarse` ([N] ints) and optionally `fine` ([N] ints, -1 where unknown), with ids in the
order of the taxonomy file (`data.taxonomy`). A test split comes from `x_test`,
`coarse_test`, `fine_test` when present, else a stratified `data.test_fraction` of the
examples is held out (seeded by `data.split_seed`).
"""

from __future__ import annotations

import io

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.checks import check_finite, check_range
from coarse2fine.data.sparse_rows import SparseRows
from coarse2fine.data.splits import HierarchicalData, Split, carve_validation, make_split
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy


def _inputs(x: np.ndarray, path: str) -> np.ndarray:
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim == 4:
    if x.dtype != np.uint8:
      raise ValueError(f"{path}: images must be uint8 in [0, 255], got dtype {x.dtype}.")
    return x
  if x.ndim == 2:
    check_finite(x, path)
    check_range(x, path)
    return x.astype(np.float32)
  raise ValueError(f"{path}: x must be [N, F] vectors or [N, H, W(, C)] images, got shape {x.shape}.")


def split_from_arrays(x, coarse, fine, *, taxonomy, where: str) -> Split:
  """A validated `Split` of raw arrays: x [N, F] vectors (or `SparseRows`) or [N, H, W(, C)] uint8 images, [N] labels."""
  inputs = x if isinstance(x, SparseRows) else _inputs(np.asarray(x), where)  # sparse stays sparse
  return make_split(inputs, fine=fine, coarse=coarse, taxonomy=taxonomy, where=where)


def input_statistics(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """float32 (mean, std): per channel in [0, 1] units for [N, H, W, C] uint8 images, per feature for vectors
  (dense or `SparseRows`)."""
  if isinstance(inputs, SparseRows):
    mean, std = inputs.mean_std()  # the dense computation's numbers, a block of columns at a time
    return mean, (std + 1e-6).astype(np.float32)
  if inputs.ndim == 4:
    flat = inputs.reshape(-1, inputs.shape[-1]) / 255.0
    mean, std = flat.mean(0), flat.std(0) + 1e-6
  else:
    mean, std = inputs.mean(0), inputs.std(0) + 1e-6
  return mean.astype(np.float32), std.astype(np.float32)


def with_statistics(train: Split, test: Split, taxonomy: Taxonomy) -> HierarchicalData:
  """The `HierarchicalData` named "arrays" of these splits, normalised by the training split's statistics."""
  mean, std = input_statistics(train.inputs)
  return HierarchicalData("arrays", taxonomy, train, test, mean=mean, std=std)


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  path = data_config.path
  if not path:
    raise ValueError("data.name='arrays' needs data.path: an .npz file with x, coarse and optionally fine.")
  if not storage.isfile(path):
    raise FileNotFoundError(f"data.path={path!r} does not exist.")
  if not data_config.taxonomy:
    raise ValueError("data.name='arrays' needs data.taxonomy: a .json or .csv file (fine,coarse per line).")
  taxonomy = get_taxonomy(data_config.taxonomy)
  with np.load(path if storage.is_local(path) else io.BytesIO(storage.read_bytes(path))) as npz:
    contents = {key: npz[key] for key in npz.files}
  missing = [key for key in ("x", "coarse") if key not in contents]
  if missing:
    raise ValueError(f"{path} lacks the arrays {missing}; it holds {sorted(contents)}.")
  train = split_from_arrays(contents["x"], contents["coarse"], contents.get("fine"), taxonomy=taxonomy,
                            where=f"{path} (x)")
  if "x_test" in contents:
    test = split_from_arrays(contents["x_test"], contents.get("coarse_test"), contents.get("fine_test"),
                             taxonomy=taxonomy, where=f"{path} (x_test)")
  else:
    train, test = carve_validation(train, data_config.test_fraction, data_config.split_seed)
    if test is None:
      raise ValueError(f"{path} has no x_test; set data.test_fraction > 0 to hold out a test split.")
  return with_statistics(train, test, taxonomy)
