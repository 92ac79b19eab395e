"""Fine classes a dataset has but its taxonomy leaves out: their examples are not used, and the user is told.

A loader whose labels name more classes than `data.taxonomy` places (`Taxonomy.align`'s index_map holds -1
for them) drops those examples. `check_allowed` refuses that before any file is read when
`data.allow_dropped_fine_classes` is False; `report` says once, after the labels are read, which classes
were left out and how many examples of each split that cost: a warning for a taxonomy file, an info line
for a built-in that leaves classes out by design (cifar68, cifartoy_*; docs/datasets.md).
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import ml_collections
import numpy as np

from coarse2fine.data.taxonomy import BUILTIN_TAXONOMIES

FIELD = "allow_dropped_fine_classes"
MAX_NAMED = 10  # classes named in a message


def left_out(dataset_fine_names: Sequence[str], index_map: np.ndarray) -> list[str]:
  """The dataset's class names that `index_map` (dataset class -> fine id, -1 = not in the taxonomy) drops."""
  return [name for name, fine in zip(dataset_fine_names, np.asarray(index_map)) if fine < 0]


def _named(names: Sequence[str]) -> str:
  more = f", ... ({len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else ""
  return ", ".join(repr(n) for n in names[:MAX_NAMED]) + more


def check_allowed(data_config: ml_collections.ConfigDict, spec: str, dataset_fine_names: Sequence[str],
                  index_map: np.ndarray) -> None:
  """With `data.allow_dropped_fine_classes` False, a taxonomy `spec` that leaves classes out is an error."""
  if data_config.get(FIELD, True):
    return
  dropped = left_out(dataset_fine_names, index_map)
  if dropped:
    raise ValueError(f"data.taxonomy={spec!r} leaves out {len(dropped)} of the data's {len(index_map)} fine classes "
                     f"({_named(dropped)}), and data.{FIELD}=False: add them to the taxonomy, or set "
                     f"data.{FIELD}=True to train without their examples.")


def report(dataset: str, spec: str, dataset_fine_names: Sequence[str], index_map: np.ndarray,
           labels: Mapping[str, np.ndarray]) -> None:
  """Logs once which classes `spec` leaves out and the examples dropped per split ({split: [N] dataset labels})."""
  index_map = np.asarray(index_map)
  dropped = left_out(dataset_fine_names, index_map)
  if not dropped:
    return
  counts = ", ".join(f"{int((index_map[np.asarray(split_labels, np.int64)] < 0).sum())} of {len(split_labels)} "
                     f"{split}" for split, split_labels in labels.items())
  builtin = spec in BUILTIN_TAXONOMIES
  log = logging.info if builtin else logging.warning
  log("%s: data.taxonomy=%r leaves out %d of the data's %d fine classes (%s); their examples are not used: %s. %s",
      dataset, spec, len(dropped), len(index_map), _named(dropped), counts,
      "(By design of this built-in taxonomy.)" if builtin else
      f"Add them to the taxonomy file to keep them (data.{FIELD}=False makes this an error).")
