"""Stanford Cars (Krause et al. 2013) with MaskCon's 8 car types as coarse labels (docs/datasets.md#cars196).

tfds `cars196`: 8,144 train and 8,041 test images of 196 car models; `label` is the 0-based devkit class
(= `CARS196_CLASSES` order), the official train/test split is kept. With `data.split_protocol = "unseen_classes"`
(the deep-metric-learning retrieval protocol of SoftTriple and F-SC) both splits are pooled instead: every image of
models 1-98 (labels 0-97) trains, every image of models 99-196 tests (8,054 and 8,131 images, Oh Song et al. 2016's
count), so the test models are unseen and are scored by Recall@K. The default taxonomy is the
built-in `cars196_8` (0 cab 18, 1 sedan 50, 2 SUV 36, 3 convertible 30, 4 coupe 29, 5 hatchback 14, 6 wagon 6,
7 van 13 fine classes; the official code's mapping); `data.taxonomy` may name another built-in or a file whose
fine names are the Cars196 class names (classes it leaves out are dropped).

Images vary in size: each is decoded when indexed and resized whole to `data.image_size` squared (default 224,
MaskCon's `Resize((224, 224))`; see `resized`), so `inputs` are [N, S, S, 3] uint8. `data.dir` is the tfds
data folder (empty: $TFDS_DATA_DIR or ~/tensorflow_datasets). Inputs are normalised with ImageNet statistics.
"""

from __future__ import annotations

import ml_collections

from coarse2fine.data.datasets import resized
from coarse2fine.data.splits import HierarchicalData, split_protocol
from coarse2fine.data.taxonomy import CARS196_CLASSES, get_taxonomy

NAME = "cars196"
DEFAULT_TAXONOMY = "cars196_8"
SETUP_HINT = ("tfds's cars196 builder fetches its archives from ai.stanford.edu; where that host does not serve "
              "them, build the dataset where a copy of the archives is available.")


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """Cars196 train/test from tfds, with `data.taxonomy` (default `cars196_8`) as the coarse labels."""
  spec = data_config.taxonomy or DEFAULT_TAXONOMY
  taxonomy, index_map = get_taxonomy(spec, CARS196_CLASSES)
  splits = resized.load_tfds_classes(NAME, NAME, data_config, taxonomy, index_map, SETUP_HINT,
                                     class_names=CARS196_CLASSES, spec=spec)
  return HierarchicalData(name=NAME, taxonomy=taxonomy, train=splits["train"], test=splits["test"],
                          mean=resized.IMAGENET_MEAN, std=resized.IMAGENET_STD,
                          unseen_test_classes=split_protocol(data_config) == "unseen_classes")
