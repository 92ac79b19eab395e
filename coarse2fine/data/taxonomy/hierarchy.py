"""Fine-to-coarse class hierarchies.

A :class:`Taxonomy` maps each of ``K`` fine classes to exactly one of ``C``
coarse classes. Fine and coarse ids are integer positions in ``fine_names``
and ``coarse_names``; ``fine_to_coarse[k]`` is the coarse id of fine class k.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coarse2fine import storage

# How many names to quote in error messages before truncating.
_MAX_LISTED = 5


def _preview(names: Iterable[str]) -> str:
  """Render at most ``_MAX_LISTED`` names for an error message."""
  names = list(names)
  shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
  if len(names) > _MAX_LISTED:
    shown += f", ... ({len(names) - _MAX_LISTED} more)"
  return shown


def _check_names(kind: str, names: Sequence[str]) -> None:
  """Raise if ``names`` has empty or duplicated entries."""
  bad = [n for n in names if not isinstance(n, str) or not n]
  if bad:
    raise ValueError(f"{kind} names must be non-empty strings; got {_preview(bad)}.")
  dups = [n for n, count in Counter(names).items() if count > 1]
  if dups:
    raise ValueError(
      f"{kind} names must be unique; duplicated: {_preview(dups)}. "
      "Rename or remove the repeated entries."
    )


def _resolve_order(kind: str, appearance: Sequence[str], order: Sequence[str] | None) -> list[str]:
  """Return the id order for ``kind`` names: ``order`` if given, else first appearance.

  ``order`` must name exactly the classes that appear in the mapping, so a
  typo cannot silently create or drop a class.
  """
  unique = list(dict.fromkeys(appearance))
  if order is None:
    return unique
  order = list(order)
  _check_names(f"{kind} order", order)
  order_set, unique_set = set(order), set(unique)
  missing = [n for n in unique if n not in order_set]
  extra = [n for n in order if n not in unique_set]
  if missing or extra:
    parts = []
    if missing:
      parts.append(f"classes missing from {kind}_order: {_preview(missing)}")
    if extra:
      parts.append(f"{kind}_order names unknown classes: {_preview(extra)}")
    raise ValueError(
      f"{kind}_order must list exactly the {kind} classes of the mapping; "
      + "; ".join(parts) + "."
    )
  return order


@dataclass(frozen=True, eq=False)
class Taxonomy:
  """A two-level hierarchy where every fine class has exactly one coarse parent.

  Attributes:
    name: identifier, e.g. ``"cifar100"``.
    fine_names: the ``K`` fine class names; position = fine id.
    coarse_names: the ``C`` coarse class names; position = coarse id.
    fine_to_coarse: int32 ``[K]`` coarse id of each fine class (read-only).
  """

  name: str
  fine_names: tuple[str, ...]
  coarse_names: tuple[str, ...]
  fine_to_coarse: np.ndarray

  def __post_init__(self) -> None:
    # frozen=True blocks normal assignment; normalise inputs via object.__setattr__.
    object.__setattr__(self, "fine_names", tuple(self.fine_names))
    object.__setattr__(self, "coarse_names", tuple(self.coarse_names))
    _check_names("fine", self.fine_names)
    _check_names("coarse", self.coarse_names)
    if not self.fine_names or not self.coarse_names:
      raise ValueError(f"Taxonomy {self.name!r} needs at least one fine and one coarse class.")

    parents = np.asarray(self.fine_to_coarse)
    if parents.ndim != 1 or parents.shape[0] != len(self.fine_names):
      raise ValueError(
        f"Taxonomy {self.name!r}: fine_to_coarse must have shape "
        f"[{len(self.fine_names)}] (one parent per fine class); got {parents.shape}."
      )
    if parents.size and not np.issubdtype(parents.dtype, np.integer):
      raise ValueError(f"Taxonomy {self.name!r}: fine_to_coarse must hold integers; got {parents.dtype}.")
    orphans = [f for f, c in zip(self.fine_names, parents) if not 0 <= c < len(self.coarse_names)]
    if orphans:
      raise ValueError(
        f"Taxonomy {self.name!r}: fine classes without a valid coarse parent "
        f"(id outside 0..{len(self.coarse_names) - 1}): {_preview(orphans)}."
      )
    counts = np.bincount(parents, minlength=len(self.coarse_names))
    empty = [self.coarse_names[c] for c in np.flatnonzero(counts == 0)]
    if empty:
      raise ValueError(
        f"Taxonomy {self.name!r}: coarse classes without any fine child: {_preview(empty)}. "
        "Remove them or assign fine classes to them."
      )
    # Copy so the caller's array can't mutate the taxonomy after validation.
    frozen = parents.astype(np.int32, copy=True)
    frozen.flags.writeable = False
    object.__setattr__(self, "fine_to_coarse", frozen)

  def __eq__(self, other: object) -> bool:
    if not isinstance(other, Taxonomy):
      return NotImplemented
    return (
      self.name == other.name
      and self.fine_names == other.fine_names
      and self.coarse_names == other.coarse_names
      and np.array_equal(self.fine_to_coarse, other.fine_to_coarse)
    )

  def __hash__(self) -> int:
    return hash((self.name, self.fine_names, self.coarse_names, self.fine_to_coarse.tobytes()))

  def __repr__(self) -> str:
    return f"Taxonomy(name={self.name!r}, num_fine={self.num_fine}, num_coarse={self.num_coarse})"

  # ------------------------------------------------------------------ queries

  @property
  def num_fine(self) -> int:
    """Number of fine classes ``K``."""
    return len(self.fine_names)

  @property
  def num_coarse(self) -> int:
    """Number of coarse classes ``C``."""
    return len(self.coarse_names)

  def relation_matrix(self, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot fine-to-coarse matrix ``R`` of shape ``[K, C]``; ``R[k, c] = 1`` iff c is k's parent."""
    mat = np.zeros((self.num_fine, self.num_coarse), dtype=dtype)
    mat[np.arange(self.num_fine), self.fine_to_coarse] = 1
    return mat

  def children(self, coarse_id: int) -> np.ndarray:
    """Fine ids (int32 ``[n_c]``, increasing) whose parent is ``coarse_id``."""
    if not 0 <= int(coarse_id) < self.num_coarse:
      raise ValueError(
        f"Taxonomy {self.name!r}: coarse id {coarse_id} out of range [0, {self.num_coarse})."
      )
    return np.flatnonzero(self.fine_to_coarse == int(coarse_id)).astype(np.int32)

  def coarse_of(self, fine_labels: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Map fine labels (any shape) to coarse labels (same shape, int32)."""
    labels = np.asarray(fine_labels)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"Taxonomy {self.name!r}: fine labels must be integers; got {labels.dtype}.")
    bad = labels[(labels < 0) | (labels >= self.num_fine)]
    if bad.size:
      raise ValueError(
        f"Taxonomy {self.name!r}: fine labels must lie in [0, {self.num_fine}); "
        f"found {np.unique(bad)[:_MAX_LISTED].tolist()}. "
        "Drop or remap examples of classes outside the taxonomy (see Taxonomy.align)."
      )
    return self.fine_to_coarse[labels.astype(np.intp)]

  # ------------------------------------------------------------ constructors

  @classmethod
  def from_mapping(
    cls,
    name: str,
    mapping: Mapping[str, str] | Sequence[tuple[str, str]],
    fine_order: Sequence[str] | None = None,
    coarse_order: Sequence[str] | None = None,
  ) -> Taxonomy:
    """Build from ``fine -> coarse`` pairs; ids follow the orders given, else first appearance."""
    pairs = list(mapping.items()) if isinstance(mapping, Mapping) else [tuple(p) for p in mapping]
    for pair in pairs:
      if len(pair) != 2:
        raise ValueError(f"Taxonomy {name!r}: expected (fine, coarse) pairs; got {pair!r}.")
    fines = [f for f, _ in pairs]
    _check_names("fine", fines)  # a fine class listed twice would have two parents
    parent = dict(pairs)
    fine_ids = _resolve_order("fine", fines, fine_order)
    coarse_ids = _resolve_order("coarse", [c for _, c in pairs], coarse_order)
    coarse_index = {c: i for i, c in enumerate(coarse_ids)}
    f2c = np.array([coarse_index[parent[f]] for f in fine_ids], dtype=np.int32)
    return cls(name, tuple(fine_ids), tuple(coarse_ids), f2c)

  @classmethod
  def from_groups(
    cls,
    name: str,
    groups: Mapping[str, Sequence[str]],
    fine_order: Sequence[str] | None = None,
  ) -> Taxonomy:
    """Build from ``coarse -> [fine, ...]``; coarse ids in dict order, fine ids per ``fine_order`` or flattened order."""
    empty = [c for c, members in groups.items() if len(members) == 0]
    if empty:
      raise ValueError(
        f"Taxonomy {name!r}: coarse classes without any fine child: {_preview(empty)}. "
        "Remove them or assign fine classes to them."
      )
    for coarse, members in groups.items():
      if isinstance(members, str):
        raise ValueError(
          f"Taxonomy {name!r}: members of {coarse!r} must be a list of names, not the string {members!r}."
        )
    pairs = [(f, c) for c, members in groups.items() for f in members]
    return cls.from_mapping(name, pairs, fine_order=fine_order, coarse_order=list(groups))

  @classmethod
  def from_file(cls, path: str | os.PathLike, name: str | None = None) -> Taxonomy:
    """Load a ``.json`` (groups or ``fine_to_coarse`` form) or ``.csv``/``.txt`` (``fine,coarse`` rows) file."""
    # A local path as a `Path` (messages as before); an object store's URL stays a string (`Path` folds its `//`).
    path = str(Path(path)) if storage.is_local(path) else os.fspath(path)
    base = Path(posixpath.basename(path))
    name = name if name is not None else base.stem
    suffix = base.suffix.lower()
    if not storage.isfile(path):
      raise ValueError(f"Taxonomy file {str(path)!r} does not exist.")
    try:
      if suffix == ".json":
        return cls._from_json(path, name)
      if suffix in (".csv", ".txt"):
        return cls._from_csv(path, name)
    except ValueError as err:
      if str(path) in str(err):
        raise
      raise ValueError(f"Invalid taxonomy file {str(path)!r}: {err}") from err
    raise ValueError(
      f"Taxonomy file {str(path)!r} has unsupported extension {suffix!r}; use .json, .csv or .txt."
    )

  @classmethod
  def _from_json(cls, path: str, name: str) -> Taxonomy:
    try:
      data = json.loads(storage.read_text(path))
    except json.JSONDecodeError as err:
      raise ValueError(f"Taxonomy file {str(path)!r} is not valid JSON (line {err.lineno}): {err.msg}.") from err
    if not isinstance(data, dict):
      raise ValueError("the top level must be a JSON object.")
    data = dict(data)
    fine_order = data.pop("fine_order", None)
    coarse_order = data.pop("coarse_order", None)
    data.pop("name", None)  # written by save(); the caller's name wins
    if "fine_to_coarse" in data:
      mapping = data.pop("fine_to_coarse")
      if data:
        raise ValueError(f"unexpected keys next to 'fine_to_coarse': {_preview(data)}.")
      if not isinstance(mapping, dict):
        raise ValueError("'fine_to_coarse' must be an object of fine -> coarse names.")
      return cls.from_mapping(name, mapping, fine_order, coarse_order)
    # Groups form: every remaining key is a coarse class with a list of fine names.
    bad = [k for k, v in data.items() if not isinstance(v, list)]
    if bad:
      raise ValueError(f"coarse classes must map to lists of fine names; not a list: {_preview(bad)}.")
    if coarse_order is not None:
      _resolve_order("coarse", list(data), coarse_order)
      data = {c: data[c] for c in coarse_order}
    return cls.from_groups(name, data, fine_order)

  @classmethod
  def _from_csv(cls, path: str, name: str) -> Taxonomy:
    pairs: list[tuple[str, str]] = []
    where: dict[str, int] = {}
    with storage.open_text(path, newline="") as fh:
      for lineno, row in enumerate(csv.reader(fh), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
          continue
        if not pairs and [c.lower() for c in cells] == ["fine", "coarse"]:
          continue  # optional header
        if len(cells) != 2 or not all(cells):
          raise ValueError(
            f"Taxonomy file {str(path)!r}, line {lineno}: expected 'fine,coarse', got {','.join(row)!r}."
          )
        if cells[0] in where:
          raise ValueError(
            f"Taxonomy file {str(path)!r}, line {lineno}: fine class {cells[0]!r} already "
            f"assigned on line {where[cells[0]]}; each fine class needs exactly one parent."
          )
        where[cells[0]] = lineno
        pairs.append((cells[0], cells[1]))
    if not pairs:
      raise ValueError(f"Taxonomy file {str(path)!r} contains no 'fine,coarse' rows.")
    return cls.from_mapping(name, pairs)

  # -------------------------------------------------------------- persistence

  def to_json_dict(self) -> dict:
    """JSON-serialisable dict in ``fine_to_coarse`` form that round-trips via :meth:`from_file`."""
    return {
      "name": self.name,
      "fine_to_coarse": {f: self.coarse_names[c] for f, c in zip(self.fine_names, self.fine_to_coarse)},
      "fine_order": list(self.fine_names),
      "coarse_order": list(self.coarse_names),
    }

  def save(self, path: str | os.PathLike) -> None:
    """Write :meth:`to_json_dict` to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    # Temp file in the target dir so os.replace stays on one filesystem (atomic rename).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
      with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(self.to_json_dict(), fh, indent=2)
        fh.write("\n")
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.unlink(tmp)
      raise

  # ---------------------------------------------------------------- reshaping

  def subset(self, fine_names_to_keep: Iterable[str], name: str | None = None) -> Taxonomy:
    """Keep only the given fine classes (in this taxonomy's order); drops coarse classes left empty."""
    keep = set(fine_names_to_keep)
    unknown = sorted(keep - set(self.fine_names))
    if unknown:
      raise ValueError(f"Taxonomy {self.name!r} has no fine classes {_preview(unknown)}.")
    pairs = [(f, self.coarse_names[c]) for f, c in zip(self.fine_names, self.fine_to_coarse) if f in keep]
    if not pairs:
      raise ValueError(f"Taxonomy {self.name!r}: subset would keep no fine classes.")
    kept_coarse = {c for _, c in pairs}
    coarse_order = [c for c in self.coarse_names if c in kept_coarse]
    return Taxonomy.from_mapping(name or self.name, pairs, coarse_order=coarse_order)

  def align(self, dataset_fine_names: Sequence[str]) -> tuple[Taxonomy, np.ndarray]:
    """Re-index fine ids to follow a dataset's class order.

    Returns ``(taxonomy, index_map)``: the taxonomy with fine ids in the
    dataset's order (restricted to this taxonomy's classes; coarse ids
    unchanged) and int32 ``index_map`` of shape ``[len(dataset_fine_names)]``
    mapping dataset fine id -> new fine id, or -1 for dataset classes this
    taxonomy leaves out (their examples should be dropped).
    """
    dataset = list(dataset_fine_names)
    _check_names("dataset fine", dataset)
    dataset_set = set(dataset)
    missing = [f for f in self.fine_names if f not in dataset_set]
    if missing:
      raise ValueError(
        f"Taxonomy {self.name!r} names fine classes the dataset lacks: {_preview(missing)}; "
        f"dataset classes are {_preview(dataset)}. Check the spelling or use a matching taxonomy."
      )
    parent = {f: self.coarse_names[c] for f, c in zip(self.fine_names, self.fine_to_coarse)}
    order = [f for f in dataset if f in parent]
    aligned = Taxonomy.from_mapping(
      self.name, [(f, parent[f]) for f in order], coarse_order=self.coarse_names
    )
    new_id = {f: i for i, f in enumerate(order)}
    index_map = np.array([new_id.get(f, -1) for f in dataset], dtype=np.int32)
    return aligned, index_map
