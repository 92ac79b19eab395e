"""data.split_protocol="unseen_classes": CUB-200-2011 and Cars196 re-split by class halves (fake tfds sources)."""

import collections
import io
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.files.lazy_images import ConcatReader
from coarse2fine.data.taxonomy import CUB200_CLASSES
from tests.data.fake_tfds import FakeSource

# Labels straddling each dataset's boundary (CUB: 0-99 | 100-199; Cars: 0-97 | 98-195), repeated classes included.
CUB_TRAIN, CUB_TEST = [0, 199, 140, 99, 100, 35, 99, 150], [3, 199, 100, 66, 140, 0]
CARS_TRAIN, CARS_TEST = [0, 115, 52, 195, 97, 98, 17], [6, 115, 60, 98, 1]


def _colour(k: int) -> tuple[int, int, int]:
  """A distinct flat colour per record (k < 25), so a decoded image tells which record it is."""
  return (30 + 50 * (k % 5), 30 + 50 * (k // 5 % 5), 200)


def _which(image: np.ndarray) -> int:
  mean = image.reshape(-1, 3).astype(float).mean(0)
  return min(range(25), key=lambda k: np.abs(mean - _colour(k)).sum())


def _records(labels, first: int):
  """tfds records whose image colour is the record's number in the pooled list (train then test)."""
  records = []
  for j, label in enumerate(labels):
    buffer = io.BytesIO()
    Image.new("RGB", (20 + j, 14), _colour(first + j)).save(buffer, format="PNG")
    records.append({"image": buffer.getvalue(), "label": label})
  return records


def _fake_tfds(monkeypatch, train_labels, test_labels):
  records = {"train": _records(train_labels, 0), "test": _records(test_labels, len(train_labels))}
  calls = []

  def fake_data_source(name, split, data_dir=None, download=True, decoders=None):
    calls.append(split)
    return FakeSource(records[split])

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  return calls


def _data_config(name, **fields):
  config = base_config().data
  config.name = name
  config.image_size = 8
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _expected_rows(labels, boundary):
  """Brute force: pooled record numbers of each half, and the image count of every class in it."""
  train = [i for i, label in enumerate(labels) if label < boundary]
  test = [i for i, label in enumerate(labels) if label >= boundary]
  return train, test, collections.Counter(labels[i] for i in train), collections.Counter(labels[i] for i in test)


@pytest.mark.parametrize("name,train_labels,test_labels,boundary,num_fine", [
    ("cub2011", CUB_TRAIN, CUB_TEST, 100, 200),
    ("cars196", CARS_TRAIN, CARS_TEST, 98, 196),
])
def test_unseen_classes_splits_every_image_by_class_half(monkeypatch, name, train_labels, test_labels, boundary,
                                                          num_fine):
  calls = _fake_tfds(monkeypatch, train_labels, test_labels)
  data = load_dataset(_data_config(name, split_protocol="unseen_classes"))
  assert sorted(set(calls)) == ["test", "train"]  # both official splits are read, and pooled
  pooled = train_labels + test_labels
  train_rows, test_rows, train_counts, test_counts = _expected_rows(pooled, boundary)
  assert data.num_fine == num_fine and data.unseen_test_classes
  np.testing.assert_array_equal(data.train.fine, [pooled[i] for i in train_rows])  # fine id = dataset label
  np.testing.assert_array_equal(data.test.fine, [pooled[i] for i in test_rows])
  assert collections.Counter(data.train.fine.tolist()) == train_counts
  assert collections.Counter(data.test.fine.tolist()) == test_counts
  assert data.train.fine.max() < boundary <= data.test.fine.min()  # no test class was seen in training
  # Every pooled image exactly once, and each decodes to its own record (the right part of the pool).
  np.testing.assert_array_equal(np.sort(np.concatenate([data.train.inputs.index, data.test.inputs.index])),
                                np.arange(len(pooled)))
  for split, rows in ((data.train, train_rows), (data.test, test_rows)):
    images = split.inputs[np.arange(len(split))]
    assert images.shape == (len(rows), 8, 8, 3)
    assert [_which(image) for image in images] == rows
  again = pickle.loads(pickle.dumps(data.test.inputs))  # as grain's workers receive it
  np.testing.assert_array_equal(np.asarray(again), data.test.inputs[np.arange(len(data.test))])


def test_the_official_split_stays_the_default(monkeypatch):
  _fake_tfds(monkeypatch, CUB_TRAIN, CUB_TEST)
  data = load_dataset(_data_config("cub2011"))
  assert not data.unseen_test_classes
  np.testing.assert_array_equal(data.train.fine, CUB_TRAIN)
  np.testing.assert_array_equal(data.test.fine, CUB_TEST)
  assert [_which(image) for image in data.test.inputs[np.arange(len(CUB_TEST))]] == list(
      range(len(CUB_TRAIN), len(CUB_TRAIN) + len(CUB_TEST)))


def test_coarse_labels_follow_the_taxonomy_under_the_unseen_split(monkeypatch):
  _fake_tfds(monkeypatch, CARS_TRAIN, CARS_TEST)
  data = load_dataset(_data_config("cars196", split_protocol="unseen_classes"))
  # cars196_8 (MaskCon's code): 0 SUV=2, 52 cab=0, 97 Eagle Talon Hatchback=5, 17 wagon=6, 6 hatchback=5,
  # 60 sedan=1, 1 sedan=1; 115 van=7, 195 convertible=3, 98 FIAT 500 Abarth (a hatchback)=5.
  np.testing.assert_array_equal(data.train.fine, [0, 52, 97, 17, 6, 60, 1])
  np.testing.assert_array_equal(data.train.coarse, [2, 0, 5, 6, 5, 1, 1])
  np.testing.assert_array_equal(data.test.fine, [115, 195, 98, 115, 98])
  np.testing.assert_array_equal(data.test.coarse, [7, 3, 5, 7, 5])
  _fake_tfds(monkeypatch, CUB_TRAIN, CUB_TEST)
  data = load_dataset(_data_config("cub2011", split_protocol="unseen_classes", taxonomy="cub200_orders"))
  coarse = [data.taxonomy.coarse_names[c] for c in data.test.coarse]
  assert data.test.fine.tolist()[:2] == [199, 140]
  assert coarse[:2] == ["Passeriformes", "Charadriiformes"]  # 200 Common Yellowthroat, 141 Arctic Tern


def test_a_taxonomy_that_drops_classes_keeps_the_class_halves(monkeypatch, tmp_path):
  _fake_tfds(monkeypatch, CUB_TRAIN, CUB_TEST)
  (tmp_path / "two.csv").write_text(f"{CUB200_CLASSES[99]},a\n{CUB200_CLASSES[140]},b\n")
  data = load_dataset(_data_config("cub2011", split_protocol="unseen_classes", taxonomy=str(tmp_path / "two.csv")))
  # The halves are by the dataset's class index (99 trains, 140 tests), not by the taxonomy's fine ids.
  assert data.taxonomy.fine_names == (CUB200_CLASSES[99], CUB200_CLASSES[140])
  np.testing.assert_array_equal(data.train.fine, [0, 0])
  np.testing.assert_array_equal(data.test.fine, [1, 1])
  pooled = CUB_TRAIN + CUB_TEST
  np.testing.assert_array_equal(data.test.inputs.index, [i for i, label in enumerate(pooled) if label == 140])


def test_unknown_or_unsupported_split_protocol_fails_before_reading(monkeypatch):
  calls = _fake_tfds(monkeypatch, CUB_TRAIN, CUB_TEST)
  with pytest.raises(ValueError, match=r"Unknown data.split_protocol 'halves'; choose one of \('official', "
                                       r"'unseen_classes'\)"):
    load_dataset(_data_config("cub2011", split_protocol="halves"))
  with pytest.raises(ValueError, match=r"split_protocol='unseen_classes' is implemented for \('cub2011', "
                                       r"'cars196'\), not data.name='synthetic'"):
    load_dataset(_data_config("synthetic", split_protocol="unseen_classes"))
  assert calls == []


class _ListReader:
  def __init__(self, items, name):
    self.items, self.name = items, name

  def describe(self, i):
    return f"{self.name}[{i}]"

  def read(self, indices):
    return [self.items[i] for i in indices]


def test_concat_reader_reads_each_part_in_the_order_asked():
  reader = ConcatReader([_ListReader([b"a0", b"a1", b"a2"], "a"), _ListReader([b"b0", b"b1"], "b")], [3, 2])
  assert reader.read(np.array([4, 0, 3, 2, 2])) == [b"b1", b"a0", b"b0", b"a2", b"a2"]
  assert reader.read(np.array([], np.int64)) == []
  assert (reader.describe(3), reader.describe(2)) == ("b[0]", "a[2]")
  with pytest.raises(IndexError, match="has 5 records"):
    reader.read(np.array([5]))
