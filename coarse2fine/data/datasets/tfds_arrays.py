"""Reads a tensorflow-datasets split into numpy arrays through `tfds.data_source`.

`tfds.data_source` reads ArrayRecord files with random access and needs no TensorFlow
at run time. Datasets that are not prepared yet are downloaded and prepared on first use
(which needs network access; offline machines get a clear error).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def open_source(name: str, split: str, data_dir: Optional[str] = None, prepare_hint: str = ""):
  """`tfds.data_source(name, split)`, or a RuntimeError that says how to prepare the dataset offline.

  `prepare_hint` replaces the default advice (e.g. where a manual download comes from).
  """
  import tensorflow_datasets as tfds  # heavy import, only when a tfds dataset is used

  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=True)
  except Exception as error:  # tfds raises many types: network, missing files, ...
    hint = prepare_hint or (
        f"On a machine without internet access, prepare the dataset elsewhere with `tfds build {name} "
        f"--file_format=array_record` and copy the tensorflow_datasets directory here, then set data.dir "
        f"(or $TFDS_DATA_DIR) to it.")
    raise RuntimeError(f"Could not read tfds dataset {name!r} (split {split!r}, data_dir={data_dir!r}): "
                       f"{type(error).__name__}: {error}\n{hint}") from error


def load_tfds_arrays(
    name: str, split: str, keys: Sequence[str], data_dir: Optional[str] = None
) -> dict[str, np.ndarray]:
  """Returns `{key: [N, ...] array}` for the requested feature keys of a tfds split."""
  return read_columns(open_source(name, split, data_dir), keys)


def read_columns(source, keys: Sequence[str]) -> dict[str, np.ndarray]:
  """`{key: [N, ...] array}` of the requested features of every record of an open data source."""
  columns: dict[str, list] = {key: [] for key in keys}
  for i in range(len(source)):
    record = source[i]
    for key in keys:
      columns[key].append(record[key])
  return {key: np.stack([np.asarray(v) for v in values]) if values else np.zeros((0,))
          for key, values in columns.items()}
