"""The explicit table of datasets a config can name (`data.name`)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections

from coarse2fine.data import arrays, breeds, cifar, digits, fashion_mnist, records, synthetic, tiered
from coarse2fine.data.splits import HierarchicalData, carve_validation, subsample

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
}


def load_dataset(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """Loads `data_config.name`, carves `data.val_fraction` of train into `val`, keeps `data.train_examples`."""
  if data_config.name not in DATASETS:
    raise ValueError(f"Unknown dataset {data_config.name!r}; choose one of {sorted(DATASETS)}.")
  data = DATASETS[data_config.name](data_config)
  train, val = carve_validation(data.train, data_config.val_fraction, data_config.split_seed)
  train = subsample(train, data_config.train_examples, data_config.split_seed)
  return dataclasses.replace(data, train=train, val=val)
