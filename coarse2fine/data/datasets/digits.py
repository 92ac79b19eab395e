"""scikit-learn's bundled 8x8 handwritten digits (1,797 images), no files needed.

Coarse grouping `digits_shapes`: round {0, 6, 8, 9}, straight {1, 4, 7}, curvy {2, 3, 5}.
The test split is a fixed stratified 20% (seeded by `data.split_seed`).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from coarse2fine.data import dropped
from coarse2fine.data.splits import HierarchicalData, filter_and_remap
from coarse2fine.data.taxonomy import DIGITS_CLASSES, get_taxonomy

TEST_FRACTION = 0.2


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  digits = load_digits()
  # Pixel values are 0..16; scale to uint8 so digits behave like any other image set.
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int64)
  spec = data_config.taxonomy or "digits_shapes"
  taxonomy, index_map = get_taxonomy(spec, DIGITS_CLASSES)
  dropped.check_allowed(data_config, spec, DIGITS_CLASSES, index_map)
  train_idx, test_idx = train_test_split(
      np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=data_config.split_seed)
  train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
  dropped.report("digits", spec, DIGITS_CLASSES, index_map, {"train": labels[train_idx], "test": labels[test_idx]})
  train = filter_and_remap(images[train_idx], labels[train_idx], index_map, taxonomy, "digits/train")
  test = filter_and_remap(images[test_idx], labels[test_idx], index_map, taxonomy, "digits/test")
  mean = np.array([train.inputs.mean() / 255.0], np.float32)
  std = np.array([train.inputs.std() / 255.0], np.float32)
  return HierarchicalData("digits", taxonomy, train, test, mean=mean, std=std)
