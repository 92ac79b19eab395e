"""A data.dir the user named but that lacks the dataset's files is an error, never a fallback to another copy.

Fashion-MNIST and PBMC are checked with readable copies in their test files (tests/data/datasets/); here the
loaders whose search path is data.dir, else $C2F_DATA_DIR/<name>: $C2F_DATA_DIR holds every file each one
looks for, and a named empty data.dir must still be refused, by name, before any of them is read.
"""

import pytest

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import breeds, sop, tiered, tiered_union

# data.name -> (config fields, the env sub-folder and the files found there, the finder the loader uses)
LOADERS = {
    "breeds": ({"variant": "living17"}, "breeds", breeds.REQUIRED_FILES,
               lambda d: breeds.find_info_dir(d)),
    "sop": ({"variant": "split1"}, "sop", sop.FILES, lambda d: sop.find_root(d)),
    "tiered_imagenet": ({}, "tiered_imagenet",
                        ("train_labels.pkl", "train_images_png.pkl", "test_labels.pkl", "test_images_png.pkl"),
                        lambda d: tiered.find_data_dir(d, ("train", "test"))),
    "tiered_union": ({}, "tiered_union", tiered_union.HIERARCHY_FILES, lambda d: tiered_union.find_dirs(d)[0]),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_named_empty_data_dir_is_an_error(name, tmp_path, monkeypatch):
  fields, subfolder, files, find = LOADERS[name]
  env = tmp_path / "env"
  (env / subfolder).mkdir(parents=True)
  for file in files:
    (env / subfolder / file).write_bytes(b"")  # the finders look for the files' presence only
  monkeypatch.setenv("C2F_DATA_DIR", str(env))
  assert find("") == str(env / subfolder)  # without data.dir, $C2F_DATA_DIR still serves
  empty = tmp_path / "empty"
  empty.mkdir()
  config = base_config().data
  config.name, config.dir = name, str(empty)
  for key, value in fields.items():
    config[key] = value
  with pytest.raises(FileNotFoundError) as error:
    load_dataset(config)
  message = str(error.value)
  assert str(empty) in message and " lacks " in message and files[-1] in message  # which files, expected where
  assert str(env) not in message and "\n" not in message  # one line, about the folder the user named
  assert "data.dir" in message  # and how to get them (each loader's setup hint)
