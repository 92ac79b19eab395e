"""Broken inputs through the command line: an .npz with NaN, inf or huge values stops before training,
with the problem and its position on the last line of stderr and no run files written."""

import os
import subprocess
import sys

import numpy as np
import pytest

from coarse2fine.data.taxonomy import Taxonomy
from tests import multi_device


@pytest.mark.parametrize("bad,problem", [(np.nan, "NaN or infinite"),  # the other two: one command each (~40 s)
                                         pytest.param(np.inf, "NaN or infinite", marks=pytest.mark.slow),
                                         pytest.param(1e30, "exceed 1e+15 in magnitude", marks=pytest.mark.slow)])
def test_bad_values_in_an_npz_stop_the_command_at_load(tmp_path, bad, problem):
  Taxonomy.from_groups("t", {"a": ["a1", "a2"], "b": ["b1", "b2"]}).save(str(tmp_path / "t.json"))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 6)).astype(np.float32)
  x[17, 4] = bad
  fine = rng.integers(0, 4, 200)
  np.savez(tmp_path / "d.npz", x=x, fine=fine, coarse=fine // 2)
  done = subprocess.run(
      [sys.executable, "-m", "coarse2fine.main", f"--config={multi_device.REPO}/configs/coarse_fashion_mnist.py",
       f"--workdir={tmp_path / 'run'}", "--config.data.name=arrays", "--config.model.encoder=mlp",
       f"--config.data.path={tmp_path / 'd.npz'}",
       f"--config.data.taxonomy={tmp_path / 't.json'}"],
      capture_output=True, text=True, cwd=multi_device.REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"},
      timeout=600)  # ~20 s alone, minutes on a loaded machine: it fails at load, so time is no risk
  assert done.returncode != 0
  last = done.stderr.strip().splitlines()[-1]
  assert "d.npz (x): 1 values" in last and problem in last and "(17, 4)" in last, last
  assert not os.path.exists(tmp_path / "run" / "config.json")
