"""CUB-200-2011 (Wah et al. 2011), 200 bird species; one of F-SC's FGVC benchmarks.

Scored as in docs/evaluation.md#f-sc-top-1-and-fgvc-retrieval.

tfds `caltech_birds2011`: 5,994 train and 5,794 test images; `label` is the 0-based species id
(= `CUB200_CLASSES`, classes.txt order), the official train/test split is kept. With `data.split_protocol =
"unseen_classes"` (the deep-metric-learning retrieval protocol of SoftTriple and F-SC) both splits are pooled
instead: every image of species 1-100 (labels 0-99) trains, every image of species 101-200 tests (5,864 and
5,924 images, Oh Song et al. 2016's count), so the test species are unseen and are scored by Recall@K.
CUB has no coarse level, so the default taxonomy is the built-in `cub200_flat` (all 200 species under one class "bird"), for
methods trained on the species; `data.taxonomy` may name `cub200_orders` (13 taxonomic orders), another
built-in or a file whose fine names are the CUB class names, e.g. "001.Black_footed_Albatross" (classes it
leaves out are dropped). Bounding boxes and segmentation masks are not used.

Images vary in size: each is decoded when indexed and resized whole to `data.image_size` squared (default 224;
see `resized`), so `inputs` are [N, S, S, 3] uint8. `data.dir` is the tfds data folder (empty: $TFDS_DATA_DIR
or ~/tensorflow_datasets). Inputs are normalised with ImageNet statistics.
"""

from __future__ import annotations

import ml_collections

from coarse2fine.data.datasets import resized
from coarse2fine.data.splits import HierarchicalData, split_protocol
from coarse2fine.data.taxonomy import CUB200_CLASSES, get_taxonomy

NAME = "caltech_birds2011"  # the tfds builder
DATASET = "cub2011"  # data.name
DEFAULT_TAXONOMY = "cub200_flat"
SETUP_HINT = ("tfds's caltech_birds2011 builder fetches CUB_200_2011.tgz and segmentations.tgz from "
              "data.caltech.edu; where that host does not serve them, build the dataset where a copy of the "
              "archives is available.")


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """CUB-200-2011 train/test from tfds, with `data.taxonomy` (default `cub200_flat`) as the coarse labels."""
  spec = data_config.taxonomy or DEFAULT_TAXONOMY
  taxonomy, index_map = get_taxonomy(spec, CUB200_CLASSES)
  splits = resized.load_tfds_classes(NAME, DATASET, data_config, taxonomy, index_map, SETUP_HINT,
                                     class_names=CUB200_CLASSES, spec=spec)
  return HierarchicalData(name=DATASET, taxonomy=taxonomy, train=splits["train"], test=splits["test"],
                          mean=resized.IMAGENET_MEAN, std=resized.IMAGENET_STD,
                          unseen_test_classes=split_protocol(data_config) == "unseen_classes")
