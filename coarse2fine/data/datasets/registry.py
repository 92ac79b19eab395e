"""The explicit table of datasets a config can name (`data.name`)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections

from coarse2fine.data import taxonomy
from coarse2fine.data.datasets import (
  arrays,
  breeds,
  cars196,
  cifar,
  cub2011,
  digits,
  fashion_mnist,
  h5ad,
  image_folder,
  imagenet32,
  pbmc,
  records,
  sop,
  synthetic,
  tfds_generic,
  tiered,
  tiered_union,
)
from coarse2fine.data.splits import (
  HierarchicalData,
  carve_validation,
  relabel_with_taxonomies,
  split_protocol,
  subsample,
  without_fine,
)

DatasetLoader = Callable[[ml_collections.ConfigDict], HierarchicalData]

DATASETS: dict[str, DatasetLoader] = {
    "fashion_mnist": fashion_mnist.load,
    "cifar100": cifar.load_cifar100,
    "cifar10": cifar.load_cifar10,
    "digits": digits.load,
    "synthetic": synthetic.load,
    "arrays": arrays.load,
    "records": records.load,  # data.variant="synthetic": generated records
    "breeds": breeds.load,  # data.variant: living17, nonliving26, entity13 or entity30
    "tiered_imagenet": tiered.load,  # data.variant: "" (test split) or "val"
    "h5ad": h5ad.load,  # an AnnData file: data.path, data.coarse_key, data.fine_key, data.use_rep
    "pbmc": pbmc.load,  # scanpy's 700-cell 10x PBMC 68k .h5ad (transductive); data.variant: "" (X) or "raw"
    "tiered_union": tiered_union.load,  # FALCON's tieredImageNet: 34 coarse x 608 fine, full-size ImageNet
    "cars196": cars196.load,  # MaskCon: tfds cars196, 8 car types (taxonomy cars196_8) x 196 models
    "sop": sop.load,  # MaskCon: Stanford Online Products; data.variant: split1 or split2 (or data.split_file)
    "imagenet32": imagenet32.load,  # MaskCon: tfds imagenet_resized/32x32; data.taxonomy = imagenet_fine_to_coarse.json
    "cub2011": cub2011.load,  # F-SC: tfds caltech_birds2011, 200 species under cub200_flat (or cub200_orders)
    "tfds": tfds_generic.load,  # any tfds builder: data.tfds_name, data.label_key, data.coarse_key or data.taxonomy
    "image_folder": image_folder.load,  # your images: data.dir=ROOT/{train,test}/<coarse>/[<fine>/] or data.list=CSV/TSV
}


def load_dataset(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """Loads `data_config.name`; carves `data.val_fraction` of train into `val`, keeps `data.train_examples`,
  with `data.extra_taxonomies` labels parts of train with other taxonomies, and with `data.hide_fine_labels`
  forgets every fine label."""
  if data_config.name not in DATASETS:
    raise ValueError(f"Unknown dataset {data_config.name!r}; choose one of {sorted(DATASETS)}.")
  split_protocol(data_config)  # before any file is opened
  data = DATASETS[data_config.name](data_config)
  train, val = carve_validation(data.train, data_config.val_fraction, data_config.split_seed)
  train = subsample(train, data_config.train_examples, data_config.split_seed)
  # Each extra taxonomy in the main one's fine order (align), covering every fine class.
  extra = tuple(taxonomy.get_taxonomy(spec, data.taxonomy.fine_names)[0]
                for spec in data_config.extra_taxonomies)
  if extra:
    # The whole training split is relabelled; the validation and test splits keep the main taxonomy.
    train = relabel_with_taxonomies(train, (data.taxonomy, *extra), data_config.taxonomy_assignment)
  test = data.test
  if data_config.get("hide_fine_labels", False):
    # Last, so that the extra taxonomies above could still derive their coarse labels from the fine ones.
    train, val, test = without_fine(train), without_fine(val), without_fine(test)
  return dataclasses.replace(data, train=train, val=val, test=test, extra_taxonomies=extra)
