"""Stanford Cars (Krause et al. 2013) with MaskCon's 8 car types as coarse labels (METHODS.md 8.6).

tfds `cars196`: 8,144 train and 8,041 test images of 196 car models; `label` is the 0-based devkit class
(= `taxonomies.CARS196_CLASSES` order), the official train/test split is kept. The default taxonomy is the
built-in `cars196_8` (0 cab 18, 1 sedan 50, 2 SUV 36, 3 convertible 30, 4 coupe 29, 5 hatchback 14, 6 wagon 6,
7 van 13 fine classes; the official code's mapping); `data.taxonomy` may name another built-in or a file whose
fine names are the Cars196 class names (classes it leaves out are dropped).

Images vary in size: each is decoded when indexed and resized whole to `data.image_size` squared (default 224,
MaskCon's `Resize((224, 224))`; see `resized`), so `inputs` are [N, S, S, 3] uint8. `data.dir` is the tfds
data folder (empty: $TFDS_DATA_DIR or ~/tensorflow_datasets). Inputs are normalised with ImageNet statistics.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from coarse2fine.data import resized, taxonomies
from coarse2fine.data.splits import HierarchicalData, make_split

NAME = "cars196"
DEFAULT_TAXONOMY = "cars196_8"
SETUP_HINT = ("tfds's cars196 builder fetches its archives from ai.stanford.edu; where that host does not serve "
              "them, build the dataset where a copy of the archives is available.")


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """Cars196 train/test from tfds, with `data.taxonomy` (default `cars196_8`) as the coarse labels."""
  taxonomy, index_map = taxonomies.get_taxonomy(data_config.taxonomy or DEFAULT_TAXONOMY, taxonomies.CARS196_CLASSES)
  size = resized.image_size(data_config)
  splits = {}
  for split in ("train", "test"):
    reader = resized.TfdsReader(NAME, split, data_config.dir or None, SETUP_HINT)
    labels = reader.labels()
    where = f"{NAME}/{split}"
    bad = (labels < 0) | (labels >= len(index_map))
    if bad.any():
      raise ValueError(f"{where}: {int(bad.sum())} labels are outside [0, {len(index_map)}) (e.g. "
                       f"{np.unique(labels[bad])[:5].tolist()}); is this the 196-class tfds cars196?")
    fine = index_map[labels]
    keep = np.flatnonzero(fine >= 0)  # classes the taxonomy leaves out are dropped
    images = resized.ResizedImages(reader, keep, size=size)
    splits[split] = make_split(images, fine=fine[keep], taxonomy=taxonomy, where=where)
  return HierarchicalData(name=NAME, taxonomy=taxonomy, train=splits["train"], test=splits["test"],
                          mean=resized.IMAGENET_MEAN, std=resized.IMAGENET_STD)
