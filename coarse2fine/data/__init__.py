"""Hierarchical data, from files to device batches.

  datasets/      loaders, one per dataset, and the `DATASETS` table (`data.name`)
  files/         stored images decoded lazily
  taxonomy/      fine-to-coarse hierarchies and the built-in ones
  splits         `HierarchicalData` and `Split`, what every loader returns
  augmentation/  the host and device stages of each view kind
  pipeline       the grain pipeline: shuffle, host stage, batches, device prefetch
  batch          `Batch`, the contract between the pipeline, the device stage and the losses
"""

from coarse2fine.data.datasets.registry import DATASETS, load_dataset
from coarse2fine.data.splits import HierarchicalData, Split

__all__ = ["DATASETS", "HierarchicalData", "Split", "load_dataset"]
