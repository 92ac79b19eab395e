"""MaskCon's benchmarks: Cars196 (fake tfds), Stanford Online Products (a tiny fake folder), ImageNet32 (fake tfds)."""

import io
import json
import os
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import imagenet32, resized
from coarse2fine.data.taxonomy import CARS196_8_IDS, CARS196_CLASSES, get_taxonomy
from tests.data.fake_tfds import FakeSource

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _data_config(name, **fields):
  config = base_config().data
  config.name = name
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _encode(image: Image.Image, fmt: str) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt)
  return buffer.getvalue()


def _colour(k: int) -> tuple[int, int, int]:
  return (30 + 50 * (k % 5), 30 + 50 * (k // 5 % 5), 200)


def _nearest(image: np.ndarray, count: int) -> int:
  mean = image.reshape(-1, 3).astype(float).mean(0)
  return min(range(count), key=lambda k: np.abs(mean - _colour(k)).sum())


def _fake_tfds(monkeypatch, records_by_split):
  calls = []

  def fake_data_source(name, split, data_dir=None, download=True, decoders=None):
    calls.append((name, split, data_dir, type((decoders or {}).get("image")).__name__))
    return FakeSource(records_by_split[split])

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  return calls


# ------------------------------------------------------------------------------------
# Cars196.


def test_cars196_8_partitions_the_196_classes_as_the_official_code():
  taxonomy = get_taxonomy("cars196_8")
  assert taxonomy.fine_names == CARS196_CLASSES and taxonomy.num_fine == 196
  assert taxonomy.coarse_names == ("cab", "sedan", "SUV", "convertible", "coupe", "hatchback", "wagon", "van")
  np.testing.assert_array_equal(np.bincount(taxonomy.fine_to_coarse), [18, 50, 36, 30, 29, 14, 6, 13])
  ids = sorted(i for group in CARS196_8_IDS.values() for i in group)
  assert ids == list(range(196))  # every class exactly once
  for coarse, group in enumerate(CARS196_8_IDS.values()):
    np.testing.assert_array_equal(taxonomy.children(coarse), group)
  names = CARS196_CLASSES
  assert names[115] == "Ford E-Series Wagon Van 2012" and taxonomy.fine_to_coarse[115] == 7  # the code's van
  assert names[0] == "AM General Hummer SUV 2000" and names[195] == "smart fortwo Convertible 2012"
  assert all("Sedan" in names[i] for i in taxonomy.children(1) if i not in (3, 46, 78, 96))


def _cars_records(labels, sizes):
  records = []
  for label, size in zip(labels, sizes):
    records.append({"image": _encode(Image.new("RGB", size, _colour(label % 25)), "JPEG"), "label": label,
                    "bbox": np.zeros(4, np.float32)})
  return records


def test_cars196_through_a_fake_tfds_source(monkeypatch, tmp_path):
  train_labels, test_labels = [0, 115, 52, 195, 17, 1], [6, 115, 60]
  sizes = [(40, 20), (17, 33), (64, 48), (9, 9), (30, 12), (50, 25)]
  records = {"train": _cars_records(train_labels, sizes), "test": _cars_records(test_labels, sizes[:3])}
  # A wide red | green | blue image: squashed whole, not centre-cropped (a crop would be all green).
  thirds = Image.new("RGB", (60, 10))
  for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
    thirds.paste(colour, (20 * k, 0, 20 * k + 20, 10))
  records["test"][2]["image"] = _encode(thirds, "PNG")
  calls = _fake_tfds(monkeypatch, records)
  data = load_dataset(_data_config("cars196", image_size=12, dir=str(tmp_path)))
  assert {c[:3] for c in calls} == {("cars196", "train", str(tmp_path)), ("cars196", "test", str(tmp_path))}
  assert {c[3] for c in calls} == {"SkipDecoding"}  # decoded by ResizedImages, once
  assert data.name == "cars196" and data.taxonomy.name == "cars196_8" and data.num_coarse == 8
  assert isinstance(data.train.inputs, resized.ResizedImages) and data.input_shape == (12, 12, 3)
  np.testing.assert_array_equal(data.train.fine, train_labels)
  np.testing.assert_array_equal(data.train.coarse, [2, 7, 0, 3, 6, 1])  # SUV, van, cab, convertible, wagon, sedan
  np.testing.assert_array_equal(data.test.coarse, [5, 7, 1])
  np.testing.assert_allclose(data.mean, IMAGENET_MEAN)
  np.testing.assert_allclose(data.std, IMAGENET_STD)
  images = data.train.inputs[np.arange(len(data.train))]
  assert images.shape == (6, 12, 12, 3) and images.dtype == np.uint8
  assert [_nearest(image, 25) for image in images] == [label % 25 for label in train_labels]
  squashed = data.test.inputs[2]
  np.testing.assert_array_equal(squashed[:, 0], np.broadcast_to([255, 0, 0], (12, 3)))
  np.testing.assert_array_equal(squashed[:, -1], np.broadcast_to([0, 0, 255], (12, 3)))
  np.testing.assert_array_equal(squashed[:, 6], np.broadcast_to([0, 255, 0], (12, 3)))
  again = pickle.loads(pickle.dumps(data.train.inputs.subset([3, 0])))
  assert isinstance(again, resized.ResizedImages)
  np.testing.assert_array_equal(np.asarray(again), images[[3, 0]])


def test_cars196_user_taxonomy_drops_classes_and_bad_labels_fail(monkeypatch, tmp_path):
  names = CARS196_CLASSES
  (tmp_path / "two.csv").write_text(f"{names[115]},vans\n{names[52]},trucks\n")
  records = {"train": _cars_records([0, 115, 52, 115], [(8, 8)] * 4), "test": _cars_records([52], [(8, 8)])}
  _fake_tfds(monkeypatch, records)
  data = load_dataset(_data_config("cars196", image_size=8, taxonomy=str(tmp_path / "two.csv")))
  assert data.taxonomy.fine_names == (names[52], names[115])  # dataset order
  np.testing.assert_array_equal(data.train.fine, [1, 0, 1])  # class 0 is dropped
  np.testing.assert_array_equal(data.train.inputs.index, [1, 2, 3])
  np.testing.assert_array_equal(data.train.coarse, [0, 1, 0])
  records["train"][0]["label"] = 196
  with pytest.raises(ValueError, match=r"cars196/train: 1 labels are outside \[0, 196\)"):
    load_dataset(_data_config("cars196"))


def test_image_size_default_and_check():
  import ml_collections

  assert resized.image_size(ml_collections.ConfigDict({"name": "cars196"})) == 224
  assert base_config().data.image_size == 224 and base_config().data.split_file == ""
  with pytest.raises(ValueError, match="data.image_size must be a positive integer"):
    resized.image_size(ml_collections.ConfigDict({"image_size": 0}))


# ------------------------------------------------------------------------------------
# Stanford Online Products: a tiny copy of the official layout.

# product (class_id) -> (super_class_id, images in Ebay_train.txt or Ebay_test.txt)
TRAIN_PRODUCTS = {1: (1, 8), 2: (1, 7), 3: (2, 12), 4: (3, 9)}
TEST_PRODUCTS = {5: (2, 12), 6: (1, 8), 7: (3, 3)}
FOLDERS = {1: "bicycle_final", 2: "cabinet_final", 3: "chair_final"}


def _write_sop(folder):
  """Writes the two Ebay files and one tiny PNG per image; returns {path: (image_id, class_id)}."""
  root = folder / "Stanford_Online_Products"
  written = {}
  for name, products in (("Ebay_train.txt", TRAIN_PRODUCTS), ("Ebay_test.txt", TEST_PRODUCTS)):
    rows, next_id = [], 1  # image_ids restart in each file (the loader must not need them global)
    for product, (super_id, count) in products.items():
      for k in range(count):
        path = f"{FOLDERS[super_id]}/{1000 + product}_{k}.JPG"
        rows.append((next_id, product, super_id, path))
        written[path] = (next_id, product)
        next_id += 1
    if name == "Ebay_train.txt":
      rows = rows[:15] + rows[15:27][::-1] + rows[27:]  # product 3's rows in descending image_id order
    root.mkdir(exist_ok=True)
    (root / name).write_text("image_id class_id super_class_id path\n" + "".join(f"{r[0]} {r[1]} {r[2]} {r[3]}\n"
                                                                           for r in rows))
  for path, (_, product) in written.items():
    (root / os.path.dirname(path)).mkdir(exist_ok=True)
    Image.new("RGB", (7, 5), _colour(product)).save(root / path, format="PNG")  # .JPG names, as in SOP
  return root, written


def _products(split, written, root):
  """The class_id of each example, from the file its reader points to."""
  return [written[os.path.relpath(split.inputs.reader.describe(i), root)][1] for i in split.inputs.index]


def test_sop_split1_keeps_products_with_8_images_disjoint(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  root, written = _write_sop(tmp_path)
  data = load_dataset(_data_config("sop", dir=str(tmp_path), variant="split1", image_size=8))  # the parent folder
  assert data.name == "sop" and len(data.train) == 8 + 12 + 9 and len(data.test) == 12 + 8
  assert data.taxonomy.coarse_names == ("bicycle_final", "cabinet_final", "chair_final")
  # Fine ids: train products 1, 3, 4 -> 0, 1, 2; then the test ones 5, 6 -> 3, 4.
  assert data.taxonomy.fine_names == ("bicycle_final/1", "cabinet_final/3", "chair_final/4", "cabinet_final/5",
                                      "bicycle_final/6")
  np.testing.assert_array_equal(data.taxonomy.fine_to_coarse, [0, 1, 2, 1, 0])
  train_products, test_products = _products(data.train, written, str(root)), _products(data.test, written, str(root))
  assert sorted(set(train_products)) == [1, 3, 4] and sorted(set(test_products)) == [5, 6]
  fine_of = {1: 0, 3: 1, 4: 2, 5: 3, 6: 4}
  np.testing.assert_array_equal(data.train.fine, [fine_of[p] for p in train_products])
  np.testing.assert_array_equal(data.test.fine, [fine_of[p] for p in test_products])
  coarse_of = {p: s - 1 for p, (s, _) in {**TRAIN_PRODUCTS, **TEST_PRODUCTS}.items()}
  np.testing.assert_array_equal(data.test.coarse, [coarse_of[p] for p in test_products])  # from super_class_id
  ids = [written[os.path.relpath(data.train.inputs.reader.describe(i), root)][0] for i in data.train.inputs.index]
  assert ids == sorted(ids)  # by ascending image_id
  images = data.test.inputs[np.arange(len(data.test))]
  assert images.shape == (20, 8, 8, 3) and isinstance(data.test.inputs, resized.ResizedImages)
  assert [_nearest(image, 25) for image in images] == [p % 25 for p in test_products]
  np.testing.assert_allclose(data.mean, IMAGENET_MEAN)


def test_sop_split2_takes_products_with_12_images_10_train_2_test(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  root, written = _write_sop(tmp_path)
  data = load_dataset(_data_config("sop", dir=str(root), variant="split2", image_size=8))
  assert len(data.train) == 20 and len(data.test) == 4 and data.num_fine == 2
  assert data.taxonomy.fine_names == ("cabinet_final/3", "cabinet_final/5") and data.num_coarse == 1
  train_products, test_products = _products(data.train, written, str(root)), _products(data.test, written, str(root))
  assert train_products.count(3) == train_products.count(5) == 10 and sorted(test_products) == [3, 3, 5, 5]
  np.testing.assert_array_equal(data.test.fine, [{3: 0, 5: 1}[p] for p in test_products])
  np.testing.assert_array_equal(data.test.coarse, [0, 0, 0, 0])
  # The last two image_ids of each product are the test ones, whatever the row order of the file.
  test_images = {written[os.path.relpath(data.test.inputs.reader.describe(i), root)] for i in data.test.inputs.index}
  ids_of = {p: sorted(i for i, q in written.values() if q == p) for p in (3, 5)}
  assert test_images == {(i, p) for p in (3, 5) for i in ids_of[p][-2:]}


def test_sop_split_file_overrides_the_rule(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  root, written = _write_sop(tmp_path)
  by_product = {p: sorted(path for path, (_, q) in written.items() if q == p) for p in (1, 2, 7)}
  lists = {"train": [by_product[7][0], by_product[2][3], by_product[2][0]], "test": [by_product[1][5]]}
  (tmp_path / "split.json").write_text(json.dumps(lists))
  maskcon = tmp_path / "sop_split_custom"
  maskcon.mkdir()
  (maskcon / "train_path.json").write_text(json.dumps(lists["train"]))
  (maskcon / "test_path.json").write_text(json.dumps(lists["test"]))
  for split_file, variant in ((tmp_path / "split.json", "split1"), (maskcon, "")):
    data = load_dataset(_data_config("sop", dir=str(root), variant=variant, split_file=str(split_file)))
    assert [os.path.relpath(data.train.inputs.reader.describe(i), root) for i in data.train.inputs.index] == \
        lists["train"]  # the file's order
    # Train products 2, 7 -> 0, 1 (by class_id); product 1, only in test, -> 2.
    np.testing.assert_array_equal(data.train.fine, [1, 0, 0])
    np.testing.assert_array_equal(data.test.fine, [2])
    np.testing.assert_array_equal(data.train.coarse, [1, 0, 0])  # chair_final, bicycle_final (super ids 3, 1)
    assert data.taxonomy.coarse_names == ("bicycle_final", "chair_final") and data.input_shape == (224, 224, 3)
  (tmp_path / "bad.json").write_text(json.dumps({"train": ["bicycle_final/nope_0.JPG"], "test": lists["test"]}))
  with pytest.raises(ValueError, match=r"1 train paths are in neither.*bicycle_final/nope_0.JPG"):
    load_dataset(_data_config("sop", dir=str(root), split_file=str(tmp_path / "bad.json")))
  (tmp_path / "both.json").write_text(json.dumps({"train": lists["test"], "test": lists["test"]}))
  with pytest.raises(ValueError, match="1 images are in both train and test"):
    load_dataset(_data_config("sop", dir=str(root), split_file=str(tmp_path / "both.json")))


def test_sop_errors_name_the_missing_folder_and_files(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError) as error:
    load_dataset(_data_config("sop", dir=str(tmp_path / "nowhere"), variant="split1"))
  message = str(error.value)
  assert str(tmp_path / "nowhere" / "Stanford_Online_Products") in message and "Ebay_train.txt" in message
  assert "Stanford_Online_Products.zip" in message and "data.dir" in message
  root, _ = _write_sop(tmp_path)
  with pytest.raises(ValueError, match=r"choose one of \['split1', 'split2'\]"):
    load_dataset(_data_config("sop", dir=str(root), variant="split3"))
  with pytest.raises(ValueError, match="leave data.taxonomy empty"):
    load_dataset(_data_config("sop", dir=str(root), variant="split1", taxonomy="cars196_8"))
  os.remove(root / "chair_final" / "1004_3.JPG")
  with pytest.raises(FileNotFoundError, match=r"lacks 1 of the split's images: chair_final/1004_3.JPG"):
    load_dataset(_data_config("sop", dir=str(root), variant="split1"))
  (root / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n1 2 3\n")
  with pytest.raises(ValueError, match=r"Ebay_test.txt, line 2: expected"):
    load_dataset(_data_config("sop", dir=str(root), variant="split1"))


# ------------------------------------------------------------------------------------
# ImageNet32.


def test_tfds_imagenet_resized_labels_map_to_standard_indices():
  # Entries of MaskCon's imagenet32_to_fine.json (downsampled label - 1 -> standard ImageNet index).
  to_standard = imagenet32.standard_indices(imagenet32.tfds_wnids())
  expected = {0: 278, 1: 212, 2: 250, 115: 155, 212: 105, 382: 7, 437: 136, 448: 0, 473: 51, 620: 300, 999: 543}
  assert {k: int(to_standard[k]) for k in expected} == expected
  np.testing.assert_array_equal(np.sort(to_standard), np.arange(1000))


MASKCON_BLOCKS = np.repeat(np.arange(12), imagenet32.COARSE_COUNTS)  # a stand-in with MaskCon's counts


def _imagenet32_world(tmp_path, monkeypatch, n_train=40, n_test=10):
  rng = np.random.default_rng(0)
  labels = {"train": rng.integers(0, 1000, n_train), "validation": rng.integers(0, 1000, n_test)}
  labels["train"][:3] = [0, 448, 999]
  images = {s: rng.integers(0, 256, (len(v), 32, 32, 3), dtype=np.uint8) for s, v in labels.items()}
  records = {s: [{"image": images[s][i], "label": int(labels[s][i])} for i in range(len(labels[s]))] for s in labels}
  calls = _fake_tfds(monkeypatch, records)
  path = tmp_path / "imagenet_fine_to_coarse.json"
  path.write_text(json.dumps({str(i): int(c) for i, c in enumerate(MASKCON_BLOCKS)}))
  return labels, images, calls, str(path)


def test_imagenet32_through_a_fake_tfds_source(tmp_path, monkeypatch):
  labels, images, calls, path = _imagenet32_world(tmp_path, monkeypatch)
  data = load_dataset(_data_config("imagenet32", taxonomy=path))
  assert {c[:2] for c in calls} == {("imagenet_resized/32x32", "train"), ("imagenet_resized/32x32", "validation")}
  assert data.name == "imagenet32" and data.num_fine == 1000 and data.num_coarse == 12
  assert data.taxonomy.coarse_names == imagenet32.COARSE_NAMES
  assert data.taxonomy.coarse_names[4] == "reptile/aquatic vertebrate" and data.taxonomy.coarse_names[11] == "others"
  np.testing.assert_array_equal(np.bincount(data.taxonomy.fine_to_coarse), imagenet32.COARSE_COUNTS)
  to_standard = imagenet32.standard_indices(imagenet32.tfds_wnids())
  assert list(data.taxonomy.fine_names) == sorted(imagenet32.tfds_wnids())
  np.testing.assert_array_equal(data.train.fine[:3], [278, 0, 543])
  for split, theirs in ((data.train, "train"), (data.test, "validation")):
    np.testing.assert_array_equal(split.fine, to_standard[labels[theirs]])
    np.testing.assert_array_equal(split.coarse, MASKCON_BLOCKS[to_standard[labels[theirs]]])
    np.testing.assert_array_equal(split.inputs, images[theirs])
  assert data.train.inputs.shape == (40, 32, 32, 3) and data.train.inputs.dtype == np.uint8
  np.testing.assert_allclose(data.mean, IMAGENET_MEAN)


def test_imagenet32_wnid_taxonomy_file_drops_other_classes(tmp_path, monkeypatch):
  labels, _, _, _ = _imagenet32_world(tmp_path, monkeypatch)
  wnids = sorted(imagenet32.tfds_wnids())
  (tmp_path / "two.csv").write_text(f"{wnids[543]},late\n{wnids[0]},early\n")
  data = load_dataset(_data_config("imagenet32", taxonomy=str(tmp_path / "two.csv")))
  assert data.taxonomy.fine_names == (wnids[0], wnids[543]) and data.taxonomy.coarse_names == ("late", "early")
  np.testing.assert_array_equal(data.train.fine, [0, 1])  # the tfds labels 448 and 999, in file order
  np.testing.assert_array_equal(data.train.coarse, [1, 0])


def test_imagenet32_taxonomy_errors_say_where_to_get_it(tmp_path, monkeypatch):
  _imagenet32_world(tmp_path, monkeypatch)
  with pytest.raises(ValueError) as error:
    load_dataset(_data_config("imagenet32"))
  message = str(error.value)
  assert "imagenet_fine_to_coarse.json" in message and "MaskCon_CVPR2023" in message
  assert "--config.data.taxonomy=" in message
  with pytest.raises(FileNotFoundError, match="no such file.*imagenet_fine_to_coarse.json"):
    load_dataset(_data_config("imagenet32", taxonomy=str(tmp_path / "missing.json")))
  (tmp_path / "short.json").write_text(json.dumps({str(i): 0 for i in range(999)}))
  with pytest.raises(ValueError, match=r"missing \[999\] \(1\)"):
    load_dataset(_data_config("imagenet32", taxonomy=str(tmp_path / "short.json")))
