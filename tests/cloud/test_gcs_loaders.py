"""The file loaders read data folders and files on gs:// like their local copies (through the emulator)."""

import json
import os

import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import idx
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy
from tests.cloud.conftest import gcs_fs
from tests.data.datasets.test_datasets import _data_config, _write_fashion_mnist


def _upload(local_folder, gcs_folder, skip=()):
  """Copies every file under `local_folder` to `gcs_folder` (same relative paths), but those in `skip`."""
  fs = gcs_fs()
  for folder, _, files in os.walk(local_folder):
    for name in files:
      path = os.path.join(folder, name)
      if os.path.relpath(path, local_folder) in skip:
        continue
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


def test_pbmc_h5ad_on_gs_loads_like_the_local_copy(tmp_path, gcs_dir):
  from tests.data.datasets import test_pbmc  # skips without anndata

  x, codes = test_pbmc._cells()
  test_pbmc.write_h5ad(str(tmp_path / "cells.h5ad"), x, codes, sparse=True, raw=np.abs(x))
  _upload(tmp_path, gcs_dir)
  for variant in ("", "raw"):
    remote = load_dataset(test_pbmc._data_config(path=f"{gcs_dir}/cells.h5ad", variant=variant))
    here = load_dataset(test_pbmc._data_config(path=str(tmp_path / "cells.h5ad"), variant=variant))
    _assert_same(remote, here)


@pytest.mark.parametrize("images", ["png", "npz"])
def test_tiered_imagenet_files_on_gs_load_like_the_local_copy(tmp_path, gcs_dir, images):
  from tests.data.datasets.test_tiered import _data_config as tiered_config
  from tests.data.datasets.test_tiered import _write as write_tiered

  local = write_tiered(tmp_path / "tiered", splits=("train", "test"), images=images)
  _upload(local, f"{gcs_dir}/tiered-imagenet")  # the SUBDIR layout under data.dir
  remote = load_dataset(tiered_config(dir=gcs_dir))
  here = load_dataset(tiered_config(dir=local))
  _assert_same(remote, here)


def test_sop_listings_split_files_and_images_on_gs_load_like_the_local_copy(tmp_path, gcs_dir, monkeypatch):
  from tests.data.datasets.test_maskcon_datasets import _data_config as maskcon_config
  from tests.data.datasets.test_maskcon_datasets import _write_sop

  monkeypatch.delenv("C2F_DATA_DIR", raising=False)
  root, written = _write_sop(tmp_path)
  maskcon = tmp_path / "sop_split_custom"
  maskcon.mkdir()
  paths = sorted(written)
  (maskcon / "train_path.json").write_text(json.dumps(paths[:6]))
  (maskcon / "test_path.json").write_text(json.dumps(paths[-3:]))
  _upload(tmp_path, gcs_dir)
  lacking = f"{gcs_dir}_lacking"  # a copy without one image (listings are cached: a fresh folder, not a deletion)
  _upload(tmp_path, lacking, skip={f"Stanford_Online_Products/{paths[0]}"})
  for fields in ({"variant": "split1"}, {"split_file": "sop_split_custom"}):
    remote_fields = {k: f"{gcs_dir}/{v}" if k == "split_file" else v for k, v in fields.items()}
    local_fields = {k: str(tmp_path / v) if k == "split_file" else v for k, v in fields.items()}
    remote = load_dataset(maskcon_config("sop", dir=gcs_dir, image_size=8, **remote_fields))
    here = load_dataset(maskcon_config("sop", dir=str(tmp_path), image_size=8, **local_fields))
    _assert_same(remote, here)
  with pytest.raises(FileNotFoundError, match=f"lacks 1 of the split's images: {paths[0]}"):
    load_dataset(maskcon_config("sop", dir=lacking, split_file=f"{lacking}/sop_split_custom"))


def test_tiered_union_hierarchies_names_and_image_folders_on_gs_load_like_the_local_copy(tmp_path, gcs_dir):
  from tests.data.datasets.test_tiered_union import C_A, FINE, _write_world
  from tests.data.datasets.test_tiered_union import _data_config as union_config

  root = _write_world(tmp_path / "union")
  with open(os.path.join(root, "words.txt"), "w") as f:
    f.write(f"{C_A}\tbird, fowl\n{FINE[0]}\tcrane\n")
  _upload(root, gcs_dir)
  remote = load_dataset(union_config(dir=gcs_dir))
  here = load_dataset(union_config(dir=root))
  _assert_same(remote, here)
  assert "bird" in remote.taxonomy.coarse_names
