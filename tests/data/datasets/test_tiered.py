"""tieredImageNet: Ren et al.'s pickles (and the decoded .npz), the shared label space, lazy images."""

import io
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import breeds, tiered
from coarse2fine.evaluation import fewshot

# Per split: superclass names, class names and each class's superclass (the file's own ids).
# "crane" is a class of train and of test, as the bird and the machine are in ImageNet.
WORLD = {
    "train": (["mammal", "device"], ["cat", "crane", "dog", "phone"], [0, 1, 0, 1]),
    "val": (["fruit"], ["apple", "pear"], [0, 0]),
    "test": (["bird", "structure", "food"], ["bridge", "crane", "bread", "robin", "tower"], [1, 0, 2, 0, 1]),
}
PER_CLASS = {"train": 3, "val": 3, "test": 4}
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


def _colour(split: str, k: int) -> tuple[int, int, int]:
  return (30 + 40 * k, 40 + 70 * SPLIT_INDEX[split], 220 - 35 * k)  # R != B, so a channel swap shows


def _labels(split: str) -> np.ndarray:
  """[N] file fine ids, in a shuffled order so that images are not sorted by class."""
  fine = np.repeat(np.arange(len(WORLD[split][1])), PER_CLASS[split])
  return np.random.default_rng(SPLIT_INDEX[split]).permutation(fine)


def _png(colour) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", (84, 84), colour).save(buffer, format="PNG")
  return buffer.getvalue()


def _write(folder, splits=("train", "val", "test"), images="png", labels=None):
  """Writes Ren et al.'s files for `splits`; `images`: "png", "npz" or "npz_compressed"."""
  os.makedirs(folder, exist_ok=True)
  for split in splits:
    coarse_names, fine_names, parent = WORLD[split]
    fine = _labels(split)
    coarse = np.asarray(parent)[fine]
    if split == "test":  # as re-pickled after loading with encoding='bytes': bytes keys and names, lists
      record = {b"label_specific": fine.tolist(), b"label_general": coarse.tolist(),
                b"label_specific_str": [n.encode() for n in fine_names],
                b"label_general_str": [n.encode() for n in coarse_names]}
    else:
      record = {"label_specific": fine.astype(np.int32), "label_general": coarse.astype(np.int32),
                "label_specific_str": fine_names, "label_general_str": coarse_names}
    if labels is not None:
      record = labels(split, record)
    with open(os.path.join(folder, f"{split}_labels.pkl"), "wb") as f:
      pickle.dump(record, f, protocol=2)
    if images == "png":
      encoded = [_png(_colour(split, k)) for k in fine]
      if split == "test":  # cv2.imencode's output: [L, 1] uint8 arrays
        encoded = [np.frombuffer(e, np.uint8).reshape(-1, 1) for e in encoded]
      with open(os.path.join(folder, f"{split}_images_png.pkl"), "wb") as f:
        pickle.dump(encoded, f, protocol=2)
    else:
      rgb = np.array([np.broadcast_to(np.array(_colour(split, k), np.uint8), (84, 84, 3)) for k in fine])
      save = np.savez if images == "npz" else np.savez_compressed
      save(os.path.join(folder, f"{split}_images.npz"), images=rgb[..., ::-1])  # cv2's BGR, as decompress writes
  return str(folder)


def _data_config(**fields):
  config = base_config().data
  config.name = "tiered_imagenet"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _expected_colours(split: str) -> np.ndarray:
  return np.array([_colour(split, k) for k in _labels(split)], np.uint8)


def _mean_colours(images: np.ndarray) -> np.ndarray:
  return images.reshape(len(images), -1, 3).mean(1)


# ------------------------------------------------------------------------------------
# Labels and the label space.


def test_labels_names_and_the_shared_label_space(tmp_path):
  data = load_dataset(_data_config(dir=_write(tmp_path)))
  taxonomy = data.taxonomy
  assert data.name == "tiered_imagenet" and taxonomy.name == "tiered_imagenet"
  # Train's classes first, then test's; the shared name "crane" gets the split and file id.
  assert taxonomy.coarse_names == ("mammal", "device", "bird", "structure", "food")
  assert taxonomy.fine_names == ("cat", "crane (train 1)", "dog", "phone",
                                 "bridge", "crane (test 1)", "bread", "robin", "tower")
  np.testing.assert_array_equal(taxonomy.fine_to_coarse, [0, 1, 0, 1, 3, 2, 4, 2, 3])
  np.testing.assert_array_equal(data.train.fine, _labels("train"))
  np.testing.assert_array_equal(data.train.coarse, np.array([0, 1, 0, 1])[_labels("train")])
  np.testing.assert_array_equal(data.test.fine, _labels("test") + 4)
  np.testing.assert_array_equal(data.test.coarse, np.array([1, 0, 2, 0, 1])[_labels("test")] + 2)
  assert not set(data.train.fine) & set(data.test.fine)
  assert set(data.test.coarse) == {2, 3, 4} and set(data.train.coarse) == {0, 1}
  np.testing.assert_array_equal(taxonomy.fine_to_coarse[data.test.fine], data.test.coarse)
  assert data.val is None and data.input_shape == (84, 84, 3) and data.is_image
  np.testing.assert_allclose(data.mean, [0.4783, 0.4564, 0.4102])
  np.testing.assert_allclose(data.std, [0.2795, 0.2736, 0.2859])


def test_val_variant_evaluates_on_the_val_split(tmp_path):
  folder = _write(tmp_path, splits=("train", "val"))  # no test files needed
  data = load_dataset(_data_config(dir=folder, variant="val"))
  assert data.taxonomy.name == "tiered_imagenet_val"
  assert data.taxonomy.coarse_names == ("mammal", "device", "fruit")
  assert data.taxonomy.fine_names == ("cat", "crane", "dog", "phone", "apple", "pear")
  np.testing.assert_array_equal(data.test.fine, _labels("val") + 4)
  np.testing.assert_array_equal(data.test.coarse, np.full(6, 2))
  np.testing.assert_array_equal(_mean_colours(data.test.inputs[:]), _expected_colours("val"))


# ------------------------------------------------------------------------------------
# Images.


def test_png_images_decode_lazily_and_are_cached(tmp_path):
  folder = _write(tmp_path)
  data = load_dataset(_data_config(dir=folder))
  for split, name in ((data.train, "train"), (data.test, "test")):
    assert isinstance(split.inputs, breeds.LazyImages) and isinstance(split.inputs.reader, tiered.BlobReader)
    assert split.inputs.shape == (len(split), 84, 84, 3)
    images = split.inputs[np.arange(len(split))]
    assert images.dtype == np.uint8 and images.shape == (len(split), 84, 84, 3)
    # PNG is lossless: every pixel is the colour written for that example.
    np.testing.assert_array_equal(images, np.broadcast_to(_expected_colours(name)[:, None, None], images.shape))
  images = data.test.inputs
  every = images[:]
  np.testing.assert_array_equal(images.subset(np.array([5, 2]))[1], every[2])
  again = pickle.loads(pickle.dumps(images))
  assert again.reader._blob is None  # the memory map is not pickled, only its path and the offsets
  np.testing.assert_array_equal(again[[7, 0]], every[[7, 0]])
  # Later loads map the cache and do not read the pickle (here made unreadable, but older).
  png = os.path.join(folder, "test_images_png.pkl")
  assert os.path.isfile(os.path.join(folder, "test_images_png.blob.npy"))
  with open(png, "wb") as f:
    f.write(b"not a pickle")
  os.utime(png, (0, 0))
  cached = load_dataset(_data_config(dir=folder))
  np.testing.assert_array_equal(cached.test.inputs[:], every)
  later = os.path.getmtime(os.path.join(folder, "test_images_png.offsets.npy")) + 10
  os.utime(png, (later, later))  # a newer pickle is read again
  with pytest.raises(pickle.UnpicklingError):
    load_dataset(_data_config(dir=folder))


def test_val_fraction_keeps_inputs_lazy(tmp_path):
  data = load_dataset(_data_config(dir=_write(tmp_path), val_fraction=0.34, split_seed=3))
  assert isinstance(data.train.inputs, breeds.LazyImages) and isinstance(data.val.inputs, breeds.LazyImages)
  assert len(data.train) + len(data.val) == 12 and len(data.val) == 4  # 2 of each superclass's 6
  np.testing.assert_array_equal(np.bincount(data.val.coarse), [2, 2])
  # The carved images still carry their labels: colour of train file id k is _colour("train", k).
  for split in (data.train, data.val):
    expected = np.array([_colour("train", k) for k in split.fine], np.uint8)
    np.testing.assert_array_equal(_mean_colours(split.inputs[:]), expected)
  train_rows, val_rows = set(data.train.inputs.index), set(data.val.inputs.index)
  assert not train_rows & val_rows and len(train_rows | val_rows) == 12


def test_decoded_npz_is_mapped_and_flipped_to_rgb(tmp_path):
  data = load_dataset(_data_config(dir=_write(tmp_path / "plain", images="npz"), val_fraction=0.34))
  assert isinstance(data.test.inputs, tiered.MappedImages) and isinstance(data.val.inputs, tiered.MappedImages)
  np.testing.assert_array_equal(_mean_colours(data.test.inputs[:]), _expected_colours("test"))
  first = data.test.inputs[0]
  assert first.shape == (84, 84, 3) and first.dtype == np.uint8
  np.testing.assert_array_equal(first, np.broadcast_to(np.array(_colour("test", _labels("test")[0])), (84, 84, 3)))
  expected = np.array([_colour("train", k) for k in data.val.fine], np.uint8)
  np.testing.assert_array_equal(_mean_colours(data.val.inputs[:]), expected)
  again = pickle.loads(pickle.dumps(data.test.inputs.subset([3, 1])))
  assert again.reader._array is None
  np.testing.assert_array_equal(again[:], data.test.inputs[[3, 1]])
  # A compressed .npz cannot be mapped; it is read whole, with the same result.
  squeezed = load_dataset(_data_config(dir=_write(tmp_path / "zipped", images="npz_compressed")))
  assert isinstance(squeezed.test.inputs, np.ndarray)
  np.testing.assert_array_equal(squeezed.test.inputs, data.test.inputs[:])


def test_memory_fallback_when_the_cache_cannot_be_written(tmp_path, monkeypatch):
  def refuse(*args):
    raise PermissionError("read-only folder")

  monkeypatch.setattr(tiered, "_write_cache", refuse)
  data = load_dataset(_data_config(dir=_write(tmp_path)))
  assert isinstance(data.test.inputs.reader, tiered.ListReader)
  np.testing.assert_array_equal(_mean_colours(data.test.inputs[:]), _expected_colours("test"))


# ------------------------------------------------------------------------------------
# Few-shot episodes on the test split.


def test_fewshot_episodes_only_use_test_classes(tmp_path):
  data = load_dataset(_data_config(dir=_write(tmp_path)))
  test_classes, test_superclasses = set(range(4, 9)), {2, 3, 4}
  for name in ("2way", "allway", "intra"):
    setting, n_way = fewshot.parse_setting(name)  # as evaluate_fewshot calls the sampler
    episodes = fewshot.sample_episodes(data.test.fine, data.taxonomy.fine_to_coarse, setting, n_way, k_shot=1,
                                       n_query=2, num_episodes=20, seed=0)
    chosen = episodes.classes[episodes.class_mask]
    assert set(chosen) <= test_classes
    if name == "allway":
      assert set(chosen) == test_classes
    # Pool rows are test examples of the class their episode label stands for.
    for idx, y, mask in ((episodes.support_idx, episodes.support_y, episodes.support_mask),
                         (episodes.query_idx, episodes.query_y, episodes.query_mask)):
      for e in range(20):
        np.testing.assert_array_equal(data.test.fine[idx[e][mask[e]]], episodes.classes[e][y[e][mask[e]]])
    if name == "intra":
      for e in range(20):
        parents = set(data.taxonomy.fine_to_coarse[episodes.classes[e][episodes.class_mask[e]]])
        assert len(parents) == 1 and parents <= test_superclasses
      seen = {int(data.taxonomy.fine_to_coarse[episodes.classes[e][0]]) for e in range(20)}
      assert seen == test_superclasses  # 20 draws of 3 superclasses reach each (fails with p < 0.001)
  # The whole protocol on the lazy pool: colours identify the classes, so every query is right.
  metrics = fewshot.evaluate_fewshot(lambda x: np.asarray(x, np.float32).mean((1, 2)) / 255.0 - 0.5,
                                     data.test.inputs, data.test.fine, data.taxonomy.fine_to_coarse,
                                     [("allway", None, 1)], num_augmented=0, num_episodes=3, n_query=2, C=100.0)
  assert metrics["fewshot/allway_1shot"] == pytest.approx(100.0)


# ------------------------------------------------------------------------------------
# Errors.


def test_missing_files_and_bad_config(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  folder = _write(tmp_path / "partial", splits=("train",))
  with pytest.raises(FileNotFoundError) as error:
    load_dataset(_data_config(dir=folder))
  message = str(error.value)
  # Each candidate folder with only what it lacks: here the test files, in its subfolder everything.
  assert f"{folder} lacks ['test_labels.pkl', 'test_images_png.pkl (or test_images.npz)'];" in message
  assert f"{os.path.join(folder, 'tiered-imagenet')} lacks ['train_labels.pkl'," in message
  assert "learn2learn" in message and "data.dir" in message
  with pytest.raises(FileNotFoundError, match="neither data.dir nor"):
    load_dataset(_data_config())
  # learn2learn's layout: ROOT/tiered-imagenet/, found from $C2F_DATA_DIR/tiered_imagenet.
  _write(tmp_path / "env" / "tiered_imagenet" / "tiered-imagenet")
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "env"))
  assert len(load_dataset(_data_config()).test) == 20
  with pytest.raises(ValueError, match=r"data.variant='train'.*'test', 'val'"):
    load_dataset(_data_config(variant="train"))
  with pytest.raises(ValueError, match="leave data.taxonomy empty"):
    load_dataset(_data_config(taxonomy="cifar100"))


def _drop_general(split, record):
  return {"labels": record["label_specific"]} if split == "train" else record


def _two_parents(split, record):
  if split == "train":
    record["label_general"] = record["label_general"].copy()
    record["label_general"][np.flatnonzero(record["label_specific"] == 2)[0]] = 1  # one "dog" under device
  return record


def _out_of_range(split, record):
  if split == "train":
    record["label_specific"] = np.where(record["label_specific"] == 3, 4, record["label_specific"])
  return record


def _short(split, record):
  if split == "train":
    record["label_specific"] = record["label_specific"][:-1]
    record["label_general"] = record["label_general"][:-1]
  return record


@pytest.mark.parametrize("labels, message", [
    (_drop_general, r"lacks \['label_specific', 'label_general'.*it has \['labels'\]"),
    (_two_parents, r"1 classes have examples under several superclasses, e.g. 'dog' \(label_specific 2\) "
                   r"under label_general \[0, 1\]"),
    (_out_of_range, r"3 label_specific ids are outside \[0, 4\) \(e.g. 4\)"),
    (_short, r"train has 12 images but 11 labels"),
])
def test_inconsistent_labels(tmp_path, labels, message):
  with pytest.raises(ValueError, match=message):
    load_dataset(_data_config(dir=_write(tmp_path, labels=labels)))


def test_unused_names_are_left_out_and_dict_name_tables_read(tmp_path):
  def unused_first(split, record):
    if split == "train":  # a class and a superclass no example has, in front: every id moves by one
      record["label_specific_str"] = ["ghost"] + record["label_specific_str"]
      record["label_general_str"] = ["void"] + record["label_general_str"]
      record["label_specific"] = record["label_specific"] + 1
      record["label_general"] = record["label_general"] + 1
    elif split == "val":  # name -> id, as one reuse of the files reads label_general_str
      record["label_general_str"] = {name: i for i, name in enumerate(record["label_general_str"])}
      record["label_specific_str"] = dict(enumerate(record["label_specific_str"]))  # id -> name
    return record

  plain = load_dataset(_data_config(dir=_write(tmp_path / "plain", splits=("train", "val")), variant="val"))
  data = load_dataset(_data_config(dir=_write(tmp_path / "odd", splits=("train", "val"), labels=unused_first),
                                   variant="val"))
  assert data.taxonomy.fine_names == plain.taxonomy.fine_names and "ghost" not in data.taxonomy.fine_names
  assert data.taxonomy.coarse_names == ("mammal", "device", "fruit")
  np.testing.assert_array_equal(data.taxonomy.fine_to_coarse, [0, 1, 0, 1, 2, 2])
  for got, want in ((data.train, plain.train), (data.test, plain.test)):
    np.testing.assert_array_equal(got.fine, want.fine)
    np.testing.assert_array_equal(got.coarse, want.coarse)
