"""`data.name="tfds"`: any tfds builder, checked against the examples tfds's mock (or a fake source) hands out."""

import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import DATASETS, load_dataset
from coarse2fine.data.datasets import resized, tfds_arrays, tfds_generic
from tests.data.fake_tfds import FakeSource


def _data_config(**fields):
  config = base_config().data
  config.name = "tfds"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _reference(name, split, keys):
  """{key: [N, ...]} of every record of a (mocked) split, read straight from tfds."""
  source = tfds.data_source(name, split=split)
  return {key: np.stack([np.asarray(source[i][key]) for i in range(len(source))]) for key in keys}


def test_tfds_is_registered():
  assert DATASETS["tfds"] is tfds_generic.load


# ------------------------------------------------------------------------------------------ tfds's mock data


def test_coarse_key_gives_the_hierarchy_of_the_examples():
  # 8 mock cifar100 examples whose fine classes are distinct, so each has one coarse class.
  with tfds.testing.mock_data(num_examples=8):
    data = load_dataset(_data_config(tfds_name="cifar100", coarse_key="coarse_label"))
    ref = _reference("cifar100", "train", ("image", "label", "coarse_label"))
    names = tfds.data_source("cifar100", split="train").dataset_info.features
  label_names, coarse_names = names["label"].names, names["coarse_label"].names
  assert len(set(ref["label"].tolist())) == 8  # the premise
  for split in (data.train, data.test):  # the mock hands out the same examples for every split
    np.testing.assert_array_equal(split.inputs, ref["image"])
    assert [data.taxonomy.fine_names[f] for f in split.fine] == [label_names[i] for i in ref["label"]]
    assert [data.taxonomy.coarse_names[c] for c in split.coarse] == [coarse_names[i] for i in ref["coarse_label"]]
  # Only the classes with examples, in the ClassLabel's order.
  assert data.taxonomy.fine_names == tuple(label_names[i] for i in sorted(set(ref["label"].tolist())))
  assert data.taxonomy.coarse_names == tuple(coarse_names[i] for i in sorted(set(ref["coarse_label"].tolist())))
  assert data.name == "tfds" and data.input_shape == (32, 32, 3)
  np.testing.assert_allclose(data.mean, ref["image"].reshape(-1, 3).mean(0) / 255, rtol=1e-5)
  np.testing.assert_allclose(data.std, ref["image"].reshape(-1, 3).std(0) / 255, rtol=1e-4)


def test_a_fine_class_under_two_coarse_classes_is_named():
  # 12 mock examples: fine class 61 comes once with coarse class 8 and once with 2.
  with tfds.testing.mock_data(num_examples=12):
    ref = _reference("cifar100", "train", ("label", "coarse_label"))
    assert sorted(ref["coarse_label"][ref["label"] == 61].tolist()) == [2, 8]  # the premise
    with pytest.raises(ValueError, match=r"1 fine classes appear under several coarse classes.*'61' under \['2', "
                                         r"'8'\].*data.taxonomy"):
      load_dataset(_data_config(tfds_name="cifar100", coarse_key="coarse_label"))


def test_a_taxonomy_file_maps_the_label_names(tmp_path):
  (tmp_path / "parity.csv").write_text("".join(f"{d},{'even' if d % 2 == 0 else 'odd'}\n" for d in range(10)))
  with tfds.testing.mock_data(num_examples=20):
    data = load_dataset(_data_config(tfds_name="mnist", taxonomy=str(tmp_path / "parity.csv"), val_fraction=0.0))
    ref = _reference("mnist", "test", ("image", "label"))
  assert data.taxonomy.fine_names == tuple(str(d) for d in range(10))  # the ClassLabel's order
  np.testing.assert_array_equal(data.test.inputs, ref["image"])
  assert data.input_shape == (28, 28, 1) and data.test.inputs.dtype == np.uint8
  np.testing.assert_array_equal(data.test.fine, ref["label"])
  assert [data.taxonomy.coarse_names[c] for c in data.test.coarse] == [
      "even" if d % 2 == 0 else "odd" for d in ref["label"]]


def test_vectors_without_a_test_split_hold_out_test_fraction(tmp_path):
  (tmp_path / "iris.json").write_text('{"setosa": ["Iris-setosa"], "other": ["Iris-versicolor", "Iris-virginica"]}')
  with tfds.testing.mock_data(num_examples=40):
    data = load_dataset(_data_config(tfds_name="iris", input_key="features", tfds_splits=("train", ""),
                                     taxonomy=str(tmp_path / "iris.json"), test_fraction=0.25))
    ref = _reference("iris", "train", ("features", "label"))
  assert data.train.inputs.dtype == np.float32 and data.input_shape == (4,)
  assert len(data.train) + len(data.test) == 40 and len(data.test) == pytest.approx(10, abs=1)
  # Every example once, in one split or the other, with its own label.
  rows = np.concatenate([data.train.inputs, data.test.inputs])
  labels = np.concatenate([data.train.fine, data.test.fine])
  order = np.lexsort(rows.T[::-1])
  ref_order = np.lexsort(ref["features"].T[::-1])
  np.testing.assert_array_equal(rows[order], ref["features"][ref_order])
  np.testing.assert_array_equal(labels[order], ref["label"][ref_order])
  np.testing.assert_array_equal(data.train.coarse, (data.train.fine != 0).astype(int))
  np.testing.assert_allclose(data.mean, data.train.inputs.mean(0), rtol=1e-5)


@pytest.mark.parametrize("fields,message", [
    (dict(tfds_name=""), r"needs data.tfds_name"),
    (dict(coarse_key="coarse_label", taxonomy="cifar100"), r"both give the coarse labels; set only one"),
    (dict(coarse_key="", taxonomy=""), r"needs the coarse labels: data.coarse_key .* or data.taxonomy"),
    (dict(tfds_splits=("", "test")), r"data.tfds_splits must be \(train, test\)"),
    (dict(label_key="fine"), r"tfds 'cifar100' has no feature 'fine' \(data.label_key\); its features are "
                             r"\['coarse_label', 'id', 'image', 'label'\]"),
    (dict(coarse_key="image"), r"data.coarse_key='image' of tfds 'cifar100' is a Image, not a ClassLabel"),
    (dict(input_key="id"), r"data.input_key='id' of tfds 'cifar100' is a Text .*must be an Image or a Tensor"),
    (dict(input_key="label"), r"data.input_key='label' .* is a ClassLabel"),
])
def test_bad_fields_are_named_before_any_split_is_read(monkeypatch, fields, message):
  def no_reading(*args, **kwargs):
    raise AssertionError("a split was read")

  monkeypatch.setattr(tfds_arrays, "read_columns", no_reading)
  config = dict(tfds_name="cifar100", coarse_key="coarse_label")
  config.update(fields)
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ValueError, match=message):
      load_dataset(_data_config(**config))


def test_a_taxonomy_must_place_every_class_name(monkeypatch, tmp_path):
  monkeypatch.setattr(tfds_arrays, "read_columns", lambda *a, **k: pytest.fail("a split was read"))
  (tmp_path / "some.csv").write_text("0,low\n1,low\n2,high\n")
  (tmp_path / "typo.csv").write_text("".join(f"{d},all\n" for d in range(10)) + "ten,all\n")
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ValueError, match=r"leaves 7 of the label's 10 classes without a coarse class: '3', '4', "
                                         r"'5', '6', '7', '8', '9'; map each"):
      load_dataset(_data_config(tfds_name="mnist", taxonomy=str(tmp_path / "some.csv")))
    with pytest.raises(ValueError, match=r"names fine classes the dataset lacks: .*'ten'"):
      load_dataset(_data_config(tfds_name="mnist", taxonomy=str(tmp_path / "typo.csv")))


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_no_test_split_needs_a_test_fraction_below_one(monkeypatch, fraction):
  monkeypatch.setattr(tfds, "data_source", lambda *a, **k: pytest.fail("the builder was opened"))
  with pytest.raises(ValueError, match=rf"has no test split, so data.test_fraction \(now {fraction}\) must be in "
                                       r"\(0, 1\)"):
    load_dataset(_data_config(tfds_name="iris", input_key="features", tfds_splits=("train", ""),
                              taxonomy="iris.csv", test_fraction=fraction))


# ------------------------------------------------------------------------- images of varying size (fake source)


COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def _features():
  return tfds.features.FeaturesDict({
      "picture": tfds.features.Image(shape=(None, None, 3)),
      "species": tfds.features.ClassLabel(names=["oak", "elm", "pine", "fir"]),
      "kind": tfds.features.ClassLabel(names=["broadleaf", "conifer"]),
  })


def _records(species, sizes):
  """JPEG-encoded flat images, one colour per species (decoding skipped, as tfds's SkipDecoding gives them)."""
  records = []
  for s, size in zip(species, sizes):
    buffer = io.BytesIO()
    Image.new("RGB", size, COLOURS[s]).save(buffer, format="JPEG")
    records.append({"picture": buffer.getvalue(), "species": s, "kind": int(s >= 2)})
  return records


def _fake_tfds(monkeypatch, records_by_split):
  calls = []

  def fake_data_source(name, split, data_dir=None, download=True, decoders=None):
    calls.append((name, split, {key: type(decoder).__name__ for key, decoder in (decoders or {}).items()}))
    return FakeSource(records_by_split[split], _features())

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  return calls


def test_images_of_varying_size_are_decoded_lazily_at_image_size(monkeypatch, tmp_path):
  train, test = [0, 3, 1, 2, 2], [1, 0]
  sizes = [(40, 20), (17, 33), (64, 48), (9, 9), (30, 12)]
  calls = _fake_tfds(monkeypatch, {"train": _records(train, sizes), "validation": _records(test, sizes[:2])})
  data = load_dataset(_data_config(tfds_name="trees", input_key="picture", label_key="species", coarse_key="kind",
                                   tfds_splits=("train", "validation"), image_size=10, dir=str(tmp_path)))
  # The images are read undecoded (ResizedImages decodes them), the labels from the splits named.
  assert ("trees", "train", {"picture": "SkipDecoding"}) in calls
  assert ("trees", "validation", {"picture": "SkipDecoding"}) in calls
  assert isinstance(data.train.inputs, resized.ResizedImages) and data.input_shape == (10, 10, 3)
  images = np.asarray(data.train.inputs)
  nearest = [int(np.abs(image.reshape(-1, 3).mean(0) - np.array(COLOURS)).sum(1).argmin()) for image in images]
  assert nearest == train  # each decoded image is its own record's
  np.testing.assert_array_equal(data.train.fine, train)
  np.testing.assert_array_equal(data.test.fine, test)
  assert data.taxonomy.coarse_names == ("broadleaf", "conifer")
  np.testing.assert_array_equal(data.train.coarse, [0, 1, 0, 1, 1])
  np.testing.assert_allclose(data.mean, [0.485, 0.456, 0.406])


def test_unlabelled_examples_are_refused(monkeypatch):
  records = {"train": _records([0, 1], [(8, 8)] * 2), "test": _records([2], [(8, 8)])}
  records["test"][0]["species"] = -1
  _fake_tfds(monkeypatch, records)
  with pytest.raises(ValueError, match=r"tfds trees/test: 1 values of data.label_key are outside \[0, 4\)"):
    load_dataset(_data_config(tfds_name="trees", input_key="picture", label_key="species", coarse_key="kind"))


def test_an_unreadable_builder_is_named_with_how_to_prepare_it(monkeypatch):
  def failing(name, split, data_dir=None, download=True, decoders=None):
    raise OSError("no network")

  monkeypatch.setattr(tfds, "data_source", failing)
  with pytest.raises(RuntimeError, match=r"(?s)'trees' \(split 'train'.*OSError: no network.*tfds build trees"):
    load_dataset(_data_config(tfds_name="trees", coarse_key="kind"))
