"""In-memory hierarchical datasets: arrays with coarse and (maybe) fine labels.

Every dataset loader in `coarse2fine.data` returns a `HierarchicalData`: a train and a
test `Split` (optionally a validation split carved from train), the taxonomy that links
fine to coarse classes, and how inputs are to be normalised.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from coarse2fine.data.taxonomy import Taxonomy
from coarse2fine.engine import random_streams

UNKNOWN_FINE = -1  # fine label of examples whose fine class is not known

# data.split_protocol: "official" = the dataset's own train/test split; "unseen_classes" = the zero-shot
# retrieval protocol of deep metric learning (Oh Song et al. 2016, SoftTriple, F-SC): every image of the first
# half of the classes (by class index) trains, every image of the second half tests (docs/datasets.md#splits).
SPLIT_PROTOCOLS = ("official", "unseen_classes")
UNSEEN_CLASSES_DATASETS = ("cub2011", "cars196")  # the loaders that implement "unseen_classes"


def split_protocol(data_config) -> str:
  """`data.split_protocol` ("official" when the config has no such field), checked against the dataset."""
  protocol = data_config.get("split_protocol", "official") or "official"
  if protocol not in SPLIT_PROTOCOLS:
    raise ValueError(f"Unknown data.split_protocol {protocol!r}; choose one of {SPLIT_PROTOCOLS}.")
  if protocol == "unseen_classes" and data_config.get("name") not in UNSEEN_CLASSES_DATASETS:
    raise ValueError(f"data.split_protocol='unseen_classes' is implemented for {UNSEEN_CLASSES_DATASETS}, not "
                     f"data.name={data_config.get('name')!r}; use 'official' (SOP's class-disjoint split is "
                     "data.variant='split1').")
  return protocol


@dataclasses.dataclass(frozen=True)
class Split:
  """One split held in host memory.

  Attributes:
    inputs: [N, H, W, C] uint8 images or [N, F] float32 vectors (an ndarray, or a lazy
      array-like with a `subset(indices)` method, e.g. `lazy_images.LazyImages`).
    coarse: [N] int32 coarse labels in [0, C_d) of the example's taxonomy d.
    fine: [N] int32 fine labels in [0, K), or -1 where unknown.
    dataset: [N] int32 taxonomy index d of each example (`HierarchicalData.taxonomies`),
      or None when every example follows the main taxonomy.
  """

  inputs: np.ndarray
  coarse: np.ndarray
  fine: np.ndarray
  dataset: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.coarse)

  def take(self, indices: np.ndarray) -> "Split":
    # Lazy inputs (e.g. lazy_images.LazyImages) select with `subset` rather than decode.
    inputs = self.inputs.subset(indices) if hasattr(self.inputs, "subset") else self.inputs[indices]
    dataset = None if self.dataset is None else self.dataset[indices]
    return Split(inputs, self.coarse[indices], self.fine[indices], dataset)

  @property
  def dataset_ids(self) -> np.ndarray:
    """[N] int32 taxonomy index of each example (all 0 without several taxonomies)."""
    return np.zeros(len(self), np.int32) if self.dataset is None else self.dataset


@dataclasses.dataclass(frozen=True)
class HierarchicalData:
  """A dataset ready for training: splits, taxonomy and input statistics.

  Attributes:
    name: registry name, e.g. "fashion_mnist".
    taxonomy: the fine-to-coarse hierarchy the labels follow (the test split's, always).
    extra_taxonomies: further hierarchies over the same fine classes that part of the
      training split is labelled with (`Split.dataset` says which; FALCON,
      docs/methods/falcon.md#several-taxonomies).
    train, test: the splits; `val` is None unless `data.val_fraction > 0`.
    mean, std: per-channel (images, in [0, 1] units) or per-feature (vectors)
      statistics used to normalise inputs.
    unseen_test_classes: True when no test fine class has a training example (`data.split_protocol =
      "unseen_classes"`): the test split is scored by retrieval, not by the classifier.
  """

  name: str
  taxonomy: Taxonomy
  train: Split
  test: Split
  val: Optional[Split] = None
  mean: Optional[np.ndarray] = None
  std: Optional[np.ndarray] = None
  extra_taxonomies: tuple[Taxonomy, ...] = ()
  unseen_test_classes: bool = False

  @property
  def taxonomies(self) -> tuple[Taxonomy, ...]:
    """The main taxonomy (index 0), then the extra ones."""
    return (self.taxonomy, *self.extra_taxonomies)

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.train.inputs.shape[1:])

  @property
  def is_image(self) -> bool:
    return self.train.inputs.ndim == 4

  @property
  def num_coarse(self) -> int:
    return self.taxonomy.num_coarse

  @property
  def num_fine(self) -> int:
    return self.taxonomy.num_fine


def make_split(inputs, fine=None, coarse=None, *, taxonomy: Taxonomy, where: str) -> Split:
  """Builds a validated `Split` from raw arrays.

  Coarse labels are derived from fine ones when absent; when both are given they
  must agree with the taxonomy. `where` names the data in error messages.
  """
  if not hasattr(inputs, "subset"):  # lazy inputs (e.g. lazy_images.LazyImages) stay lazy
    inputs = np.asarray(inputs)
  if fine is None and coarse is None:
    raise ValueError(f"{where}: neither coarse nor fine labels were given.")
  n = len(inputs)
  if fine is None:
    fine = np.full(n, UNKNOWN_FINE, np.int32)
  fine = np.asarray(fine).astype(np.int32).reshape(-1)
  known = fine != UNKNOWN_FINE
  bad_fine = known & ((fine < 0) | (fine >= taxonomy.num_fine))
  if bad_fine.any():
    raise ValueError(
        f"{where}: {int(bad_fine.sum())} fine labels are outside [0, {taxonomy.num_fine}) "
        f"(e.g. {fine[bad_fine][:5].tolist()}); the taxonomy {taxonomy.name!r} has "
        f"{taxonomy.num_fine} fine classes. Use -1 for unknown fine labels."
    )
  if coarse is None:
    if not known.all():
      raise ValueError(f"{where}: coarse labels are missing and some fine labels are unknown.")
    coarse = taxonomy.fine_to_coarse[fine]
  coarse = np.asarray(coarse).astype(np.int32).reshape(-1)
  bad_coarse = (coarse < 0) | (coarse >= taxonomy.num_coarse)
  if bad_coarse.any():
    raise ValueError(
        f"{where}: {int(bad_coarse.sum())} coarse labels are outside [0, {taxonomy.num_coarse}) "
        f"(e.g. {coarse[bad_coarse][:5].tolist()}); the taxonomy {taxonomy.name!r} has "
        f"{taxonomy.num_coarse} coarse classes."
    )
  if not (len(coarse) == len(fine) == n):
    raise ValueError(
        f"{where}: {n} inputs but {len(coarse)} coarse and {len(fine)} fine labels."
    )
  mismatch = known & (taxonomy.fine_to_coarse[np.where(known, fine, 0)] != coarse)
  if mismatch.any():
    raise ValueError(
        f"{where}: {int(mismatch.sum())} examples have a coarse label that is not the parent "
        f"of their fine label under taxonomy {taxonomy.name!r}."
    )
  return Split(inputs, coarse, fine)


def carve_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Optional[Split]]:
  """Splits off `fraction` of `train`, stratified by coarse label, with a fixed seed."""
  if fraction <= 0:
    return train, None
  if fraction >= 1:
    raise ValueError(f"data.val_fraction must be in [0, 1), got {fraction}.")
  rng = np.random.default_rng(seed)
  val_idx = []
  for c in np.unique(train.coarse):
    members = np.flatnonzero(train.coarse == c)
    rng.shuffle(members)
    val_idx.append(members[: int(round(fraction * len(members)))])
  val_idx = np.sort(np.concatenate(val_idx))
  keep = np.ones(len(train), bool)
  keep[val_idx] = False
  return train.take(np.flatnonzero(keep)), train.take(val_idx)


ASSIGNMENTS = ("halves", "parity")


def relabel_with_taxonomies(train: Split, taxonomies: tuple[Taxonomy, ...], assignment: str) -> Split:
  """Splits `train` between `taxonomies` (same fine classes) and gives each part its own coarse labels.

  assignment: "halves" (contiguous equal parts, in order: the first 1/D of the examples
  follow taxonomy 0, ...) or "parity" (example i follows taxonomy i mod D; FALCON's CIFAR-100
  T1/T2 split, docs/methods/falcon.md#several-taxonomies). Needs every fine label.
  """
  if assignment not in ASSIGNMENTS:
    raise ValueError(f"Unknown data.taxonomy_assignment {assignment!r}; choose one of {ASSIGNMENTS}.")
  main = taxonomies[0]
  for other in taxonomies[1:]:
    if other.fine_names != main.fine_names:
      raise ValueError(f"Taxonomy {other.name!r} does not have the fine classes of {main.name!r} in the same order "
                       f"({len(other.fine_names)} vs {len(main.fine_names)} fine classes); several taxonomies must "
                       "share one fine label set.")
  if (train.fine < 0).any():
    raise ValueError("Several taxonomies need the fine label of every training example, to derive its coarse label; "
                     f"{int((train.fine < 0).sum())} are unknown.")
  n, d = len(train), len(taxonomies)
  dataset = (np.arange(n) * d // n if assignment == "halves" else np.arange(n) % d).astype(np.int32)
  coarse = np.empty(n, np.int32)
  for k, taxonomy in enumerate(taxonomies):
    part = dataset == k
    coarse[part] = taxonomy.fine_to_coarse[train.fine[part]]
  return Split(train.inputs, coarse, train.fine, dataset)


def subsample(train: Split, size: int, seed: int) -> Split:
  """`size` examples of `train` drawn without replacement with a fixed seed, in their original order.

  size <= 0 or >= len(train) keeps everything. The coarse proportions stay close to the
  original ones (a uniform draw), which is what a smaller run of the same data wants.
  """
  if size <= 0 or size >= len(train):
    return train
  keep = np.sort(random_streams.stream_generator(seed, random_streams.TRAIN_SUBSET_STREAM).choice(len(train), size, replace=False))
  return train.take(keep)


def without_fine(split: Optional[Split]) -> Optional[Split]:
  """`split` with every fine label unknown (-1): what `data.hide_fine_labels` leaves of it (None stays None)."""
  if split is None:
    return None
  return dataclasses.replace(split, fine=np.full(len(split), UNKNOWN_FINE, np.int32))


def filter_and_remap(inputs, fine_dataset_ids, index_map: np.ndarray, taxonomy: Taxonomy, where: str) -> Split:
  """Keeps the examples whose dataset fine class the taxonomy covers; relabels them.

  `index_map[dataset_fine_id]` is the taxonomy's fine id, or -1 to drop (CIFAR68, CIFARtoy).
  """
  fine_dataset_ids = np.asarray(fine_dataset_ids).astype(np.int64)
  if fine_dataset_ids.size and (fine_dataset_ids.min() < 0 or fine_dataset_ids.max() >= len(index_map)):
    raise ValueError(f"{where}: labels outside [0, {len(index_map)}).")
  fine = index_map[fine_dataset_ids]
  keep = fine >= 0
  return make_split(np.asarray(inputs)[keep], fine=fine[keep], taxonomy=taxonomy, where=where)
