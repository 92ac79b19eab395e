"""AnnData files (.h5ad), read with anndata: `data.name = "h5ad"` (docs/datasets.md#anndata-h5ad-files).

  data.path        the .h5ad file (local, or gs:// / s3://)
  data.coarse_key  obs column of the coarse labels (strings, a categorical or ints); required
  data.fine_key    obs column of the fine labels, optional; missing values are unknown fine labels
  data.use_rep     the inputs: "X" (default), "raw.X", a layer, or an obsm entry such as "X_pca"

Inputs stored sparse (CSR or CSC) stay sparse on the host as `SparseRows` and are densified
a batch at a time; dense ones become [N, F] float32. Labels are numbered as in
`data.labels.encode_labels`: strings sorted, a categorical in its category order. The
taxonomy comes from the labels: the coarse classes of the coarse column; with fine labels,
each fine class under the one coarse class its cells have (a fine label under two coarse
labels is an error naming it); without, one placeholder fine class per coarse class. Cells
without a coarse label are an error (subset the AnnData first).

Split: `data.test_fraction` > 0 holds out that share of the cells, stratified by coarse
class and seeded by `data.split_seed` (the default 0.2 gives honest scores); 0 makes the
setting transductive, the test split the training cells, as the PBMC dataset is.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections
import numpy as np

from coarse2fine.data import anndata_io
from coarse2fine.data.checks import check_finite, check_range, check_sparse
from coarse2fine.data.datasets.arrays import with_statistics
from coarse2fine.data.labels import encode_labels, taxonomy_from_labels
from coarse2fine.data.sparse_rows import SparseRows, is_sparse
from coarse2fine.data.splits import HierarchicalData, carve_validation, make_split


def as_vectors(matrix, where: str):
  """[N, F] float32 inputs: `SparseRows` for a sparse matrix, else a checked dense array."""
  if is_sparse(matrix):
    if matrix.ndim != 2:
      raise ValueError(f"{where}: expected an [N, F] matrix, got shape {matrix.shape}.")
    rows = SparseRows(matrix)
    check_sparse(rows, where)
    return rows
  matrix = np.asarray(matrix)
  if matrix.ndim != 2 or not (np.issubdtype(matrix.dtype, np.number) and matrix.dtype != bool):
    raise ValueError(f"{where}: expected an [N, F] numeric matrix, got shape {matrix.shape} and dtype {matrix.dtype}.")
  check_finite(matrix, where)
  check_range(matrix, where)
  return matrix.astype(np.float32, copy=False)


def read_cells(path: str, use_rep: str, keys: Sequence[str]):
  """(inputs [N, F] (float32 array or SparseRows), {key: obs column as a pandas Series}) of a .h5ad file."""
  adata = anndata_io.read_h5ad(path)
  inputs = as_vectors(anndata_io.representation(adata, use_rep), f"{path} ({use_rep})")
  columns = {key: anndata_io.obs_column(adata, key, f"{path}: the obs column") for key in keys}
  return inputs, columns


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """The cells of `data.path` with the labels of `data.coarse_key` (and `data.fine_key`); see the module doc."""
  path, coarse_key, fine_key = data_config.path, data_config.coarse_key, data_config.fine_key
  if not path or not coarse_key:
    raise ValueError("data.name='h5ad' needs data.path (the .h5ad file) and data.coarse_key (the obs column of "
                     "the coarse labels); data.fine_key and data.use_rep are optional.")
  if data_config.taxonomy:
    raise ValueError(f"data.name='h5ad' takes its taxonomy from the obs columns; data.taxonomy="
                     f"{data_config.taxonomy!r} is not used. Leave it empty.")
  use_rep = data_config.use_rep or "X"
  inputs, columns = read_cells(path, use_rep, [coarse_key] + ([fine_key] if fine_key else []))
  n = len(inputs)
  coarse, coarse_names = encode_labels(columns[coarse_key], n, f"{path}: obs column {coarse_key!r} (coarse)")
  fine, fine_names = None, None
  if fine_key:
    fine, fine_names = encode_labels(columns[fine_key], n, f"{path}: obs column {fine_key!r} (fine)",
                                     unknown_allowed=True)
  taxonomy, fine_ids = taxonomy_from_labels(coarse, fine, coarse_names, fine_names, name=coarse_key)
  cells = make_split(inputs, fine=fine_ids, coarse=coarse, taxonomy=taxonomy, where=path)
  train, test = carve_validation(cells, data_config.test_fraction, data_config.split_seed)
  return dataclasses.replace(with_statistics(train, cells if test is None else test, taxonomy), name="h5ad")
