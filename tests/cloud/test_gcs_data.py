"""A data folder on gs:// loads like its local copy (BREEDS' ImageNet image folders, through the emulator)."""

import os

import numpy as np

from coarse2fine.data import load_dataset
from tests.cloud.conftest import gcs_fs
from tests.data.datasets.test_breeds import _data_config, _write_world


def test_an_image_folder_dataset_on_gs_loads_like_the_local_copy(tmp_path, gcs_dir):
  local = _write_world(tmp_path / "breeds")
  fs = gcs_fs()
  uploaded = {}
  for folder, _, files in os.walk(local):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        uploaded[os.path.relpath(path, local)] = f.read()
      fs.pipe(f"{gcs_dir}/{os.path.relpath(path, local)}", uploaded[os.path.relpath(path, local)])
  remote = load_dataset(_data_config(variant="living17", dir=gcs_dir))
  here = load_dataset(_data_config(variant="living17", dir=local))
  for name in ("train", "test"):
    ours, theirs = getattr(remote, name), getattr(here, name)
    np.testing.assert_array_equal(ours.fine, theirs.fine)
    np.testing.assert_array_equal(ours.coarse, theirs.coarse)
    np.testing.assert_array_equal(np.asarray(ours.inputs), np.asarray(theirs.inputs))
    # The files the reader fetches are the uploaded bytes, image by image.
    reader = ours.inputs.reader
    for i in ours.inputs.index:
      relative = os.fsdecode(reader.paths[i])
      assert reader.read(np.array([i]))[0] == uploaded[relative], relative
  assert remote.taxonomy.fine_names == here.taxonomy.fine_names
  np.testing.assert_allclose(remote.mean, here.mean)
