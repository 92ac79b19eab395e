"""The installed environment has what its dependencies import: tfds imports `importlib_resources`
lazily, on the way to any download, without declaring it for Python >= 3.9."""

import importlib.metadata
import os
import re


def test_setup_declares_importlib_resources():
  requires = importlib.metadata.requires("coarse2fine") or []
  names = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("-", "_") for r in requires}
  assert "importlib_resources" in names, "reinstall with `pip install -e .` after editing setup.py"


def test_tfds_builder_reaches_its_code_path(tmp_path):
  """`download_and_prepare` resolves the builder's code path first; before the fix this raised
  ModuleNotFoundError: No module named 'importlib_resources' in a venv made by the README's line."""
  import tensorflow_datasets as tfds

  builder = tfds.builder("mnist", data_dir=str(tmp_path))  # no download: nothing is prepared
  path = type(builder).code_path
  assert os.path.basename(str(path)) == "mnist.py"
  assert os.path.isfile(str(path))
