"""data.name="image_folder": folders and CSV/TSV lists the tests write, checked against Pillow and brute force."""

import os

import numpy as np
import pytest
from PIL import Image

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import folder_export, idx
from tests.data import images


def _data_config(**fields):
  config = base_config().data
  config.name = "image_folder"
  config.taxonomy = "folders"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _write(path, pixels: np.ndarray, fmt: str = "PNG") -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path, format=fmt)
  return str(path)


def _paths(split) -> list[str]:
  """The file of each example of a split, as its reader names it."""
  return [split.inputs.reader.describe(i) for i in split.inputs.index]


def _names(data, split) -> list[tuple[str, str]]:
  """(coarse name, fine name or None) of each example."""
  tax = data.taxonomy
  return [(tax.coarse_names[c], tax.fine_names[f] if f >= 0 else None) for c, f in zip(split.coarse, split.fine)]


def _pillow(path, size, mode) -> np.ndarray:
  """The reference view: Pillow's own decode, converted, the whole image resized (bilinear, antialiased)."""
  with Image.open(path) as image:
    out = np.asarray(image.convert(mode).resize((size, size), Image.Resampling.BILINEAR))
  return out[..., None] if out.ndim == 2 else out


def _tree(root, layout: dict, fmt="PNG", channels=3, size=(10, 14)):
  """layout: {"train/A/a1": 3, ...} -> that many images in each folder; returns {path: (coarse, fine or None)}."""
  labels, seed = {}, 0
  for folder, count in layout.items():
    parts = folder.split("/")
    for i in range(count):
      seed += 1
      path = _write(os.path.join(root, folder, f"{i}.{fmt.lower()}"), images.photo(*size, seed, channels), fmt)
      labels[path] = (parts[1], parts[2] if len(parts) > 2 else None)
  return labels


# ------------------------------------------------------------------------------------
# Folders.


def test_folders_give_labels_and_a_sorted_taxonomy(tmp_path):
  root = str(tmp_path / "root")
  want = _tree(root, {"train/vehicle/car": 3, "train/animal/dog": 2, "train/animal/cat": 4,
                      "test/animal/cat": 2, "test/vehicle/car": 1})
  # Other extensions, in any case, and files to ignore.
  want[_write(f"{root}/train/animal/dog/x.JPG", images.photo(10, 14, 99), "JPEG")] = ("animal", "dog")
  want[_write(f"{root}/train/animal/dog/y.WebP", images.photo(10, 14, 98), "WEBP")] = ("animal", "dog")
  for ignored in ("train/animal/dog/notes.txt", "train/animal/dog/.hidden.png", "train/.DS_Store"):
    (tmp_path / "root" / ignored).write_bytes(b"not an image")
  os.makedirs(f"{root}/train/.ipynb_checkpoints")
  data = load_dataset(_data_config(dir=root, image_size=8))
  tax = data.taxonomy
  assert tax.coarse_names == ("animal", "vehicle") and tax.fine_names == ("car", "cat", "dog")
  assert tax.fine_to_coarse.tolist() == [1, 0, 0]
  for split, count in (("train", 11), ("test", 3)):
    got = dict(zip(_paths(getattr(data, split)), _names(data, getattr(data, split))))
    assert len(got) == count
    assert got == {p: v for p, v in want.items() if f"/{split}/" in p}
  assert data.train.inputs.shape == (11, 8, 8, 3) and data.name == "image_folder"


def test_pixels_are_pillows_decode_and_resize(tmp_path):
  root = str(tmp_path / "root")
  layout = {"train/A/a": 2, "train/B/b": 2}
  paths = [*_tree(root + "/png", layout, "PNG", size=(20, 16)), *_tree(root + "/webp", layout, "WEBP", size=(20, 16)),
           *_tree(root + "/jpg", layout, "JPEG", size=(20, 16))]
  for kind in ("png", "webp", "jpg"):
    data = load_dataset(_data_config(dir=f"{root}/{kind}", image_size=12, test_fraction=0.5))
    for split in (data.train, data.test):
      for i, path in enumerate(_paths(split)):
        got = split.inputs[i]
        want = _pillow(path, 12, "RGB")
        assert got.shape == (12, 12, 3)
        assert np.abs(got.astype(int) - want).max() <= 1, path  # simplejpeg and Pillow's libjpeg may round apart
  assert len(paths) == 12


def test_grey_images_give_one_channel_and_their_own_size(tmp_path):
  root = str(tmp_path / "grey")
  _tree(root, {"train/A/a": 3, "train/B/b": 3}, channels=1, size=(9, 9))
  data = load_dataset(_data_config(dir=root, image_size=0, test_fraction=0.4))
  assert data.train.inputs.shape[1:] == (9, 9, 1)
  for split in (data.train, data.test):
    for i, path in enumerate(_paths(split)):
      with Image.open(path) as image:
        np.testing.assert_array_equal(split.inputs[i][..., 0], np.asarray(image))
  resized = load_dataset(_data_config(dir=root, image_size=5, test_fraction=0.4))
  for i, path in enumerate(_paths(resized.train)):
    assert np.abs(resized.train.inputs[i].astype(int) - _pillow(path, 5, "L")).max() <= 1
  # Mean and std: the training images' pixels, in [0, 1] units (fewer than 1000, so all of them).
  pixels = np.concatenate([np.asarray(Image.open(p), float).ravel() / 255 for p in _paths(data.train)])
  np.testing.assert_allclose(data.mean, [pixels.mean()], rtol=1e-5)
  np.testing.assert_allclose(data.std, [pixels.std()], rtol=1e-4)


def test_upsampling_small_images_4x_or_more_warns_with_the_fix(tmp_path, caplog):
  root = str(tmp_path / "small")
  _tree(root, {"train/A/a": 2, "train/B/b": 2}, channels=1, size=(9, 9))
  with caplog.at_level("WARNING"):
    load_dataset(_data_config(dir=root, image_size=27, test_fraction=0.5))  # 3x: no warning
  assert "upsamples" not in caplog.text
  with caplog.at_level("WARNING"):
    load_dataset(_data_config(dir=root, image_size=36, test_fraction=0.5))  # 4x
  assert "at most 9 px" in caplog.text and "image_size=0" in caplog.text


def test_grey_and_colour_together_give_rgb(tmp_path):
  root = str(tmp_path / "mixed")
  _tree(root, {"train/A/a": 2}, channels=1)
  _tree(root, {"train/B/b": 2}, channels=3)
  data = load_dataset(_data_config(dir=root, image_size=6, test_fraction=0.5))
  assert data.train.inputs.shape[1:] == (6, 6, 3) and data.mean.shape == (3,)
  for i, path in enumerate(_paths(data.train)):
    assert np.abs(data.train.inputs[i].astype(int) - _pillow(path, 6, "RGB")).max() <= 1


def test_coarse_folders_without_a_fine_level(tmp_path):
  """Train with coarse labels only, test with fine ones; a coarse class never split gets a placeholder."""
  root = str(tmp_path / "root")
  want = _tree(root, {"train/A": 4, "train/B": 3, "train/C": 2, "test/A/a2": 2, "test/A/a1": 1, "test/B/b1": 2,
                      "test/C": 1})
  data = load_dataset(_data_config(dir=root, image_size=4))
  tax = data.taxonomy
  assert tax.coarse_names == ("A", "B", "C") and tax.fine_names == ("C/unknown", "a1", "a2", "b1")
  assert tax.fine_to_coarse.tolist() == [2, 0, 0, 1]
  assert (data.train.fine == -1).all() and data.train.coarse.tolist() == [0] * 4 + [1] * 3 + [2] * 2
  got = dict(zip(_paths(data.test), _names(data, data.test)))
  assert got == {p: v for p, v in want.items() if "/test/" in p}


def test_test_fraction_is_stratified_and_seeded(tmp_path):
  root = str(tmp_path / "root")
  sizes = {"train/A/a1": 10, "train/A/a2": 7, "train/B/b1": 3, "train/C": 9, "train/D/d1": 1}
  _tree(root, sizes, size=(4, 4))
  data = load_dataset(_data_config(dir=root, image_size=4, test_fraction=0.3, split_seed=5))
  train, test = _paths(data.train), _paths(data.test)
  assert not set(train) & set(test) and len(train) + len(test) == sum(sizes.values())
  for folder, n in sizes.items():  # brute force: each folder's share, at most n - 1 so train keeps the class
    held = sum(f"/{folder}/" in p for p in test)
    assert held == min(round(0.3 * n), n - 1), folder
  again = load_dataset(_data_config(dir=root, image_size=4, test_fraction=0.3, split_seed=5))
  assert _paths(again.test) == test
  other = load_dataset(_data_config(dir=root, image_size=4, test_fraction=0.3, split_seed=6))
  assert _paths(other.test) != test and len(other.test) == len(test)


# ------------------------------------------------------------------------------------
# Lists.


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_lists_resolve_paths_against_their_folder(tmp_path, suffix, delimiter):
  pictures = tmp_path / "data" / "pictures"
  rows, want = [], {}
  for i, (coarse, fine, split) in enumerate([("A", "a1", "train"), ("A", "a2", "train"), ("A", "", "train"),
                                             ("B", "b1", "train"), ("B", "b1", "test"), ("A", "a1", "test"),
                                             ("B", "", "")]):
    path = _write(str(pictures / f"{i}.png"), images.photo(6, 6, i))
    shown = path if i == 3 else f"pictures/{i}.png"  # one absolute path
    rows.append(delimiter.join([shown, fine, coarse, split]))  # columns in any order
    want[path] = (coarse, fine or None, split or "train")
  listing = tmp_path / "data" / f"list{suffix}"
  listing.write_text("\n".join([delimiter.join(["Path", "fine", "coarse", "split"]), *rows, ""]))
  data = load_dataset(_data_config(list=str(listing), image_size=6))
  assert data.taxonomy.fine_names == ("a1", "a2", "b1") and data.taxonomy.coarse_names == ("A", "B")
  for split in ("train", "test"):
    got = {p: (*n, split) for p, n in zip(_paths(getattr(data, split)), _names(data, getattr(data, split)))}
    assert got == {p: v for p, v in want.items() if v[2] == split}


def test_a_list_without_split_or_fine_columns_holds_out_test_fraction(tmp_path):
  for i in range(10):
    _write(str(tmp_path / f"{i}.png"), images.photo(5, 5, i))
  (tmp_path / "list.csv").write_text("path,coarse\n" + "".join(f"{i}.png,{'XY'[i % 2]}\n" for i in range(10)))
  data = load_dataset(_data_config(list=str(tmp_path / "list.csv"), image_size=5, test_fraction=0.2))
  assert data.taxonomy.fine_names == ("X/unknown", "Y/unknown")
  assert sorted(data.test.coarse.tolist()) == [0, 1] and len(data.train) == 8 and (data.test.fine == -1).all()


# ------------------------------------------------------------------------------------
# Taxonomy files.


def test_a_taxonomy_file_sets_the_ids_and_must_match_the_names(tmp_path):
  root = str(tmp_path / "root")
  _tree(root, {"train/B/b1": 2, "train/A/a1": 2, "train/A/a2": 1, "test/A/a2": 1}, size=(4, 4))
  taxonomy = tmp_path / "tax.csv"
  taxonomy.write_text("fine,coarse\nb1,B\na2,A\na1,A\na3,A\n")  # a3: a fine class no image has
  data = load_dataset(_data_config(dir=root, image_size=4, taxonomy=str(taxonomy)))
  assert data.taxonomy.fine_names == ("b1", "a2", "a1", "a3") and data.taxonomy.coarse_names == ("B", "A")
  got = dict(zip(_paths(data.train), zip(data.train.coarse.tolist(), data.train.fine.tolist())))
  assert {os.path.relpath(p, root).rsplit("/", 1)[0]: v for p, v in got.items()} == {
      "train/B/b1": (0, 0), "train/A/a1": (1, 2), "train/A/a2": (1, 1)}
  taxonomy.write_text("fine,coarse\nb1,B\na2,A\nx,A\n")
  with pytest.raises(ValueError, match=r"lacks class names the data uses: coarse \[\], fine \[a1\]"):
    load_dataset(_data_config(dir=root, image_size=4, taxonomy=str(taxonomy)))
  taxonomy.write_text("fine,coarse\nb1,B\na2,A\na1,B\n")
  with pytest.raises(ValueError, match=r"A/a1 \(taxonomy: B\)"):
    load_dataset(_data_config(dir=root, image_size=4, taxonomy=str(taxonomy)))
  taxonomy.write_text("fine,coarse\nb1,B\na2,A\na1,A\nz,Z\n")
  with pytest.raises(ValueError, match="coarse classes without train images: Z"):
    load_dataset(_data_config(dir=root, image_size=4, taxonomy=str(taxonomy)))


# ------------------------------------------------------------------------------------
# Bad input: one-line errors.


def _error(config) -> str:
  with pytest.raises((ValueError, FileNotFoundError)) as caught:
    load_dataset(config)
  message = str(caught.value)
  assert "\n" not in message
  return message


def test_errors_on_bad_folders(tmp_path):
  root = tmp_path / "root"
  assert "is not a folder" in _error(_data_config(dir=str(root)))
  os.makedirs(root / "test")
  assert "has no train/ folder" in _error(_data_config(dir=str(root)))
  (root / "train" / "A").mkdir(parents=True)
  (root / "train" / "A" / "notes.txt").write_text("x")
  message = _error(_data_config(dir=str(root)))
  assert f"{root}/train/A holds no jpeg/jpg/png/webp images" in message
  _tree(str(root), {"train/A": 2, "train/A/a1": 1})
  assert f"{root}/train/A holds both images" in _error(_data_config(dir=str(root)))


def test_errors_on_bad_layouts_and_classes(tmp_path):
  def fresh(name, layout):
    _tree(str(tmp_path / name), layout, size=(4, 4))
    return str(tmp_path / name)

  root = fresh("deep", {"train/A/a1/deeper": 1})
  assert "one fine level at most" in _error(_data_config(dir=root))
  root = fresh("empty", {"train/A/a1": 1})
  os.makedirs(f"{root}/train/A/a2")
  assert f"{root}/train/A/a2 holds no" in _error(_data_config(dir=root))
  root = fresh("loose", {"train/A": 1})
  _write(f"{root}/train/x.png", images.photo(4, 4))
  assert "outside coarse folders (x.png)" in _error(_data_config(dir=root))
  root = fresh("coarse", {"train/A": 2, "test/A": 1, "test/B": 1})
  assert "coarse classes that no train image has: B" in _error(_data_config(dir=root))
  root = fresh("fine", {"train/A/a1": 2, "test/A/a2": 1})
  assert "fine classes that no train image of their coarse class has: a2" in _error(_data_config(dir=root))
  root = fresh("shared", {"train/A/x": 1, "train/B/x": 1})
  assert "'x' lies under several coarse classes ['A', 'B']" in _error(_data_config(dir=root))
  root = fresh("notest", {"train/A": 2})
  assert "set data.test_fraction in (0, 1)" in _error(_data_config(dir=root, test_fraction=0.0))
  root = fresh("sizes", {"train/A": 2})
  _write(f"{root}/train/A/big.png", images.photo(6, 6))
  assert "not all one square size (e.g. 4x4, 6x6)" in _error(_data_config(dir=root, image_size=0))
  assert "data.image_size must be a positive integer" in _error(_data_config(dir=root, image_size=-1))
  assert "needs one of data.dir" in _error(_data_config(dir=root, list="x.csv"))
  assert "needs one of data.dir" in _error(_data_config())


def test_errors_on_unreadable_images(tmp_path):
  root = str(tmp_path / "root")
  _tree(root, {"train/A": 2, "train/B": 2}, size=(4, 4))
  with open(f"{root}/train/B/broken.png", "wb") as f:
    f.write(b"\x89PNG but not really")
  message = _error(_data_config(dir=root))
  assert message.startswith("1 images cannot be read: ") and f"{root}/train/B/broken.png" in message


def test_errors_on_bad_lists(tmp_path):
  _write(str(tmp_path / "a.png"), images.photo(4, 4))
  listing = tmp_path / "list.csv"
  assert "does not exist" in _error(_data_config(list=str(listing)))
  assert "must be a .csv or .tsv file" in _error(_data_config(list=str(tmp_path / "list.txt")))
  cases = {
      "path,fine\na.png,x\n": "lacks the columns ['coarse']",
      "file,label\na.png,x\n": "lacks the columns ['path', 'coarse']",
      "path,coarse\na.png\n": "line 2: 1 cells for the 2 columns",
      "path,coarse\na.png,\n": "line 2: every row needs a path and a coarse class",
      "path,coarse\na.gif,A\n": "line 2: 'a.gif' is not a jpeg/jpg/png/webp image",
      "path,coarse,split\na.png,A,validation\n": "line 2: split 'validation'; use train or test",
      "path,coarse,split\na.png,A,test\n": "lists no train images",
      "path,coarse\n": "lists no images",
      "path,coarse\nmissing.png,A\na.png,A\n": "1 images cannot be read: ",
  }
  for text, expected in cases.items():
    listing.write_text(text)
    assert expected in _error(_data_config(list=str(listing), test_fraction=0.5)), text


# ------------------------------------------------------------------------------------
# Export and a short training run.


def _fake_idx(folder, per_class=3):
  """Fashion-MNIST IDX files with `per_class` images of each class (train) and 2 (test); returns the arrays."""
  os.makedirs(folder)
  rng = np.random.default_rng(0)
  arrays = {}
  for split, stems, count in (("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), per_class),
                              ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), 2)):
    labels = np.tile(np.arange(10, dtype=np.uint8), count)
    pixels = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    idx.write_idx(os.path.join(folder, stems[0]), pixels)
    idx.write_idx(os.path.join(folder, stems[1]), labels)
    arrays[split] = (pixels, labels)
  return arrays


def test_export_writes_fashion_mnist_pngs(tmp_path):
  arrays = _fake_idx(str(tmp_path / "idx"))
  out = str(tmp_path / "out")
  counts = folder_export.export_fashion_mnist(out, per_class=2, test_per_class=0, data_dir=str(tmp_path / "idx"))
  assert counts == {"train": 20, "test": 20}
  assert sorted(os.listdir(tmp_path)) == ["idx", "out"]  # no temporary folder left
  assert sorted(os.listdir(f"{out}/train/Tops")) == ["Coat", "Pullover", "Shirt", "T-shirt_top"]
  pixels, labels = arrays["train"]
  names = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
  for k in (0, 9):
    first_two = np.flatnonzero(labels == k)[:2]
    folder = [os.path.join(d, names[k]) for d in (f"{out}/train/Tops", f"{out}/train/Footwear")
              if os.path.isdir(os.path.join(d, names[k]))][0]
    assert sorted(os.listdir(folder)) == sorted(f"{i}.png" for i in first_two)
    for i in first_two:
      np.testing.assert_array_equal(np.asarray(Image.open(f"{folder}/{i}.png")), pixels[i])
  with pytest.raises(FileExistsError, match="already exists"):
    folder_export.export_fashion_mnist(out, data_dir=str(tmp_path / "idx"))
  data = load_dataset(_data_config(dir=out, image_size=0))
  assert data.train.inputs.shape == (20, 28, 28, 1) and data.taxonomy.coarse_names == ("Footwear", "Other", "Tops")


def test_a_folder_trains_end_to_end_as_its_decoded_arrays_do(tmp_path):
  """A short run on the folder, then on the same images decoded by Pillow into arrays: the same scores."""
  import dataclasses

  from coarse2fine.data.splits import Split
  from coarse2fine.engine import loop

  root = str(tmp_path / "root")
  _tree(root, {"train/A/a1": 8, "train/A/a2": 8, "train/B/b1": 8, "test/A/a1": 4, "test/A/a2": 4, "test/B/b1": 4},
        channels=1, size=(16, 16))
  config = base_config()
  config.method = "coarse"
  config.data = _data_config(dir=root, image_size=0)
  config.data.views = ("crop_flip",)
  config.model.encoder = "convnet"
  config.optimizer.lr = 0.01
  config.train.num_epochs = 1
  config.train.batch_size = 12  # 2 steps
  config.eval.batch_size = 12
  config.eval.protocols = ("classification", "kmeans")
  config.train.log_every_steps = 1
  config.logging.progress = False
  metrics = loop.train_and_evaluate(config, str(tmp_path / "work"))["metrics"]
  assert np.isfinite(metrics["test/coarse_top1"]) and 0 <= metrics["test/coarse_top1"] <= 100
  assert "discovery/kmeans_acc" in metrics

  data = load_dataset(config.data)
  def decoded(split):
    pixels = np.stack([np.asarray(Image.open(p))[..., None] for p in _paths(split)])
    return Split(pixels, split.coarse, split.fine)
  arrays = dataclasses.replace(data, train=decoded(data.train), test=decoded(data.test))
  again = loop.train_and_evaluate(config, str(tmp_path / "arrays"), data=arrays)["metrics"]
  assert again.keys() == metrics.keys()
  np.testing.assert_allclose([again[k] for k in sorted(again)], [metrics[k] for k in sorted(metrics)], atol=1e-4)
  losses = [_losses(str(tmp_path / run)) for run in ("work", "arrays")]  # continuous: they see any pixel change
  assert len(losses[0]) == 2 and np.allclose(*losses, rtol=1e-5)


def _losses(workdir):
  import json

  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [row["train/ce"] for row in rows if "train/ce" in row]
