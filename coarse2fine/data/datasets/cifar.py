"""CIFAR-10 and CIFAR-100 through tensorflow-datasets, with their coarse-label variants.

* `cifar100`: taxonomy `cifar100` (= `cifar100_t1`, the official 20 super-classes),
  `cifar100_t2` (FALCON's alternative), `cifar68` (32 fine classes removed), or a file.
  `data.variant="si"` gives CIFAR-SI: the first `int(n_c * keep[c])` images of each
  fine class, in file order, in train and test alike (FALCON's imbalanced variant).
* `cifar10`: taxonomies `cifartoy_good` / `cifartoy_bad` (MaskCon's CIFARtoy; deer and
  frog are dropped).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from coarse2fine.data import dropped
from coarse2fine.data.datasets.tfds_arrays import load_tfds_arrays
from coarse2fine.data.splits import HierarchicalData, filter_and_remap, make_split
from coarse2fine.data.taxonomy import CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR_SI_KEEP, get_taxonomy

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
OFFICIAL_T1 = ("cifar100", "cifar100_t1")
VARIANTS = ("full", "si")


def subsample_si(labels: np.ndarray, keep=CIFAR_SI_KEEP) -> np.ndarray:
  """Indices of CIFAR-SI: the first int(n_c * keep[c]) examples of class c, in file order."""
  kept = []
  for c, fraction in enumerate(keep):
    members = np.flatnonzero(labels == c)
    kept.append(members[: int(len(members) * fraction)])
  return np.sort(np.concatenate(kept))


def load_cifar100(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  variant = data_config.variant or "full"
  if variant not in VARIANTS:
    raise ValueError(f"Unknown CIFAR-100 variant {variant!r}; choose one of {VARIANTS}.")
  taxonomy_name = data_config.taxonomy or "cifar100"
  taxonomy, index_map = get_taxonomy(taxonomy_name, CIFAR100_CLASSES)
  dropped.check_allowed(data_config, taxonomy_name, CIFAR100_CLASSES, index_map)
  splits, labels = {}, {}
  for split in ("train", "test"):
    columns = load_tfds_arrays("cifar100", split, ("image", "label", "coarse_label"), data_config.dir or None)
    images, fine, coarse = columns["image"], columns["label"].astype(np.int64), columns["coarse_label"]
    if variant == "si":
      keep = subsample_si(fine)
      images, fine, coarse = images[keep], fine[keep], coarse[keep]
    labels[split] = fine
    where = f"cifar100/{split}"
    if taxonomy_name in OFFICIAL_T1:
      # The official coarse labels double-check the built-in T1 table.
      splits[split] = make_split(images, fine=index_map[fine], coarse=coarse, taxonomy=taxonomy, where=where)
    else:
      splits[split] = filter_and_remap(images, fine, index_map, taxonomy, where=where)
  dropped.report("cifar100", taxonomy_name, CIFAR100_CLASSES, index_map, labels)
  return HierarchicalData(
      name="cifar100", taxonomy=taxonomy, train=splits["train"], test=splits["test"],
      mean=CIFAR_MEAN, std=CIFAR_STD)


def load_cifar10(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  spec = data_config.taxonomy or "cifartoy_good"
  taxonomy, index_map = get_taxonomy(spec, CIFAR10_CLASSES)
  dropped.check_allowed(data_config, spec, CIFAR10_CLASSES, index_map)
  splits, labels = {}, {}
  for split in ("train", "test"):
    columns = load_tfds_arrays("cifar10", split, ("image", "label"), data_config.dir or None)
    labels[split] = columns["label"]
    splits[split] = filter_and_remap(
        columns["image"], columns["label"], index_map, taxonomy, where=f"cifar10/{split}")
  dropped.report("cifar10", spec, CIFAR10_CLASSES, index_map, labels)
  return HierarchicalData(
      name="cifar10", taxonomy=taxonomy, train=splits["train"], test=splits["test"],
      mean=CIFAR_MEAN, std=CIFAR_STD)
