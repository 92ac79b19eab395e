"""FALCON's tieredImageNet union: hierarchy files, taxonomy order, folder and tfds paths, errors."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data.datasets import breeds, tiered_union
from coarse2fine.data.splits import carve_validation
from tests.data.fake_tfds import FakeSource

# Coarse wnids in an order that is not sorted, so file order and id order differ.
C_A, C_B, C_C, C_D = "n01000040", "n01000010", "n01000030", "n01000020"
FILES = {  # file -> coarse -> fine wnids (2 + 1 + 1 coarse classes, 3 or 4 fine each)
    "train.csv": {C_A: ["n02000090", "n02000010", "n02000050"], C_B: ["n02000020", "n02000140", "n02000070",
                                                                     "n02000030"]},
    "val.csv": {C_C: ["n02000120", "n02000040", "n02000100"]},
    "test.csv": {C_D: ["n02000060", "n02000130", "n02000080", "n02000110"]},
}
PARENT = {f: c for groups in FILES.values() for c, fines in groups.items() for f in fines}
FINE = sorted(PARENT)
COARSE = sorted(set(PARENT.values()))


def _colour(wnid: str) -> tuple[int, int, int]:
  i = FINE.index(wnid)
  return (20 + 40 * (i % 6), 20 + 40 * (i // 6 % 6), 128)


def _image(colour, fmt: str, size=(48, 32)) -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", size, colour).save(buffer, format=fmt, quality=95)
  return buffer.getvalue()


def _write_csvs(folder, files=FILES):
  os.makedirs(folder, exist_ok=True)
  for name, groups in files.items():
    rows = [f"{f},{c}\n" for c, fines in groups.items() for f in fines]
    header = ["wnid,parent_wnid\n"] if name == "val.csv" else []
    with open(os.path.join(folder, name), "w") as f:
      f.writelines(header + [rows[0].replace(",", " , ")] + ["\n"] + rows[1:])  # spaces and a blank line


def _write_world(root, layout="hierarchies", images=True, drop_val=None):
  _write_csvs(os.path.join(root, "hierarchies") if layout == "hierarchies" else str(root))
  if images:
    for split, count in (("train", 2), ("val", 1)):
      for wnid in FINE:
        if split == "val" and wnid == drop_val:
          continue
        os.makedirs(os.path.join(root, split, wnid))
        for k in range(count):
          fmt, suffix = ("PNG", "png") if k == 1 else ("JPEG", "JPEG")
          with open(os.path.join(root, split, wnid, f"{wnid}_{k}.{suffix}"), "wb") as f:
            f.write(_image(_colour(wnid), fmt, size=(48, 32) if k == 0 else (30, 70)))
  return str(root)


def _data_config(**fields):
  config = base_config().data
  config.name = "tiered_union"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _nearest_class(image: np.ndarray) -> str:
  mean = image.reshape(-1, 3).mean(0)
  return min(FINE, key=lambda w: np.abs(mean - _colour(w)).sum())


def _check_labels(split):
  images = split.inputs[np.arange(len(split))]
  assert images.shape == (len(split), 224, 224, 3) and images.dtype == np.uint8
  found = [_nearest_class(image) for image in images]
  np.testing.assert_array_equal(split.fine, [FINE.index(w) for w in found])
  np.testing.assert_array_equal(split.coarse, [COARSE.index(PARENT[w]) for w in found])


# ------------------------------------------------------------------------------------
# Hierarchy and taxonomy.


def test_union_taxonomy_sorts_fine_and_coarse_wnids(tmp_path):
  _write_csvs(tmp_path)
  parent = tiered_union.read_hierarchies(str(tmp_path))
  assert parent == PARENT  # the header row is skipped, whitespace stripped
  taxonomy = tiered_union.make_taxonomy(parent)
  assert taxonomy.name == "tiered_union" and taxonomy.num_fine == 14 and taxonomy.num_coarse == 4
  assert taxonomy.fine_names == tuple(FINE) and taxonomy.coarse_names == tuple(COARSE)
  np.testing.assert_array_equal(taxonomy.fine_to_coarse, [COARSE.index(PARENT[w]) for w in FINE])
  np.testing.assert_array_equal(np.bincount(taxonomy.fine_to_coarse), [4, 4, 3, 3])  # B, D, C, A


def test_names_from_words_txt_and_class_index_file(tmp_path):
  root = _write_world(tmp_path, images=False)
  with open(os.path.join(root, "words.txt"), "w") as f:  # ImageNet's words.txt: synonyms after a tab
    f.write(f"{C_A}\tbird, fowl\n{FINE[0]}\tcrane\n{FINE[1]}\tcrane, derrick\nn09999999\tunused\n")
  with open(os.path.join(root, "hierarchies", "imagenet_class_index.json"), "w") as f:
    json.dump({"0": [FINE[2], "tench"], "1": [FINE[0], "other name"]}, f)
  names = tiered_union.read_names([root, os.path.join(root, "hierarchies")])
  assert names[C_A] == "bird" and names[FINE[0]] == "crane" and names[FINE[2]] == "tench"
  taxonomy = tiered_union.make_taxonomy(tiered_union.read_hierarchies(os.path.join(root, "hierarchies")), names)
  assert taxonomy.fine_names[:4] == (f"crane ({FINE[0]})", f"crane ({FINE[1]})", "tench", FINE[3])
  assert taxonomy.coarse_names == (C_B, C_D, C_C, "bird")  # ids still follow the sorted wnids


# ------------------------------------------------------------------------------------
# The folder path.


def test_folder_dataset_sizes_labels_and_decoding(tmp_path):
  data = tiered_union.load(_data_config(dir=_write_world(tmp_path)))
  assert data.name == "tiered_union" and data.taxonomy.fine_names == tuple(FINE)
  assert isinstance(data.train.inputs, breeds.LazyImages) and isinstance(data.test.inputs, breeds.LazyImages)
  assert len(data.train) == 28 and len(data.test) == 14 and data.val is None
  assert data.input_shape == (224, 224, 3) and data.is_image
  np.testing.assert_array_equal(data.mean, breeds.MEAN)
  np.testing.assert_array_equal(data.std, breeds.STD)
  for split in (data.train, data.test):
    _check_labels(split)
  np.testing.assert_array_equal(np.bincount(data.test.fine), np.ones(14))
  assert np.abs(data.test.inputs[0].astype(int) - _colour(FINE[0])).max() <= 4
  # A validation split carved from train stays lazy and keeps its labels.
  train, val = carve_validation(data.train, 0.5, seed=3)
  assert isinstance(val.inputs, breeds.LazyImages) and len(train) + len(val) == 28
  np.testing.assert_array_equal(np.bincount(val.coarse), [4, 4, 3, 3])
  _check_labels(val)


def test_csvs_in_the_folder_itself_and_the_env_fallback(tmp_path, monkeypatch):
  root = _write_world(tmp_path / "tiered_union", layout="flat", images=False)
  assert tiered_union.find_dirs(root) == (root, root)
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path))
  assert tiered_union.find_dirs("") == (root, root)
  with pytest.raises(FileNotFoundError) as error:  # a named data.dir is not left for the env's copy
    tiered_union.find_dirs(str(tmp_path / "elsewhere"))
  assert str(tmp_path / "elsewhere") in str(error.value) and root not in str(error.value)


# ------------------------------------------------------------------------------------
# Errors.


def test_missing_csv(tmp_path, monkeypatch):
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  root = _write_world(tmp_path, images=False)
  os.remove(os.path.join(root, "hierarchies", "test.csv"))
  with pytest.raises(FileNotFoundError) as error:
    tiered_union.load(_data_config(dir=root))
  message = str(error.value)
  assert os.path.join(root, "hierarchies") in message and "['test.csv']" in message
  assert "data.dir" in message and "parent_wnid" in message
  with pytest.raises(FileNotFoundError, match="neither data.dir nor"):
    tiered_union.load(_data_config())


def test_hierarchy_file_errors(tmp_path):
  files = {**FILES, "test.csv": {**FILES["test.csv"], C_B: ["n02000010"]}}  # also under C_A in train.csv
  _write_csvs(tmp_path / "two", files)
  with pytest.raises(ValueError, match=rf"test.csv, line \d+: n02000010 has the parent {C_B}, but .*train.csv"):
    tiered_union.read_hierarchies(str(tmp_path / "two"))
  _write_csvs(tmp_path / "deep", {**FILES, "test.csv": {C_A: [C_B]}})  # C_B is also a parent
  with pytest.raises(ValueError, match="both classes and parents"):
    tiered_union.read_hierarchies(str(tmp_path / "deep"))
  _write_csvs(tmp_path / "bad")
  with open(tmp_path / "bad" / "val.csv", "a") as f:
    f.write("n02000999,n01000030,extra\n")
  with pytest.raises(ValueError, match="val.csv, line 6: expected 'wnid,parent_wnid'"):
    tiered_union.read_hierarchies(str(tmp_path / "bad"))


def test_folder_errors(tmp_path):
  root = _write_world(tmp_path, drop_val=FINE[5])
  with pytest.raises(FileNotFoundError, match=f"lacks the class folders of 1 of the 14.*{FINE[5]}"):
    tiered_union.load(_data_config(dir=root))
  with pytest.raises(ValueError, match="leave data.taxonomy and data.variant empty"):
    tiered_union.load(_data_config(dir=root, taxonomy="cifar100"))
  os.rename(os.path.join(root, "val"), os.path.join(root, "val_elsewhere"))
  with pytest.raises(FileNotFoundError, match="has train/ but not val/"):
    tiered_union.load(_data_config(dir=root))


# ------------------------------------------------------------------------------------
# tfds imagenet2012 (a fake data source, as in test_breeds).


def test_tfds_path_with_a_synset_mapping_file(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  root = _write_world(tmp_path, images=False)
  classes = FINE[::-1] + ["n09999999"]  # reversed: a loader using sorted positions would be caught
  with open(os.path.join(root, "LOC_synset_mapping.txt"), "w") as f:
    f.writelines(f"{w} class {w}, synonym\n" for w in classes)
  rng = np.random.default_rng(0)
  records = {split: [{"image": _image(_colour(w), "JPEG"), "label": classes.index(w)}
                     for w in rng.permutation(FINE * n)] + [{"image": b"", "label": len(FINE)}]
             for split, n in (("train", 2), ("validation", 1))}
  monkeypatch.setattr(tfds, "data_source", lambda name, split, **kwargs: FakeSource(records[split]))
  data = tiered_union.load(_data_config(dir=root))
  assert len(data.train) == 28 and len(data.test) == 14  # the class outside the hierarchy is dropped
  for split in (data.train, data.test):
    _check_labels(split)
  assert data.taxonomy.fine_names[0] == f"class {FINE[0]}"  # names from the mapping file
  # A hierarchy class missing from the class index is named.
  with open(os.path.join(root, "LOC_synset_mapping.txt"), "w") as f:
    f.writelines(f"{w} class\n" for w in FINE[1:])
  with pytest.raises(ValueError, match=rf"1 wnids .* not ImageNet-1k classes: {FINE[0]}"):
    tiered_union.load(_data_config(dir=root))


def test_class_index_from_tfds_label_names():
  index = tiered_union.imagenet_class_index([])
  assert len(index) == 1000 and index["n01440764"] == 0 and index["n15075141"] == 999
  assert sorted(index, key=index.get) == sorted(index)  # class indices follow the sorted wnids
