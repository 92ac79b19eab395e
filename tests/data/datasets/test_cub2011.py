"""CUB-200-2011 through a fake tfds source, and its built-in taxonomies (cub200_flat, cub200_orders)."""

import io
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import DATASETS, load_dataset
from coarse2fine.data.datasets import cub2011, resized
from coarse2fine.data.taxonomy import CUB200_CLASSES, CUB200_ORDERS_IDS, get_taxonomy
from tests.data.fake_tfds import FakeSource

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _data_config(**fields):
  config = base_config().data
  config.name = "cub2011"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _colour(k: int) -> tuple[int, int, int]:
  """A distinct flat colour per class (mod 25), so a decoded image tells its label."""
  return (30 + 50 * (k % 5), 30 + 50 * (k // 5 % 5), 200)


def _nearest(image: np.ndarray) -> int:
  mean = image.reshape(-1, 3).astype(float).mean(0)
  return min(range(25), key=lambda k: np.abs(mean - _colour(k)).sum())


def _records(labels, sizes):
  """tfds caltech_birds2011 records: JPEG bytes (decoding skipped), 0-based label and the unused extras."""
  records = []
  for label, size in zip(labels, sizes):
    buffer = io.BytesIO()
    Image.new("RGB", size, _colour(label % 25)).save(buffer, format="JPEG")
    records.append({"image": buffer.getvalue(), "label": label, "label_name": "bird",
                    "bbox": np.zeros(4, np.float32)})
  return records


def _fake_tfds(monkeypatch, records_by_split):
  calls = []

  def fake_data_source(name, split, data_dir=None, download=True, decoders=None):
    calls.append((name, split, data_dir, type((decoders or {}).get("image")).__name__))
    return FakeSource(records_by_split[split])

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  return calls


TRAIN_LABELS = [0, 199, 140, 85, 17, 99, 35]
TEST_LABELS = [3, 199, 66, 140]
SIZES = [(40, 20), (17, 33), (64, 48), (9, 9), (30, 12), (50, 25), (21, 21)]


def test_cub200_classes_are_the_200_species_in_classes_txt_order():
  names = CUB200_CLASSES
  assert len(names) == len(set(names)) == 200
  assert [int(n[:3]) for n in names] == list(range(1, 201))  # "001." .. "200."
  assert names[0] == "001.Black_footed_Albatross" and names[199] == "200.Common_Yellowthroat"
  assert names[140] == "141.Artic_Tern"  # the dataset's own spelling


def test_cub200_flat_and_orders_taxonomies():
  flat = get_taxonomy("cub200_flat")
  assert flat.fine_names == CUB200_CLASSES and flat.coarse_names == ("bird",)
  np.testing.assert_array_equal(flat.fine_to_coarse, np.zeros(200))
  orders = get_taxonomy("cub200_orders")
  assert orders.fine_names == CUB200_CLASSES and orders.num_coarse == 13
  ids = sorted(i for group in CUB200_ORDERS_IDS.values() for i in group)
  assert ids == list(range(200))  # every species exactly once
  np.testing.assert_array_equal(np.bincount(orders.fine_to_coarse), [4, 5, 24, 133, 3, 4, 7, 4, 4, 4, 5, 1, 2])
  order_of = {name[4:]: orders.coarse_names[c] for name, c in zip(orders.fine_names, orders.fine_to_coarse)}
  for species, order in [("Western_Gull", "Charadriiformes"), ("Geococcyx", "Cuculiformes"),
                         ("Frigatebird", "Suliformes"), ("Green_Violetear", "Apodiformes"),
                         ("Northern_Fulmar", "Procellariiformes"), ("Sayornis", "Passeriformes"),
                         ("Northern_Flicker", "Piciformes"), ("Pacific_Loon", "Gaviiformes")]:
    assert order_of[species] == order, species
  assert all(order_of[n[4:]] == "Passeriformes" for n in orders.fine_names if n.endswith(("Warbler", "Sparrow")))


def test_cub2011_is_registered():
  assert DATASETS["cub2011"] is cub2011.load


def test_cub2011_through_a_fake_tfds_source(monkeypatch, tmp_path):
  records = {"train": _records(TRAIN_LABELS, SIZES), "test": _records(TEST_LABELS, SIZES[:4])}
  calls = _fake_tfds(monkeypatch, records)
  data = load_dataset(_data_config(image_size=12, dir=str(tmp_path)))
  assert {c[:3] for c in calls} == {("caltech_birds2011", "train", str(tmp_path)),
                                    ("caltech_birds2011", "test", str(tmp_path))}
  assert {c[3] for c in calls} == {"SkipDecoding"}  # decoded by ResizedImages, once
  assert data.name == "cub2011" and data.taxonomy.name == "cub200_flat"
  assert (data.num_fine, data.num_coarse) == (200, 1)
  assert (len(data.train), len(data.test)) == (7, 4)  # every record of each split, in order
  np.testing.assert_array_equal(data.train.fine, TRAIN_LABELS)  # tfds label k = CUB200_CLASSES[k]
  np.testing.assert_array_equal(data.test.fine, TEST_LABELS)
  np.testing.assert_array_equal(data.train.coarse, np.zeros(7))
  np.testing.assert_allclose(data.mean, IMAGENET_MEAN)
  np.testing.assert_allclose(data.std, IMAGENET_STD)
  assert isinstance(data.train.inputs, resized.ResizedImages) and data.input_shape == (12, 12, 3)
  images = data.train.inputs[np.arange(len(data.train))]
  assert images.shape == (7, 12, 12, 3) and images.dtype == np.uint8
  assert [_nearest(image) for image in images] == [label % 25 for label in TRAIN_LABELS]
  again = pickle.loads(pickle.dumps(data.test.inputs.subset([2, 0])))
  np.testing.assert_array_equal(np.asarray(again), data.test.inputs[np.array([2, 0])])


def test_cub2011_default_image_size_is_224(monkeypatch):
  _fake_tfds(monkeypatch, {"train": _records([5], [(30, 20)]), "test": _records([6], [(20, 30)])})
  data = load_dataset(_data_config())
  assert data.input_shape == (224, 224, 3) and data.test.inputs[0].shape == (224, 224, 3)


def test_cub2011_orders_and_user_taxonomy_drops_classes(monkeypatch, tmp_path):
  records = {"train": _records(TRAIN_LABELS, SIZES), "test": _records(TEST_LABELS, SIZES[:4])}
  _fake_tfds(monkeypatch, records)
  data = load_dataset(_data_config(image_size=8, taxonomy="cub200_orders"))
  coarse = data.taxonomy.coarse_names
  assert [coarse[c] for c in data.train.coarse] == [
      "Procellariiformes", "Passeriformes", "Charadriiformes", "Gaviiformes", "Passeriformes", "Pelecaniformes",
      "Piciformes"]
  names = CUB200_CLASSES
  (tmp_path / "two.csv").write_text(f"{names[199]},songbirds\n{names[140]},seabirds\n")
  data = load_dataset(_data_config(image_size=8, taxonomy=str(tmp_path / "two.csv")))
  assert data.taxonomy.fine_names == (names[140], names[199])  # dataset order
  np.testing.assert_array_equal(data.train.fine, [1, 0])  # the other classes are dropped
  np.testing.assert_array_equal(data.train.inputs.index, [1, 2])
  np.testing.assert_array_equal(data.train.coarse, [0, 1])
  np.testing.assert_array_equal(data.test.fine, [1, 0])


@pytest.mark.parametrize("split,label", [("train", 200), ("test", -1)])
def test_cub2011_labels_outside_the_200_classes_fail(monkeypatch, split, label):
  records = {"train": _records([0, 1], [(8, 8)] * 2), "test": _records([2], [(8, 8)])}
  records[split][0]["label"] = label
  _fake_tfds(monkeypatch, records)
  with pytest.raises(ValueError, match=rf"cub2011/{split}: 1 labels are outside \[0, 200\).*caltech_birds2011"):
    load_dataset(_data_config(image_size=8))


def test_cub2011_unreadable_tfds_names_the_builder_and_the_hint(monkeypatch):
  def failing(name, split, data_dir=None, download=True, decoders=None):
    raise OSError("no network")

  monkeypatch.setattr(tfds, "data_source", failing)
  with pytest.raises(RuntimeError, match=r"(?s)'caltech_birds2011'.*tfds build caltech_birds2011.*data.caltech.edu"):
    load_dataset(_data_config())
