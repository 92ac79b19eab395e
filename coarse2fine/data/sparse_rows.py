"""Sparse vectors kept sparse on the host: `SparseRows`, a CSR matrix that yields dense float32 rows per batch.

Single-cell expression matrices are mostly zeros (often 90% or more); densifying a million
cells by 30k genes would take 120 GB. A `Split.inputs` that is a `SparseRows` stays CSR in
host memory; the input pipeline's gathers (`inputs[indices]`, in `pipeline.BatchTransform`
and `pipeline.eval_batches`) get dense [b, F] float32 rows, so only a batch is ever dense.
`Split.take` keeps it sparse through `subset`. Code that needs every row at once
(`np.asarray(inputs)`, e.g. FALCON's neighbours mined on the inputs) gets the dense matrix.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse

COLUMN_BLOCK_ELEMENTS = 1 << 24  # dense elements per block of columns in `mean_std` (64 MB of float32)


def is_sparse(x) -> bool:
  """Whether `x` is a scipy sparse matrix or array (any format)."""
  return scipy.sparse.issparse(x)


class SparseRows:
  """[N, F] float32 rows stored as CSR; indexing returns dense numpy rows (see module doc)."""

  ndim = 2
  dtype = np.dtype(np.float32)

  def __init__(self, matrix):
    matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float32)  # a copy only when the format or dtype differs
    if not matrix.has_canonical_format:  # sorted indices, no duplicates (so equal matrices hash equally)
      matrix = matrix.copy()
      matrix.sum_duplicates()
    self.matrix = matrix

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(int(s) for s in self.matrix.shape)

  def __len__(self) -> int:
    return self.matrix.shape[0]

  def __getitem__(self, index) -> np.ndarray:
    """Dense float32 rows: [F] for an int, [*index.shape, F] for an index array, [n, F] for a slice."""
    if isinstance(index, (int, np.integer)):
      return self.matrix[int(index)].toarray()[0]
    if isinstance(index, slice):
      return self.matrix[index].toarray()
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    rows = self.matrix[index.reshape(-1)].toarray()
    return rows.reshape(*index.shape, self.matrix.shape[1])

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    dense = self.matrix.toarray()
    return dense if dtype is None else dense.astype(dtype, copy=False)

  def subset(self, indices) -> "SparseRows":
    """The rows `indices`, still sparse (`Split.take`)."""
    return SparseRows(self.matrix[np.asarray(indices)])

  def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
    """float32 ([F] mean, [F] std) over the rows, bit for bit numpy's `x.mean(0)`, `x.std(0)` of the dense x.

    Computed on dense blocks of columns: numpy reduces axis 0 row after row for each column,
    so a block gives each column's numbers exactly, and sparse and dense copies of the same
    data train identically.
    """
    n, f = self.shape
    columns = self.matrix.tocsc()
    # Blocks of 2+ columns: numpy sums a lone column pairwise, but each column of a wider array row by row.
    step = max(2, COLUMN_BLOCK_ELEMENTS // max(n, 1))
    mean, std = np.empty(f, np.float32), np.empty(f, np.float32)
    for start in range(0, f, step):
      start = max(0, min(start, f - 2))  # a last block of one column takes its neighbour along
      block = columns[:, start:start + step].toarray(order="C")  # C order: the row-by-row sums of the dense x
      mean[start:start + step], std[start:start + step] = block.mean(0), block.std(0)
    return mean, std

  def row_min_max(self) -> tuple[np.ndarray, np.ndarray]:
    """([N] min, [N] max) of each row, implicit zeros included."""
    return (np.asarray(self.matrix.min(axis=1).toarray()).reshape(-1),
            np.asarray(self.matrix.max(axis=1).toarray()).reshape(-1))

  def fingerprint(self, digest: "hashlib._Hash") -> None:
    """Feeds the shape and the canonical CSR arrays to `digest`."""
    digest.update(np.asarray(self.shape, np.int64).tobytes())
    for part in (self.matrix.indptr.astype(np.int64), self.matrix.indices.astype(np.int64), self.matrix.data):
      digest.update(np.ascontiguousarray(part).tobytes())

  def __repr__(self) -> str:
    return f"SparseRows(shape={self.shape}, nnz={self.matrix.nnz})"
