"""Dataset loaders: Fashion-MNIST from IDX files, tfds paths under mock data, the rest."""

import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from coarse2fine.config_base import base_config
from coarse2fine.data import DATASETS, load_dataset
from coarse2fine.data.datasets import fashion_mnist, idx
from coarse2fine.data.datasets.cifar import subsample_si
from coarse2fine.data.splits import carve_validation, make_split
from coarse2fine.data.taxonomy import CIFAR100_CLASSES, CIFAR_SI_KEEP, FASHION_MNIST_CLASSES, Taxonomy, get_taxonomy


def _data_config(name, **fields):
  config = base_config().data
  config.name = name
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _write_fashion_mnist(folder, n_train=30, n_test=20, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n, (img_stem, lbl_stem) in (("train", n_train, fashion_mnist.FILES["train"]),
                                           ("test", n_test, fashion_mnist.FILES["test"])):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    idx.write_idx(os.path.join(folder, img_stem + ".gz"), images)
    idx.write_idx(os.path.join(folder, lbl_stem + ".gz"), labels)
    arrays[split] = (images, labels)
  return arrays


def test_fashion_mnist_from_idx_folder_with_fmnist3(tmp_path):
  arrays = _write_fashion_mnist(str(tmp_path))
  data = load_dataset(_data_config("fashion_mnist", dir=str(tmp_path), taxonomy="fmnist3"))
  np.testing.assert_array_equal(data.train.inputs[..., 0], arrays["train"][0])
  np.testing.assert_array_equal(data.test.fine, arrays["test"][1])
  # fmnist3 by hand: Tops {0,2,4,6}, Footwear {5,7,9}, Other {1,3,8}.
  expected_coarse = {0: 0, 2: 0, 4: 0, 6: 0, 5: 1, 7: 1, 9: 1, 1: 2, 3: 2, 8: 2}
  np.testing.assert_array_equal(data.train.coarse, [expected_coarse[f] for f in arrays["train"][1]])
  assert data.train.inputs.shape == (30, 28, 28, 1) and data.train.inputs.dtype == np.uint8


def test_fashion_mnist_seasons_taxonomy(tmp_path):
  arrays = _write_fashion_mnist(str(tmp_path))
  data = load_dataset(_data_config("fashion_mnist", dir=str(tmp_path), taxonomy="fmnist_seasons"))
  summer = {0, 6, 3, 5}  # T-shirt/top, Shirt, Dress, Sandal
  fine = arrays["train"][1]
  np.testing.assert_array_equal(data.train.coarse == 0, np.isin(fine, list(summer)))


def test_hide_fine_labels_keeps_the_coarse_labels_of_every_split(tmp_path):
  arrays = _write_fashion_mnist(str(tmp_path), n_train=40)
  data = load_dataset(_data_config("fashion_mnist", dir=str(tmp_path), taxonomy="fmnist10", hide_fine_labels=True,
                                   val_fraction=0.25, extra_taxonomies=("fmnist3",)))
  assert all((split.fine == -1).all() for split in (data.train, data.val, data.test))
  np.testing.assert_array_equal(data.test.coarse, arrays["test"][1])  # fmnist10: the class is the coarse label
  np.testing.assert_array_equal(data.test.inputs[..., 0], arrays["test"][0])
  # The extra taxonomy still labelled its half of train from the fine labels before they were hidden.
  fmnist3 = {0: 0, 2: 0, 4: 0, 6: 0, 5: 1, 7: 1, 9: 1, 1: 2, 3: 2, 8: 2}
  labels = {image.tobytes(): int(label) for image, label in zip(arrays["train"][0], arrays["train"][1])}
  second = data.train.dataset == 1
  assert second.sum() == len(data.train) // 2
  expected = [fmnist3[labels[image.tobytes()]] for image in data.train.inputs[second][..., 0]]
  np.testing.assert_array_equal(data.train.coarse[second], expected)
  assert len(data.train) + len(data.val) == 40 and len(data.val) > 0


def test_fashion_mnist_user_taxonomy_file(tmp_path):
  _write_fashion_mnist(str(tmp_path))
  rows = [f"{name},{'bags' if name == 'Bag' else 'rest'}" for name in FASHION_MNIST_CLASSES]
  (tmp_path / "tax.csv").write_text("fine,coarse\n" + "\n".join(reversed(rows)) + "\n")
  data = load_dataset(_data_config("fashion_mnist", dir=str(tmp_path), taxonomy=str(tmp_path / "tax.csv")))
  bag = data.taxonomy.coarse_names.index("bags")
  np.testing.assert_array_equal(data.train.coarse == bag, data.train.fine == 8)


def test_fashion_mnist_missing_files_error_says_where_and_how(tmp_path, monkeypatch):
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "nothing"))
  monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "no_debian"))

  def offline(*args, **kwargs):
    raise RuntimeError("offline")

  monkeypatch.setattr(fashion_mnist, "load_tfds_arrays", offline)
  with pytest.raises(FileNotFoundError) as error:
    load_dataset(_data_config("fashion_mnist"))
  message = str(error.value)
  assert str(tmp_path / "nothing") in message and str(tmp_path / "no_debian") in message
  assert "apt-get install dataset-fashion-mnist" in message and "data.dir" in message


def test_fashion_mnist_named_dir_without_the_files_is_an_error_not_a_fallback(tmp_path, monkeypatch):
  # Every default place holds a copy the old search would have read instead.
  for folder in ("env", "debian"):
    (tmp_path / folder).mkdir()
    _write_fashion_mnist(str(tmp_path / folder))
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "env"))
  monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "debian"))
  (tmp_path / "partial").mkdir()
  idx.write_idx(str(tmp_path / "partial" / "train-images-idx3-ubyte.gz"), np.zeros((2, 28, 28), np.uint8))
  with pytest.raises(FileNotFoundError) as error:
    load_dataset(_data_config("fashion_mnist", dir=str(tmp_path / "partial")))
  message = str(error.value)
  assert "\n" not in message and f"data.dir={str(tmp_path / 'partial')!r}" in message
  missing = ["train-labels-idx1-ubyte[.gz]", "t10k-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]"]
  assert f"lacks the Fashion-MNIST IDX files {', '.join(missing)};" in message  # only the missing ones
  assert str(tmp_path / "env") not in message and "leave data.dir unset" in message
  assert len(load_dataset(_data_config("fashion_mnist")).train) == 30  # unset: the default places still serve


def test_fashion_mnist_falls_back_to_tfds(tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "no_debian"))
  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  with tfds.testing.mock_data(num_examples=12):
    data = load_dataset(_data_config("fashion_mnist"))
  assert len(data.train) == 12 and data.train.inputs.shape[1:] == (28, 28, 1)
  np.testing.assert_array_equal(data.train.coarse, data.taxonomy.fine_to_coarse[data.train.fine])


@pytest.mark.parametrize("taxonomy", ["cifar100", "cifar100_t2", "cifar68"])
def test_cifar100_through_mocked_tfds(taxonomy):
  with tfds.testing.mock_data(num_examples=64):
    if taxonomy == "cifar100":
      # Mock coarse labels are random; the official labels must agree with T1, which the loader checks.
      with pytest.raises(ValueError, match="not the parent"):
        load_dataset(_data_config("cifar100", taxonomy=taxonomy))
      return
    data = load_dataset(_data_config("cifar100", taxonomy=taxonomy))
  assert data.train.inputs.shape[1:] == (32, 32, 3)
  assert data.num_fine == (68 if taxonomy == "cifar68" else 100)
  np.testing.assert_array_equal(data.train.coarse, data.taxonomy.fine_to_coarse[data.train.fine])
  if taxonomy == "cifar68":
    assert len(data.train) < 64  # examples of the 32 removed classes are dropped


def test_cifar100_t1_uses_official_coarse_labels(monkeypatch):
  from coarse2fine.data.datasets import cifar

  rng = np.random.default_rng(0)
  fine = rng.integers(0, 100, 50)
  t1, _ = get_taxonomy("cifar100", CIFAR100_CLASSES)

  def fake(name, split, keys, data_dir=None):
    return {"image": np.zeros((50, 32, 32, 3), np.uint8), "label": fine, "coarse_label": t1.fine_to_coarse[fine]}

  monkeypatch.setattr(cifar, "load_tfds_arrays", fake)
  data = load_dataset(_data_config("cifar100", taxonomy="cifar100"))
  np.testing.assert_array_equal(data.train.coarse, t1.fine_to_coarse[fine])


def test_cifar_si_keeps_the_first_share_of_each_class():
  labels = np.repeat(np.arange(100), 10)
  np.random.default_rng(0).shuffle(labels)
  kept = subsample_si(labels)
  for c in (0, 47, 99):
    members = np.flatnonzero(labels == c)
    expected = members[: int(10 * CIFAR_SI_KEEP[c])]
    np.testing.assert_array_equal(kept[labels[kept] == c], expected)


@pytest.mark.parametrize("split,dropped", [("cifartoy_good", (4, 6)), ("cifartoy_bad", (4, 6))])
def test_cifar10_toy_drops_deer_and_frog(split, dropped):
  with tfds.testing.mock_data(num_examples=80):
    data = load_dataset(_data_config("cifar10", taxonomy=split))
  assert data.num_fine == 8 and data.num_coarse == 2
  assert len(data.train) < 80


def test_digits_shapes():
  data = load_dataset(_data_config("digits"))
  assert len(data.train) + len(data.test) == 1797
  assert data.train.inputs.shape[1:] == (8, 8, 1) and data.train.inputs.max() == 255
  np.testing.assert_array_equal(data.train.coarse, data.taxonomy.fine_to_coarse[data.train.fine])


def test_synthetic_fine_structure_is_recoverable():
  from sklearn.neighbors import KNeighborsClassifier

  config = _data_config("synthetic")
  config.synthetic.num_coarse, config.synthetic.fine_per_coarse = 4, 3
  data = load_dataset(config)
  assert data.num_fine == 12 and data.train.inputs.shape == (2048, 16)
  knn = KNeighborsClassifier(5).fit(data.train.inputs, data.train.fine)
  assert knn.score(data.test.inputs, data.test.fine) > 0.9  # planted fine classes are separable
  again = load_dataset(config)
  np.testing.assert_array_equal(again.train.inputs, data.train.inputs)  # fixed by the seed


def test_synthetic_images():
  config = _data_config("synthetic")
  config.synthetic.kind = "images"
  config.synthetic.image_shape = (6, 5, 3)
  data = load_dataset(config)
  assert data.train.inputs.shape[1:] == (6, 5, 3) and data.train.inputs.dtype == np.uint8


def test_arrays_npz_with_taxonomy_file(tmp_path):
  rng = np.random.default_rng(0)
  fine = rng.integers(0, 4, 100)
  groups = {"animals": ["cat", "dog"], "plants": ["oak", "fern"]}
  Taxonomy.from_groups("mine", groups).save(str(tmp_path / "mine.json"))
  coarse = np.array([0, 0, 1, 1])[fine]
  np.savez(tmp_path / "d.npz", x=rng.normal(size=(100, 7)), coarse=coarse, fine=fine)
  data = load_dataset(_data_config("arrays", path=str(tmp_path / "d.npz"), taxonomy=str(tmp_path / "mine.json")))
  assert len(data.train) + len(data.test) == 100 and data.train.inputs.dtype == np.float32
  # Coarse-only arrays work too: fine labels become -1 (unknown).
  np.savez(tmp_path / "c.npz", x=rng.normal(size=(100, 7)), coarse=coarse)
  data = load_dataset(_data_config("arrays", path=str(tmp_path / "c.npz"), taxonomy=str(tmp_path / "mine.json")))
  assert (data.train.fine == -1).all()


def test_arrays_errors(tmp_path):
  Taxonomy.from_groups("t", {"a": ["x"], "b": ["y"]}).save(str(tmp_path / "t.json"))
  np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3)), coarse=np.array([0, 1, 2, 0]))
  with pytest.raises(ValueError, match=r"coarse labels are outside \[0, 2\)"):
    load_dataset(_data_config("arrays", path=str(tmp_path / "bad.npz"), taxonomy=str(tmp_path / "t.json")))
  np.savez(tmp_path / "nox.npz", coarse=np.array([0, 1]))
  with pytest.raises(ValueError, match=r"lacks the arrays \['x'\]"):
    load_dataset(_data_config("arrays", path=str(tmp_path / "nox.npz"), taxonomy=str(tmp_path / "t.json")))
  with pytest.raises(FileNotFoundError):
    load_dataset(_data_config("arrays", path=str(tmp_path / "missing.npz"), taxonomy=str(tmp_path / "t.json")))


def test_unknown_dataset():
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet9'"):
    load_dataset(_data_config("imagenet9"))
  assert {"fashion_mnist", "cifar100", "cifar10", "digits", "synthetic", "arrays"} <= set(DATASETS)


def test_labels_must_match_the_taxonomy():
  taxonomy = Taxonomy.from_groups("t", {"a": ["x", "y"], "b": ["z"]})
  with pytest.raises(ValueError, match="fine labels are outside"):
    make_split(np.zeros((2, 3)), fine=[0, 3], taxonomy=taxonomy, where="here")
  with pytest.raises(ValueError, match="not the parent"):
    make_split(np.zeros((2, 3)), fine=[0, 2], coarse=[0, 0], taxonomy=taxonomy, where="here")


def test_validation_split_is_stratified_and_disjoint():
  taxonomy = Taxonomy.from_groups("t", {"a": ["x"], "b": ["y"]})
  coarse = np.array([0] * 80 + [1] * 20)
  train = make_split(np.arange(100)[:, None].astype(np.float32), coarse=coarse, taxonomy=taxonomy, where="t")
  rest, val = carve_validation(train, 0.1, seed=3)
  assert len(val) == 10 and (val.coarse == 1).sum() == 2
  assert not set(rest.inputs[:, 0]) & set(val.inputs[:, 0])


def test_train_examples_keeps_a_fixed_subset_in_order():
  from coarse2fine.data.splits import subsample
  taxonomy = Taxonomy.from_groups("t", {"a": ["x"], "b": ["y"]})
  train = make_split(np.arange(100)[:, None].astype(np.float32), coarse=np.arange(100) % 2, taxonomy=taxonomy,
                     where="t")
  small = subsample(train, 30, seed=1)
  ids = small.inputs[:, 0]
  assert len(small) == 30 and len(set(ids)) == 30 and np.all(np.diff(ids) > 0)
  np.testing.assert_array_equal(small.coarse, ids.astype(int) % 2)  # labels travel with their inputs
  np.testing.assert_array_equal(subsample(train, 30, seed=1).inputs, small.inputs)
  assert not np.array_equal(subsample(train, 30, seed=2).inputs, small.inputs)
  assert len(subsample(train, 0, seed=1)) == 100 and len(subsample(train, 500, seed=1)) == 100


@pytest.mark.parametrize("assignment", ["halves", "parity"])
def test_several_taxonomies_relabel_parts_of_train(tmp_path, assignment):
  from coarse2fine.config_base import base_config
  config = base_config().data
  config.name = "synthetic"  # 3 coarse x 3 fine: coarse{c}/fine{j}
  config.synthetic.num_train = 90
  other = {f"j{j}": [f"coarse{c}/fine{j}" for c in range(3)] for j in range(3)}  # groups fine j across c
  path = tmp_path / "by_j.json"
  path.write_text(json.dumps(other))
  config.extra_taxonomies = (str(path),)
  config.taxonomy_assignment = assignment
  data = load_dataset(config)
  assert [t.num_coarse for t in data.taxonomies] == [3, 3]
  train = data.train
  dataset = train.dataset
  want_dataset = np.arange(90) // 45 if assignment == "halves" else np.arange(90) % 2
  np.testing.assert_array_equal(dataset, want_dataset)
  fine_j = train.fine % 3  # synthetic fine id = 3 c + j
  np.testing.assert_array_equal(train.coarse[dataset == 0], train.fine[dataset == 0] // 3)
  np.testing.assert_array_equal(train.coarse[dataset == 1], fine_j[dataset == 1])  # the by-j taxonomy
  assert data.test.dataset is None  # evaluation keeps the main taxonomy
  from coarse2fine.data import pipeline
  batch = next(iter(pipeline.train_dataset(data, config, views=("none",), global_batch_size=10, seed=0)))
  np.testing.assert_array_equal(batch.dataset, dataset[batch.index])


def test_several_taxonomies_need_the_same_fine_classes(tmp_path):
  from coarse2fine.config_base import base_config
  config = base_config().data
  config.name = "synthetic"
  path = tmp_path / "bad.json"
  path.write_text(json.dumps({"a": ["coarse0/fine0", "nonsense"]}))
  config.extra_taxonomies = (str(path),)
  with pytest.raises(ValueError, match="nonsense"):
    load_dataset(config)


@pytest.mark.parametrize("bad,message", [
    (np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
    (1e39, "NaN or infinite"),  # finite in float64, infinite in float32
    (-1e30, "exceed 1e\\+15 in magnitude"),  # finite, but its square is not in float32
])
def test_arrays_with_nonfinite_or_huge_vectors_are_refused_at_load(tmp_path, bad, message):
  from coarse2fine.data.datasets import arrays

  Taxonomy.from_groups("t", {"a": ["x"], "b": ["y"]}).save(str(tmp_path / "t.json"))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 4))
  x[7, 2] = bad
  np.savez(tmp_path / "d.npz", x=x, coarse=rng.integers(0, 2, 50))
  config = ml_collections.ConfigDict({"path": str(tmp_path / "d.npz"), "taxonomy": str(tmp_path / "t.json"),
                                      "test_fraction": 0.2, "split_seed": 0})
  with pytest.raises(ValueError, match=rf"\(x\): 1 values .*{message}.*at index \(7, 2\)"):
    arrays.load(config)
