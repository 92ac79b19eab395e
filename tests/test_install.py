"""The installed environment has what its dependencies import: tfds imports `importlib_resources`
lazily, on the way to any download, without declaring it for Python >= 3.9."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.mark.slow
def test_a_fresh_install_reaches_the_tfds_code_path(tmp_path):
  """The README's install (`pip install` of the repository, no extras) into a new venv: tfds's builder
  resolves its code path there too, so nothing the test extras bring in hides a missing dependency."""
  source = tmp_path / "src"  # a copy: building the wheel writes build/ beside setup.py
  shutil.copytree(os.path.join(REPO, "coarse2fine"), source / "coarse2fine",
                  ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
  for name in ("setup.py", "README.md", "LICENSE"):
    shutil.copy(os.path.join(REPO, name), source / name)
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  installed = subprocess.run([python, "-m", "pip", "install", "-q", str(source)], capture_output=True, text=True,
                             timeout=1200)
  assert installed.returncode == 0, installed.stderr[-3000:]
  check = ("import os, sys, tempfile\nimport tensorflow_datasets as tfds\n"
           "path = type(tfds.builder('mnist', data_dir=tempfile.mkdtemp())).code_path\n"
           "assert os.path.isfile(str(path)), path\nimport coarse2fine.api\nprint('ok')")
  done = subprocess.run([python, "-c", check], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
