"""The file loaders read data folders and files on gs:// like their local copies (through the emulator)."""

import os

import numpy as np

from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import idx
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy
from tests.cloud.conftest import gcs_fs
from tests.data.datasets.test_datasets import _data_config, _write_fashion_mnist


def _upload(local_folder, gcs_folder):
  """Copies every file under `local_folder` to `gcs_folder` (same relative paths)."""
  fs = gcs_fs()
  for folder, _, files in os.walk(local_folder):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        fs.pipe(f"{gcs_folder}/{os.path.relpath(path, local_folder)}", f.read())


def _assert_same(remote, here):
  for name in ("train", "test"):
    ours, theirs = getattr(remote, name), getattr(here, name)
    np.testing.assert_array_equal(np.asarray(ours.inputs), np.asarray(theirs.inputs))
    np.testing.assert_array_equal(ours.fine, theirs.fine)
    np.testing.assert_array_equal(ours.coarse, theirs.coarse)
  assert remote.taxonomy.fine_names == here.taxonomy.fine_names
  assert remote.taxonomy.coarse_names == here.taxonomy.coarse_names
  np.testing.assert_allclose(remote.mean, here.mean)
  np.testing.assert_allclose(remote.std, here.std)


def test_arrays_npz_and_taxonomy_files_on_gs_load_like_the_local_copies(tmp_path, gcs_dir):
  rng = np.random.default_rng(0)
  groups = {"animals": ["cat", "dog"], "plants": ["oak", "fern"]}
  Taxonomy.from_groups("mine", groups).save(str(tmp_path / "mine.json"))
  (tmp_path / "mine.csv").write_text("fine,coarse\n# a comment\ncat,animals\ndog,animals\noak,plants\nfern,plants\n")
  fine, fine_test = rng.integers(0, 4, 40), rng.integers(0, 4, 12)
  coarse_of = np.array([0, 0, 1, 1])
  np.savez(tmp_path / "d.npz", x=rng.normal(size=(40, 5)), coarse=coarse_of[fine], fine=fine,
           x_test=rng.normal(size=(12, 5)), coarse_test=coarse_of[fine_test], fine_test=fine_test)
  _upload(tmp_path, gcs_dir)
  for taxonomy in ("mine.json", "mine.csv"):
    remote = load_dataset(_data_config("arrays", path=f"{gcs_dir}/d.npz", taxonomy=f"{gcs_dir}/{taxonomy}"))
    here = load_dataset(_data_config("arrays", path=str(tmp_path / "d.npz"), taxonomy=str(tmp_path / taxonomy)))
    _assert_same(remote, here)
    assert remote.taxonomy.name == here.taxonomy.name == "mine"
  assert get_taxonomy(f"{gcs_dir}/mine.csv").fine_to_coarse.tolist() == [0, 0, 1, 1]


def test_fashion_mnist_idx_files_on_gs_load_like_the_local_copies(tmp_path, gcs_dir):
  local = tmp_path / "fmnist"
  local.mkdir()
  _write_fashion_mnist(str(local), n_train=12, n_test=8)
  idx.write_idx(str(tmp_path / "plain"), np.arange(24, dtype=np.int32).reshape(2, 3, 4))  # not gzip-compressed
  _upload(tmp_path, gcs_dir)
  remote = load_dataset(_data_config("fashion_mnist", dir=f"{gcs_dir}/fmnist", taxonomy="fmnist3"))
  here = load_dataset(_data_config("fashion_mnist", dir=str(local), taxonomy="fmnist3"))
  _assert_same(remote, here)
  np.testing.assert_array_equal(idx.read_idx(f"{gcs_dir}/plain"), idx.read_idx(str(tmp_path / "plain")))
