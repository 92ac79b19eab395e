"""BREEDS: class selection on a hand-built hierarchy, lazy JPEG decoding, folder and tfds paths."""

import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.augmentation.crop_boxes import EvalView
from coarse2fine.data.datasets import breeds
from coarse2fine.data.files import lazy_images
from tests.data.fake_tfds import FakeSource

ROOT, LIVING, NONLIVING = "n00001740", "n00004258", "n00021939"
L2, L3, L4A, L4B = "n01000002", "n01000003", "n01000004", "n01000005"
S1, S2, S3, S4, S5, LEAF5, X = "n02000001", "n02000002", "n02000003", "n02000004", "n02000005", "n02000006", "n02100005"
N2, N3, N4, NS, NS2 = "n03000002", "n03000003", "n03000004", "n03000005", "n03000006"


def _leaves(group: int, n: int) -> list[str]:
  return [f"n09{group:03d}{i:03d}" for i in range(1, n + 1)]


# ImageNet classes below each candidate superclass, by construction.
LEAVES = {S1: _leaves(1, 5), S2: _leaves(2, 4), S3: _leaves(3, 3), S4: _leaves(4, 4), S5: _leaves(5, 4),
          NS: _leaves(6, 4), NS2: _leaves(7, 5)}
OUTSIDE = "n09999999"  # an ImageNet class the hierarchy does not mention
EDGES = [
    (ROOT, LIVING), (ROOT, NONLIVING), (LIVING, L2), (L2, L3), (L3, L4A), (L3, L4B),
    (L4A, S1), (L4A, S2), (L4B, S3), (L4B, S4), (L4B, S5), (L4B, LEAF5),
    (L2, S4),  # a shortcut: S4 is at depth 3 on its shortest path but 5 on its longest
    (S5, X),  # S5's classes sit one node further down
    (L4A, "n05000000"), ("n05000000", "n05000001"),  # a branch without ImageNet classes
    (NONLIVING, N2), (N2, N3), (N3, N4), (N4, NS), (N4, NS2),
] + [(X if s == S5 else s, leaf) for s, leaves in LEAVES.items() for leaf in leaves]
NODE_NAMES = {ROOT: "entity", LIVING: "living thing", S1: "feline", S2: "canine", S3: "rodent", S4: "bird",
              S5: "fish", NS: "vehicle", NS2: "vessel", LEAF5: "lone class",
              LEAVES[S2][0]: "crane", LEAVES[S2][1]: "crane"}  # two classes share a name, as in ImageNet


def _all_classes() -> list[str]:
  return sorted([leaf for leaves in LEAVES.values() for leaf in leaves] + [LEAF5, OUTSIDE])


def _class_index() -> dict[str, int]:
  # Reversed, so a loader that confused class index with sorted position would be caught.
  classes = _all_classes()
  return {w: len(classes) - 1 - i for i, w in enumerate(classes)}


def _colour(wnid: str) -> tuple[int, int, int]:
  i = _all_classes().index(wnid)
  return (20 + 40 * (i % 6), 20 + 40 * (i // 6 % 6), 128)


def _jpeg(colour, size=(48, 32)) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def _oracle_draws(groups, n):
  """breeds_helpers' draw: RandomState(2).choice over each sorted list in turn."""
  rng = np.random.RandomState(2)
  return [list(rng.choice(sorted(g), n, replace=False)) for g in groups]


def _write_world(folder, images=True, drop_val=None):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "class_hierarchy.txt"), "w") as f:
    f.writelines(f"{p} {c}\n" for p, c in EDGES)
  index = _class_index()
  info = sorted([[index[w], w, f"class {w}"] for w in _all_classes()])
  with open(os.path.join(folder, "dataset_class_info.json"), "w") as f:
    json.dump(info, f)
  with open(os.path.join(folder, "node_names.txt"), "w") as f:
    f.writelines(f"{w}\t{name}\n" for w, name in NODE_NAMES.items())
  if images:
    for split, count in (("train", 2), ("val", 1)):
      for wnid in _all_classes():
        if split == "val" and wnid == drop_val:
          continue
        os.makedirs(os.path.join(folder, split, wnid))
        for k in range(count):
          with open(os.path.join(folder, split, wnid, f"{wnid}_{k}.JPEG"), "wb") as f:
            f.write(_jpeg(_colour(wnid)))
        with open(os.path.join(folder, split, wnid, "notes.txt"), "w") as f:
          f.write("not an image")
  return str(folder)


def _data_config(**fields):
  config = base_config().data
  config.name = "breeds"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _nearest_class(image: np.ndarray) -> str:
  mean = image.reshape(-1, 3).mean(0)
  return min(_all_classes(), key=lambda w: np.abs(mean - _colour(w)).sum())


# ------------------------------------------------------------------------------------
# Class selection.


def test_living17_rules_on_a_hand_built_hierarchy(tmp_path):
  classes = breeds.breeds_classes(_write_world(tmp_path, images=False), "living17")
  # Level 5 below "living thing": S1..S5 and the class LEAF5 (S4 by its longest path). S3 (3
  # classes) and LEAF5 (1) have fewer than 4 and are dropped; NS, NS2 are not living.
  assert classes.superclasses == [S1, S2, S4, S5]
  assert classes.subclasses == _oracle_draws([LEAVES[s] for s in (S1, S2, S4, S5)], 4)
  assert set(classes.subclasses[0]) < set(LEAVES[S1])  # 4 of S1's 5 classes
  taxonomy = classes.taxonomy
  assert taxonomy.name == "living17" and taxonomy.coarse_names == ("feline", "canine", "bird", "fish")
  np.testing.assert_array_equal(taxonomy.fine_to_coarse, np.repeat(np.arange(4), 4))
  flat = [w for group in classes.subclasses for w in group]
  expected_names = [NODE_NAMES.get(w, f"class {w}") for w in flat]
  expected_names = [f"crane ({w})" if n == "crane" else n for n, w in zip(expected_names, flat)]
  assert list(taxonomy.fine_names) == expected_names


def test_nonliving26_and_an_unrestricted_level(tmp_path):
  folder = _write_world(tmp_path, images=False)
  classes = breeds.breeds_classes(folder, "nonliving26")
  assert classes.superclasses == [NS, NS2]
  assert classes.subclasses == _oracle_draws([LEAVES[NS], LEAVES[NS2]], 4)
  # Level 3 with no ancestor: L3 (21 classes below) and N3 (9); S4 is at level 5, not 3.
  hierarchy = breeds.read_hierarchy(folder)
  superclasses, subclasses = breeds.select_classes(hierarchy, breeds.Variant(3, None, 4))
  living = [leaf for s in (S1, S2, S3, S4, S5) for leaf in LEAVES[s]] + [LEAF5]
  assert superclasses == [L3, N3]
  assert subclasses == _oracle_draws([living, LEAVES[NS] + LEAVES[NS2]], 4)
  assert hierarchy.levels[S4] == 5 and hierarchy.levels[X] == 6 and "n05000000" not in hierarchy.levels


def test_unknown_variant_and_missing_files(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  with pytest.raises(ValueError, match=r"living17.*nonliving26"):
    load_dataset(_data_config(variant="living18", dir=_write_world(tmp_path / "w", images=False)))
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "node_names.txt").write_text("")
  with pytest.raises(FileNotFoundError) as error:
    load_dataset(_data_config(variant="living17", dir=str(empty)))
  message = str(error.value)
  assert str(empty) in message and "class_hierarchy.txt" in message and "dataset_class_info.json" in message
  assert "node_names.txt'" not in message.split("lacks")[1]  # only the missing files are named
  assert "setup_breeds" in message and "data.dir" in message
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="nowhere"):
    load_dataset(_data_config(variant="living17"))


# ------------------------------------------------------------------------------------
# Images.


def test_evaluation_view_resizes_the_shorter_side_and_crops_the_centre():
  for size in ((60, 20), (20, 60)):  # wide and tall: red | green | blue thirds
    image = Image.new("RGB", size)
    wide = size[0] > size[1]
    for third, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
      box = (20 * third, 0, 20 * third + 20, 20) if wide else (0, 20 * third, 20, 20 * third + 20)
      image.paste(colour, box)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    # Shorter side 20 -> 8, longer 60 -> 24; the centre 4 pixels come from the green third only.
    out = lazy_images.decode_view(buffer.getvalue(), EvalView(4, resize=8))
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.broadcast_to(np.array([0, 255, 0], np.uint8), (4, 4, 3)))


def test_folder_dataset_is_lazy_labelled_by_folder_and_decodes(tmp_path):
  folder = _write_world(tmp_path)
  data = load_dataset(_data_config(variant="living17", dir=folder))
  classes = breeds.breeds_classes(folder, "living17")
  flat = [w for group in classes.subclasses for w in group]
  assert isinstance(data.train.inputs, breeds.LazyImages) and data.name == "breeds"
  assert data.train.inputs.shape == (32, 224, 224, 3) and len(data.test) == 16
  assert data.input_shape == (224, 224, 3) and data.is_image and data.num_fine == 16
  np.testing.assert_allclose(data.mean, [0.4717, 0.4499, 0.3837])
  np.testing.assert_allclose(data.std, [0.2600, 0.2516, 0.2575])
  for split in (data.train, data.test):
    images = split.inputs[np.arange(len(split))]
    assert images.shape == (len(split), 224, 224, 3) and images.dtype == np.uint8
    found = [_nearest_class(image) for image in images]
    np.testing.assert_array_equal(split.fine, [flat.index(w) for w in found])
    np.testing.assert_array_equal(split.coarse, split.fine // 4)
  # A solid colour comes back as that colour, everywhere in the crop.
  first = data.train.inputs[0]
  assert np.abs(first.astype(int) - _colour(flat[0])).max() <= 4


def test_lazy_indexing_subset_and_pickle(tmp_path):
  data = load_dataset(_data_config(variant="living17", dir=_write_world(tmp_path)))
  images = data.train.inputs
  every = images[np.arange(len(images))]
  np.testing.assert_array_equal(images[-1], every[-1])
  np.testing.assert_array_equal(images[np.int64(3)], every[3])
  np.testing.assert_array_equal(images[2:7:2], every[2:7:2])
  mask = np.zeros(len(images), bool)
  mask[[1, 30]] = True
  np.testing.assert_array_equal(images[mask], every[mask])
  np.testing.assert_array_equal(images[np.array([[0, 5], [9, 9]])], every[[[0, 5], [9, 9]]])
  sub = images.subset(np.array([4, 0]))
  assert isinstance(sub, breeds.LazyImages) and sub.shape == (2, 224, 224, 3)
  np.testing.assert_array_equal(np.asarray(sub), every[[4, 0]])
  np.testing.assert_array_equal(sub.subset([1])[0], every[0])
  again = pickle.loads(pickle.dumps(images))
  np.testing.assert_array_equal(again[[7, 8]], every[[7, 8]])
  with pytest.raises(IndexError):
    images[len(images)]


def test_validation_split_stays_lazy_and_consistent(tmp_path):
  folder = _write_world(tmp_path)
  whole = load_dataset(_data_config(variant="living17", dir=folder))
  data = load_dataset(_data_config(variant="living17", dir=folder, val_fraction=0.25, split_seed=3))
  assert isinstance(data.train.inputs, breeds.LazyImages) and isinstance(data.val.inputs, breeds.LazyImages)
  assert len(data.train) + len(data.val) == len(whole.train) and len(data.val) == 8  # 2 per superclass
  np.testing.assert_array_equal(np.bincount(data.val.coarse), [2, 2, 2, 2])
  train_files = {data.train.inputs.reader.describe(i) for i in data.train.inputs.index}
  val_files = {data.val.inputs.reader.describe(i) for i in data.val.inputs.index}
  assert not train_files & val_files and len(train_files | val_files) == 32
  flat = [w for group in breeds.breeds_classes(folder, "living17").subclasses for w in group]
  found = [_nearest_class(image) for image in data.val.inputs[np.arange(len(data.val))]]
  np.testing.assert_array_equal(data.val.fine, [flat.index(w) for w in found])


def test_folder_errors(tmp_path):
  classes = breeds.breeds_classes(_write_world(tmp_path / "probe", images=False), "living17")
  dropped = classes.subclasses[1][2]
  folder = _write_world(tmp_path / "w", drop_val=dropped)
  with pytest.raises(FileNotFoundError, match=f"lacks the class folders of 1 of the 16.*{dropped}"):
    load_dataset(_data_config(variant="living17", dir=folder))
  with pytest.raises(ValueError, match="leave data.taxonomy empty"):
    load_dataset(_data_config(variant="living17", dir=folder, taxonomy="cifar100"))
  os.rename(os.path.join(folder, "val"), os.path.join(folder, "val_elsewhere"))
  with pytest.raises(FileNotFoundError, match="has train/ but not val/"):
    load_dataset(_data_config(variant="living17", dir=folder))


# ------------------------------------------------------------------------------------
# tfds imagenet2012 (a fake data source: tfds's mock_data needs TensorFlow to encode images).


def test_tfds_path_maps_class_indices_to_breeds_labels(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  folder = _write_world(tmp_path, images=False)
  index = _class_index()
  rng = np.random.default_rng(0)
  records = {split: [{"image": _jpeg(_colour(w)), "label": index[w]}
                     for w in rng.permutation(_all_classes() * n)]
             for split, n in (("train", 2), ("validation", 1))}
  calls = []

  def fake_data_source(name, split, data_dir=None, download=True, decoders=None):
    calls.append((name, split, type(decoders["image"]).__name__))
    return FakeSource(records[split])

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  data = load_dataset(_data_config(variant="nonliving26", dir=folder))
  assert {c[:2] for c in calls} == {("imagenet2012", "train"), ("imagenet2012", "validation")}
  assert {c[2] for c in calls} == {"SkipDecoding"}  # images are decoded by LazyImages, once
  flat = [w for group in breeds.breeds_classes(folder, "nonliving26").subclasses for w in group]
  assert len(data.train) == 16 and len(data.test) == 8
  for split in (data.train, data.test):
    found = [_nearest_class(image) for image in split.inputs[np.arange(len(split))]]
    np.testing.assert_array_equal(split.fine, [flat.index(w) for w in found])
  # The labels are cached next to the hierarchy files, and used again.
  cached = np.load(os.path.join(folder, "imagenet2012_train_labels.npy"))
  np.testing.assert_array_equal(cached, [r["label"] for r in records["train"]])
  for r in records["train"]:
    r["label"] = -1  # would fail if the records were parsed again
  again = load_dataset(_data_config(variant="nonliving26", dir=folder))
  np.testing.assert_array_equal(again.train.fine, data.train.fine)
  # A reader travels to grain workers without its open source.
  reader = pickle.loads(pickle.dumps(data.train.inputs.reader))
  assert reader._source is None
