"""Fashion-MNIST (Xiao et al. 2017): 70k 28x28 grey images of 10 clothing classes.

`data.dir` names the folder of the four IDX files (or a tfds data folder holding a prepared
`fashion_mnist/`); a `data.dir` without them is an error, never a fallback to another copy.
Without `data.dir`, looked up in order: `$C2F_DATA_DIR` (and its `fashion-mnist/` or
`fashion_mnist/` sub-folder), `/usr/share/datasets/fashion-mnist` (Debian's
`dataset-fashion-mnist` package), then tfds `fashion_mnist` (downloads when online).
"""

from __future__ import annotations

import os
from typing import Optional

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data import dropped
from coarse2fine.data.datasets import idx
from coarse2fine.data.datasets.tfds_arrays import load_tfds_arrays
from coarse2fine.data.splits import HierarchicalData, filter_and_remap
from coarse2fine.data.taxonomy import FASHION_MNIST_CLASSES, get_taxonomy

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # training-set pixel statistics in [0, 1] units


def candidate_dirs(data_dir: Optional[str]) -> list[str]:
  """The folders searched for the IDX files: `data.dir` alone when set, else the default places."""
  if data_dir:
    return [data_dir]
  dirs = []
  env = os.environ.get("C2F_DATA_DIR")
  if env:
    dirs += [env, storage.join(env, "fashion-mnist"), storage.join(env, "fashion_mnist")]
  dirs.append(DEBIAN_DIR)
  return dirs


def _find_file(directory: str, stem: str) -> Optional[str]:
  for name in (stem + ".gz", stem):
    path = storage.join(directory, name)
    if storage.isfile(path):
      return path
  return None


def read_idx_dir(directory: str) -> Optional[dict[str, tuple[np.ndarray, np.ndarray]]]:
  """Reads both splits from a folder of IDX files; None if any file is missing."""
  paths = {split: [_find_file(directory, stem) for stem in stems] for split, stems in FILES.items()}
  if any(p is None for pair in paths.values() for p in pair):
    return None
  arrays = {}
  for split, (image_path, label_path) in paths.items():
    images, labels = idx.read_idx(image_path), idx.read_idx(label_path)
    if images.ndim != 3 or len(images) != len(labels):
      raise ValueError(f"{image_path}: expected [N, 28, 28] images matching {len(labels)} labels, got {images.shape}.")
    arrays[split] = (images[..., None], labels.astype(np.int64))
  return arrays


def read_arrays(data_dir: Optional[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Returns {"train": (images [N,28,28,1] uint8, labels [N]), "test": ...}."""
  looked = candidate_dirs(data_dir)
  for directory in looked:
    arrays = read_idx_dir(directory)
    if arrays is not None:
      return arrays
  if data_dir and not storage.isdir(storage.join(data_dir, "fashion_mnist")):  # not a tfds data folder either
    missing = [f"{stem}[.gz]" for stems in FILES.values() for stem in stems if _find_file(data_dir, stem) is None]
    raise FileNotFoundError(
        f"data.dir={data_dir!r} lacks the Fashion-MNIST IDX files {', '.join(missing)}; put the four files of the "
        f"Fashion-MNIST release there (or a tfds data folder with fashion_mnist/ prepared), or leave data.dir unset "
        f"to use $C2F_DATA_DIR, {DEBIAN_DIR} (`apt-get install dataset-fashion-mnist`) or tfds.")
  try:
    arrays = {}
    for split in FILES:
      columns = load_tfds_arrays("fashion_mnist", split, ("image", "label"), data_dir=data_dir)
      arrays[split] = (columns["image"].astype(np.uint8), columns["label"].astype(np.int64))
    return arrays
  except RuntimeError as error:
    wanted = ", ".join(f"{stem}.gz" for stems in FILES.values() for stem in stems)
    raise FileNotFoundError(
        f"Fashion-MNIST not found. Looked for {wanted} in: {', '.join(looked)}; then tried "
        f"tfds, which failed ({error}).\nGet the data with `apt-get install dataset-fashion-mnist` "
        f"(Debian/Ubuntu), or download the four IDX files from the Fashion-MNIST release into a "
        f"folder and pass --config.data.dir=FOLDER (or set $C2F_DATA_DIR)."
    ) from None


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  spec = data_config.taxonomy or "fmnist3"
  taxonomy, index_map = get_taxonomy(spec, FASHION_MNIST_CLASSES)
  dropped.check_allowed(data_config, spec, FASHION_MNIST_CLASSES, index_map)  # before the files are read
  arrays = read_arrays(data_config.dir or None)
  dropped.report("fashion_mnist", spec, FASHION_MNIST_CLASSES, index_map,
                 {split: labels for split, (_, labels) in arrays.items()})
  splits = {
      split: filter_and_remap(images, labels, index_map, taxonomy, where=f"fashion_mnist/{split}")
      for split, (images, labels) in arrays.items()
  }
  return HierarchicalData(
      name="fashion_mnist", taxonomy=taxonomy, train=splits["train"], test=splits["test"],
      mean=np.array([MEAN], np.float32), std=np.array([STD], np.float32))
