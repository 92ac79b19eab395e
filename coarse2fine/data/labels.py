"""Class labels as users hold them (ints, strings, pandas categoricals, lists) -> integer ids, and their taxonomy.

`encode_labels` turns one label per example into [N] int64 ids and, for named labels, the
names the ids index: strings are numbered in sorted order, a categorical in its category
order (categories no example uses are dropped). Missing labels (None, NaN, a categorical's
missing code) are -1, which fine labels allow (unknown) and coarse labels do not. Integer
labels are kept as they are. `taxonomy_from_labels` builds the hierarchy the labels imply:
every fine class nested under the one coarse class its examples have.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from coarse2fine.data.taxonomy import Taxonomy

UNKNOWN = -1  # the id of a missing label (splits.UNKNOWN_FINE for fine labels)


def _is_missing(value) -> bool:
  """None, NaN, or pandas' NA (recognised by type name: pandas is not imported for it)."""
  return (value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))
          or type(value).__name__ in ("NAType", "NaTType"))


def _categorical(y):
  """(codes [N] int64 with -1 missing, names) of a pandas Categorical or category-typed Series, else None."""
  categories = getattr(getattr(y, "cat", y), "categories", None)
  codes = getattr(getattr(y, "cat", y), "codes", None)
  if categories is None or codes is None:
    return None
  codes = np.asarray(codes, np.int64)
  used = np.unique(codes[codes >= 0])  # categories no example uses are not classes of these data
  remap = np.full(len(categories) + 1, UNKNOWN, np.int64)  # the last slot maps code -1 to -1
  remap[used] = np.arange(len(used))
  return remap[codes], [str(categories[i]) for i in used]


def encode_labels(y, n: int, name: str, unknown_allowed: bool = False) -> tuple[np.ndarray, Optional[list[str]]]:
  """([n] int64 ids, names or None): `y` checked and numbered (module doc).

  Integer labels come back as given (names None); they must be >= 0, or -1 where unknown if
  `unknown_allowed`. Named labels get ids 0 .. L-1 into the returned names.
  """
  found = _categorical(y)
  if found is None:
    y = np.asarray(getattr(y, "to_numpy", lambda: y)())  # a pandas Series as its values
    if y.ndim != 1:
      raise ValueError(f"{name} must be a 1-D array of labels, got shape {y.shape}.")
    if y.dtype == object:
      missing = np.array([_is_missing(v) for v in y], bool)
      present = y[~missing]
      if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
        y = np.where(missing, UNKNOWN, y).astype(np.int64)  # ints with None for unknown: integer ids
      else:
        names, codes = np.unique(present.astype(str), return_inverse=True)
        ids = np.full(len(y), UNKNOWN, np.int64)
        ids[~missing] = codes
        found = ids, [str(v) for v in names]
    elif y.dtype.kind in "US":
      names, codes = np.unique(y.astype(str), return_inverse=True)
      found = codes.astype(np.int64).reshape(-1), [str(v) for v in names]
  if found is not None:
    ids, names = found
    if len(ids) != n:
      raise ValueError(f"{name} has {len(ids)} labels for the {n} examples of x; give one label per example.")
    if not unknown_allowed and (ids == UNKNOWN).any():
      raise ValueError(f"{name} is missing for {int((ids == UNKNOWN).sum())} examples (e.g. example "
                       f"{int(np.argmax(ids == UNKNOWN))}); drop those examples or label them.")
    return ids, names
  if len(y) != n:
    raise ValueError(f"{name} has {len(y)} labels for the {n} examples of x; give one label per example.")
  if not np.issubdtype(y.dtype, np.integer):
    unknown = "; mark unknown ones with -1 or None, not NaN" if unknown_allowed else ""
    raise ValueError(f"{name} must hold integer class ids, strings or a pandas categorical, got dtype {y.dtype} "
                     f"(e.g. cast with .astype(int){unknown}).")
  lowest = UNKNOWN if unknown_allowed else 0
  if len(y) and y.min() < lowest:
    allowed = "ids >= 0, or -1 where unknown" if unknown_allowed else "ids >= 0"
    raise ValueError(f"{name} holds {int((y < lowest).sum())} ids below {lowest} (e.g. {int(y.min())}); "
                     f"use {allowed}.")
  return y.astype(np.int64), None


def taxonomy_from_labels(coarse: np.ndarray, fine: Optional[np.ndarray], coarse_names: Optional[Sequence[str]],
                         fine_names: Optional[Sequence[str]] = None,
                         name: str = "user") -> tuple[Taxonomy, Optional[np.ndarray]]:
  """The taxonomy of the labels, and the fine labels as its ids [N] (-1 unknown), or None without fine labels.

  coarse: [N] ids indexing `coarse_names` (default "coarse_0", ...). fine: [N] ids, -1
  unknown; they index `fine_names` when given, else name themselves (their values). The fine
  classes are the distinct known fine labels, in sorted id order; without any, one
  placeholder per coarse class.
  """
  num_coarse = len(coarse_names) if coarse_names is not None else int(coarse.max()) + 1
  names = [str(c) for c in coarse_names] if coarse_names is not None else [f"coarse_{c}" for c in range(num_coarse)]
  if coarse.max() >= num_coarse:
    raise ValueError(f"coarse ids must lie in [0, {num_coarse}) for the {num_coarse} coarse_names, "
                     f"got {int(coarse.max())}.")
  empty = np.flatnonzero(np.bincount(coarse, minlength=num_coarse) == 0)
  if empty.size:
    raise ValueError(f"Coarse classes {[names[c] for c in empty[:5]]} have no examples; coarse ids must be "
                     "0 .. C-1 with examples in every class.")
  if fine is None or (fine == UNKNOWN).all():
    return Taxonomy.from_groups(name, {c: [f"{c}/unknown"] for c in names}), None
  known = fine != UNKNOWN
  values, fine_ids = np.unique(fine[known], return_inverse=True)
  label = (lambda v: str(fine_names[v])) if fine_names is not None else str
  pairs = np.unique(np.stack([fine_ids, coarse[known]]), axis=1)  # [2, P] distinct (fine, coarse)
  parents_per_fine = np.bincount(pairs[0], minlength=len(values))
  if (parents_per_fine > 1).any():
    k = int(np.flatnonzero(parents_per_fine > 1)[0])
    raise ValueError(f"fine class {label(values[k])} appears under coarse classes "
                     f"{[names[c] for c in pairs[1][pairs[0] == k]]}; every fine class needs one coarse parent.")
  childless = sorted(set(range(num_coarse)) - set(pairs[1].tolist()))
  if childless:
    raise ValueError(f"Coarse classes {[names[c] for c in childless[:5]]} have no example with a known fine label; "
                     "label some of their examples, or pass fine=None.")
  taxonomy = Taxonomy(name, [label(v) for v in values], names, pairs[1][np.argsort(pairs[0])])
  ids = np.full(len(fine), UNKNOWN, np.int64)
  ids[known] = fine_ids
  return taxonomy, ids
