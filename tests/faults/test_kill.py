"""SIGKILL at random points of short SCGM, FALCON and MaskCon runs: restarted until done, every run ends
bit for bit where an uninterrupted run does (state, results, logged losses)."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from coarse2fine.config_base import load_config
from coarse2fine.engine.checkpointing import Checkpointer
from tests import multi_device

CONFIG = r'''
from coarse2fine.config_base import base_config

def get_config(method="scgm_g"):
  config = base_config()
  config.method = method
  config.data.name = "synthetic"
  config.data.views = ("none", "none") if method in ("falcon", "maskcon") else ("none",)
  config.data.synthetic.num_train = 512
  config.data.synthetic.num_test = 128
  config.model.encoder = "mlp"
  config.model.encoder_args.hidden_sizes = (32,)
  config.train.num_epochs = 4
  config.train.batch_size = 32
  config.train.log_every_steps = 2
  config.eval.batch_size = 128
  config.eval.protocols = ("classification", "kmeans")
  config.checkpoint.every_steps = 5
  config.logging.progress = False
  config.scgm.num_subclasses = 9
  config.scgm.estep_every_epochs = 1  # an E-step before every epoch: kills land inside some
  config.falcon.neighbours = 10
  config.falcon.neighbours_used = 3
  config.falcon.solve_every = 4  # four relation solves per epoch
  config.maskcon.queue_size = 128  # filled before the first step
  config.maskcon.embedding_dim = 8
  return config
'''

KILLS = 3


def _start(config, workdir):
  return subprocess.Popen([sys.executable, "-m", "coarse2fine.main", f"--config={config}", f"--workdir={workdir}"],
                          cwd=multi_device.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def _finish(process, timeout=300):
  _, err = process.communicate(timeout=timeout)
  assert process.returncode == 0, err.decode()[-3000:]


def _state(workdir, config):
  manager = Checkpointer(str(workdir), config)
  try:
    return manager.read_state()
  finally:
    manager.close()


def _losses(workdir):
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  steps = [line["step"] for line in lines if "train/loss" in line]
  assert len(steps) == len(set(steps)), "a step logged twice"
  return {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["scgm_g", "falcon", "maskcon"])
def test_killed_at_random_points_then_resumed_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path, method):
  path = tmp_path / "tiny.py"
  path.write_text(CONFIG)
  config_arg = f"{path}:{method}"
  started = time.perf_counter()
  _finish(_start(config_arg, tmp_path / "whole"))
  duration = time.perf_counter() - started  # start-up included: kills land anywhere from import to evaluation

  rng = np.random.default_rng(sum(map(ord, method)))  # fixed kill times per method
  killed = 0
  for delay in rng.uniform(0.15, 0.6, KILLS) * duration:  # restarts resume, so later kills come sooner
    process = _start(config_arg, tmp_path / "killed")
    time.sleep(delay)
    if process.poll() is None:
      process.send_signal(signal.SIGKILL)
      killed += 1
    process.communicate()
  assert killed >= 1
  _finish(_start(config_arg, tmp_path / "killed"))  # a last restart runs to the end

  config = load_config(config_arg)
  whole, resumed = _state(tmp_path / "whole", config), _state(tmp_path / "killed", config)
  jax.tree.map(np.testing.assert_array_equal, resumed, whole)
  results = [json.loads((tmp_path / run / "results.json").read_text())["metrics"] for run in ("whole", "killed")]
  assert results[0] == results[1]
  assert _losses(tmp_path / "killed") == _losses(tmp_path / "whole")

