"""Lazily decoded images squashed to a fixed square, for datasets whose images vary in size (Cars196, SOP).

MaskCon evaluates these at `Resize((224, 224))`: the whole image is resized to a square, whatever its aspect
ratio, with no crop. `ResizedImages` decodes that view when indexed: [N, size, size, 3] uint8, like
`lazy_images.LazyImages` (which keeps a centre crop instead); its training views are random resized crops of
the full stored image, as in the official code (`lazy_images`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import ml_collections
import numpy as np

from coarse2fine.data import dropped
from coarse2fine.data.files.lazy_images import ConcatReader, LazyImages, TfdsReader
from coarse2fine.data.splits import make_split, split_protocol

DEFAULT_IMAGE_SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # torchvision's ImageNet statistics (MaskCon's)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def image_size(data_config: ml_collections.ConfigDict) -> int:
  """`data.image_size` (224 when the config has no such field), checked to be a positive integer."""
  size = data_config.get("image_size", DEFAULT_IMAGE_SIZE)
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
    raise ValueError(f"data.image_size must be a positive integer (the side images are resized to), got {size!r}.")
  return int(size)


class ResizedImages(LazyImages):
  """[N, size, size, 3] uint8 images, decoded and squashed to size x size only when indexed.

  Indexing, `subset`, `encoded` and pickling behave as for `lazy_images.LazyImages`.
  """

  def __init__(self, reader, index: Optional[np.ndarray] = None, num: int = 0, size: int = DEFAULT_IMAGE_SIZE,
               channels: int = 3):
    super().__init__(reader, index, num, size=size, resize=0, channels=channels)


def tfds_reader(name: str, split: str, data_dir: Optional[str] = None, hint: str = "",
                image_key: str = "image") -> TfdsReader:
  """A reader of tfds `name`/`split` (images under `image_key`) that downloads and prepares it when it can."""
  setup = (f"Prepare it with `tfds build {name} --file_format=array_record` (on a machine with network access "
           f"if need be, then copy the tensorflow_datasets folder here) and set data.dir (or $TFDS_DATA_DIR) to "
           f"that folder. {hint}").rstrip()
  return TfdsReader(name, split, data_dir, download=True, setup_hint=setup, image_key=image_key)


def load_tfds_classes(builder: str, dataset: str, data_config: ml_collections.ConfigDict, taxonomy, index_map,
                      hint: str = "", class_names: Sequence[str] = (), spec: str = ""):
  """The `train` and `test` splits of a tfds image-classification builder with lazily resized images.

  `label` is the 0-based class of `index_map` (tfds label -> fine id, -1 = left out by the taxonomy);
  labels outside it fail by name, and classes the taxonomy leaves out are dropped (with `class_names`, the
  builder's, and `spec`, the taxonomy's name: refused or reported, `dropped`). `data.split_protocol`:
  "official" keeps tfds's train and test splits; "unseen_classes" pools them (train records first, each in
  record order) and re-splits by tfds label: labels below len(index_map) // 2 train, the others test
  (`unseen_class_split`). Returns `{"train": Split, "test": Split}` named `dataset/split`.
  """
  size = image_size(data_config)
  protocol = split_protocol(data_config)
  if class_names:
    dropped.check_allowed(data_config, spec, class_names, index_map)
  readers, labels_of = {}, {}
  for split in ("train", "test"):
    readers[split] = tfds_reader(builder, split, data_config.dir or None, hint)
    labels = readers[split].labels()
    bad = (labels < 0) | (labels >= len(index_map))
    if bad.any():
      raise ValueError(f"{dataset}/{split}: {int(bad.sum())} labels are outside [0, {len(index_map)}) (e.g. "
                       f"{np.unique(labels[bad])[:5].tolist()}); is this the {len(index_map)}-class tfds {builder}?")
    labels_of[split] = labels
  if protocol == "official":
    parts = {split: (readers[split], labels_of[split], np.arange(len(labels_of[split]))) for split in readers}
  else:
    pooled = ConcatReader([readers["train"], readers["test"]], [len(labels_of["train"]), len(labels_of["test"])])
    labels = np.concatenate([labels_of["train"], labels_of["test"]])
    train, test = unseen_class_split(labels, len(index_map))
    parts = {"train": (pooled, labels, train), "test": (pooled, labels, test)}
  splits = {}
  for split, (reader, labels, rows) in parts.items():
    fine = index_map[labels[rows]]
    kept = fine >= 0
    where = f"{dataset}/{split}" + ("" if protocol == "official" else f" ({protocol})")
    splits[split] = make_split(ResizedImages(reader, rows[kept], size=size), fine=fine[kept], taxonomy=taxonomy,
                               where=where)
  if class_names:
    dropped.report(dataset, spec, class_names, index_map,
                   {split: labels[rows] for split, (_, labels, rows) in parts.items()})
  return splits


def unseen_class_split(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) positions of [N] class ids in [0, num_classes): the first num_classes // 2 classes train.

  The deep-metric-learning split of CUB-200-2011 (classes 1-100 / 101-200) and Cars196 (1-98 / 99-196)
  of Oh Song et al. 2016, used by SoftTriple and F-SC; each part keeps the order of `labels`.
  """
  labels = np.asarray(labels)
  seen = labels < num_classes // 2
  return np.flatnonzero(seen), np.flatnonzero(~seen)
