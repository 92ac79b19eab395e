"""A taxonomy that leaves out fine classes of the data says so once, with the examples it drops per split."""

import logging
import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import idx
from coarse2fine.data.taxonomy import FASHION_MNIST_CLASSES

LEFT_OUT = ("Bag", "Ankle boot")  # fine ids 8 and 9


def _config(name, **fields):
  config = base_config().data
  config.name = name
  for key, value in fields.items():
    config[key] = value
  return config


def _taxonomy_file(folder, leave_out=LEFT_OUT):
  path = os.path.join(folder, "tax.csv")
  with open(path, "w") as f:
    f.write("fine,coarse\n")
    for k, name in enumerate(FASHION_MNIST_CLASSES):
      if name not in leave_out:
        f.write(f"{name},{'tops' if k in (0, 2, 3, 4, 6) else 'other'}\n")
  return path


@pytest.fixture
def fmnist_dir(tmp_path):
  """Fashion-MNIST IDX files with random labels; returns (folder, {split: labels})."""
  rng = np.random.default_rng(3)
  labels = {"train": rng.integers(0, 10, 200), "test": rng.integers(0, 10, 90)}
  stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
  for split, (images, label_file) in stems.items():
    n = len(labels[split])
    idx.write_idx(str(tmp_path / f"{images}.gz"), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    idx.write_idx(str(tmp_path / f"{label_file}.gz"), labels[split].astype(np.uint8))
  return str(tmp_path), labels


def _records(caplog, level=logging.INFO):
  return [r for r in caplog.records if "leaves out" in r.getMessage() and r.levelno >= level]


def test_a_taxonomy_file_that_leaves_classes_out_warns_once_with_the_counts(fmnist_dir, tmp_path, caplog):
  folder, labels = fmnist_dir
  caplog.set_level(logging.INFO)
  data = load_dataset(_config("fashion_mnist", dir=folder, taxonomy=_taxonomy_file(str(tmp_path))))
  (record,) = _records(caplog)
  assert record.levelno == logging.WARNING  # shown at the command line's default verbosity (WARNING)
  message = record.getMessage()
  assert "data.taxonomy=" in message and "leaves out 2 of the data's 10 fine classes ('Bag', 'Ankle boot')" in message
  for split, split_labels in labels.items():  # counted here with numpy on the written labels
    dropped = int(np.isin(split_labels, [8, 9]).sum())
    assert f"{dropped} of {len(split_labels)} {split}" in message
    kept = data.train if split == "train" else data.test
    assert len(kept) == len(split_labels) - dropped
  assert "data.allow_dropped_fine_classes=False" in message


def test_a_complete_taxonomy_says_nothing(fmnist_dir, tmp_path, caplog):
  folder, _ = fmnist_dir
  caplog.set_level(logging.INFO)
  load_dataset(_config("fashion_mnist", dir=folder, taxonomy=_taxonomy_file(str(tmp_path), leave_out=())))
  assert not _records(caplog)


def test_not_allowed_is_an_error_before_the_files_are_read(tmp_path):
  config = _config("fashion_mnist", dir=str(tmp_path / "no_such_folder"), taxonomy=_taxonomy_file(str(tmp_path)),
                   allow_dropped_fine_classes=False)
  with pytest.raises(ValueError) as error:  # not the FileNotFoundError of the missing folder: nothing was read
    load_dataset(config)
  message = str(error.value)
  assert "\n" not in message and "leaves out 2 of the data's 10 fine classes ('Bag', 'Ankle boot')" in message
  assert "data.allow_dropped_fine_classes=True" in message


def test_digits_counts_match_the_labels(tmp_path, caplog):
  from sklearn.datasets import load_digits

  taxonomy = tmp_path / "digits.csv"
  taxonomy.write_text("".join(f"{d},{'low' if d < 5 else 'high'}\n" for d in range(10) if d != 7))
  caplog.set_level(logging.INFO)
  data = load_dataset(_config("digits", taxonomy=str(taxonomy)))
  (record,) = _records(caplog)
  counts = re.findall(r"(\d+) of (\d+) (train|test)", record.getMessage())
  target = load_digits().target
  assert sum(int(d) for d, _, _ in counts) == int((target == 7).sum())  # every 7, across the two splits
  assert sum(int(n) for _, n, _ in counts) == len(target)
  assert len(data.train) + len(data.test) == int((target != 7).sum())
  assert "'7'" in record.getMessage()


def test_a_builtin_that_leaves_classes_out_by_design_logs_at_info(caplog):
  caplog.set_level(logging.INFO)
  with tfds.testing.mock_data(num_examples=40):
    load_dataset(_config("cifar10", taxonomy="cifartoy_good"))
    labels = {split: np.array([r["label"] for r in tfds.data_source("cifar10", split=split)])
              for split in ("train", "test")}
  (record,) = _records(caplog)
  assert record.levelno == logging.INFO and "('deer', 'frog')" in record.getMessage()
  for split, split_labels in labels.items():
    assert f"{int(np.isin(split_labels, [4, 6]).sum())} of {len(split_labels)} {split}" in record.getMessage()
