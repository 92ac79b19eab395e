"""Input checks at load, for every dataset and the Python API: bad values stop a run before its first step.

NaN or inf in the inputs would surface steps later as a non-finite loss (after SCGM's E-step
had run on them); values so large that their squares overflow float32 sums (the per-feature
statistics that normalise the inputs) do the same. Both are errors naming the split, the count
and the first index. Constant examples (every value equal) are legal but carry nothing once
normalised, and often mean a broken export: a warning. uint8 images cannot hold bad values;
the constant check skips images decoded from files on demand (it would decode them all).
"""

from __future__ import annotations

import numpy as np
from absl import logging

from coarse2fine.data.sparse_rows import SparseRows

# |x| above this: squares summed over a million examples leave float32 (3.4e38).
MAX_ABS_VALUE = 1e15


def check_finite(x: np.ndarray, where: str) -> None:
  """Refuses NaN, inf and values beyond float32 (finite in float64), naming the count and the first index."""
  bad = ~np.isfinite(np.asarray(x, np.float32))
  if bad.any():
    raise ValueError(f"{where}: {int(bad.sum())} values are NaN or infinite (e.g. at index "
                     f"{tuple(int(i) for i in np.argwhere(bad)[0])}); remove or impute them.")


def check_range(x: np.ndarray, where: str) -> None:
  """Refuses finite values beyond +-MAX_ABS_VALUE, naming the count, the first index and the fix."""
  big = np.abs(np.asarray(x, np.float32)) > MAX_ABS_VALUE
  if big.any():
    first = tuple(int(i) for i in np.argwhere(big)[0])
    raise ValueError(f"{where}: {int(big.sum())} values exceed {MAX_ABS_VALUE:.0e} in magnitude (e.g. "
                     f"{float(np.asarray(x)[first]):.3g} at index {first}), beyond what float32 statistics "
                     "hold; rescale the features (e.g. log or standardise them) or fix the export.")


def constant_examples(x: np.ndarray) -> np.ndarray:
  """[N] bool: examples whose values are all equal (every pixel, or every feature)."""
  flat = np.asarray(x).reshape(len(x), -1)
  return flat.max(axis=1) == flat.min(axis=1)


def check_sparse(rows, where: str) -> None:
  """`check_finite` and `check_range` of a `SparseRows` on its stored values (implicit zeros are fine)."""
  values = rows.matrix.data
  for check in (check_finite, check_range):
    try:
      check(values, where)
    except ValueError:  # name the [row, column] of the first bad value, not its place in the CSR data
      bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_VALUE)
      first = int(np.argmax(bad))
      row = int(np.searchsorted(rows.matrix.indptr, first, side="right")) - 1
      raise ValueError(f"{where}: {int(bad.sum())} values are NaN, infinite or beyond {MAX_ABS_VALUE:.0e} in "
                       f"magnitude (e.g. {values[first]!r} at index ({row}, {int(rows.matrix.indices[first])})); "
                       "remove, impute or rescale them.") from None


def check_split_inputs(inputs, where: str) -> None:
  """The checks above on one split's inputs held in memory (lazily decoded files are skipped)."""
  if isinstance(inputs, SparseRows) and len(inputs):
    check_sparse(inputs, where)
    low, high = inputs.row_min_max()
    constant = low == high
  elif not isinstance(inputs, np.ndarray) or len(inputs) == 0:
    return
  else:
    if inputs.dtype != np.uint8:
      check_finite(inputs, where)
      check_range(inputs, where)
    constant = constant_examples(inputs)
  if constant.any():
    logging.warning("%s: %d of %d examples are constant (every value equal, e.g. example %d); they carry no "
                    "signal once normalised. Check the export if that is not expected.", where,
                    int(constant.sum()), len(inputs), int(np.argmax(constant)))


def check_inputs(data) -> None:
  """Checks every split of a `HierarchicalData` (train, val when present, test)."""
  for name in ("train", "val", "test"):
    split = getattr(data, name)
    if split is not None:
      check_split_inputs(split.inputs, f"{data.name} {name} split inputs")
