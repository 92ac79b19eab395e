"""The command lines' terminal: one-line user errors, finished runs left alone, SIGTERM saves and resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from coarse2fine.config_base import load_config
from coarse2fine.engine import loop
from coarse2fine.engine.checkpointing import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# as this process (tests/conftest.py): the same compiles give the same floats, and compile faster
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}

TINY_CONFIG = """
import sys
sys.path.insert(0, {repo!r})
from tests.conftest import make_tiny_config


def get_config():
  config = make_tiny_config()
  config.train.num_epochs = {epochs}
  config.checkpoint.every_steps = 10_000  # only the final (or interrupted) step is saved
  return config
"""


def _config_file(tmp_path, epochs=2, name="tiny.py"):
  path = tmp_path / name
  path.write_text(TINY_CONFIG.format(repo=REPO, epochs=epochs))
  return str(path)


def _command(module, *args):
  return [sys.executable, "-m", f"coarse2fine.{module}", *args]


MISTAKES = {
    "config file": (["main", "--config=configs/no_such_config.py", "--workdir={w}"],
                    "--config=configs/no_such_config.py: no such config file"),
    "config field": (["main", "--config=configs/coarse_fashion_mnist.py", "--workdir={w}",
                      "--config.train.num_epoch=1"],
                     "--config.train.num_epoch: the config has no field 'num_epoch'; did you mean "
                     "--config.train.num_epochs?"),
    "method": (["main", "--config=configs/coarse_fashion_mnist.py", "--workdir={w}", "--config.method=scgm"],
               "Unknown method 'scgm'; choose one of ["),
    "dataset": (["main", "--config=configs/coarse_fashion_mnist.py", "--workdir={w}", "--config.data.name=fmnist"],
                "Unknown data.name 'fmnist'; choose one of ["),
    "value": (["main", "--config=configs/coarse_fashion_mnist.py", "--workdir={w}", "--config.eval.split=train"],
              "eval.split='train': use 'test', or 'val'"),
    "flag value": (["main", "--config=configs/coarse_fashion_mnist.py", "--workdir={w}",
                    "--config.train.num_epochs=ten"], "flag --config.train.num_epochs=ten: invalid literal"),
    "data file": (["main", "--config=configs/coarse_fashion_mnist.py", "--workdir={w}", "--config.data.name=arrays",
                   "--config.model.encoder=mlp", "--config.data.path={w}/missing.npz"], "missing.npz"),
    "evaluate workdir": (["evaluate", "--workdir={w}/nothing"], "config.json not found"),
    "plot workdir": (["plot", "--workdir={w}/nothing"], "config.json not found"),
    "embed inputs": (["embed", "--workdir={w}", "--inputs={w}/missing.npy", "--out={w}/z.npy"],
                     "--inputs="),
    "embed flags": (["embed", "--inputs={w}/x.npy", "--out={w}/z.npy"], "Give either --workdir=DIR"),
}


# One of each kind in the default suite; the rest (a subprocess each, ~5 s of imports) in CI's slow step.
QUICK_MISTAKES = ("config field", "method", "evaluate workdir", "embed flags")


@pytest.mark.parametrize("name", [n if n in QUICK_MISTAKES else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(MISTAKES)])
def test_a_mistake_ends_in_one_line_without_traceback(name, tmp_path):
  args, expected = MISTAKES[name]
  module, *flags = [a.format(w=tmp_path) for a in args]
  done = subprocess.run(_command(module, *flags), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 2, done.stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr[-2000:]
  assert not os.path.exists(tmp_path / "config.json")  # refused before any run file


def test_verbose_shows_the_traceback(tmp_path):
  done = subprocess.run(_command("main", "--config=configs/coarse_fashion_mnist.py", f"--workdir={tmp_path}",
                                 "--config.method=scgm", "--verbose"), cwd=REPO, env=ENV, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode != 0
  assert "Traceback (most recent call last)" in done.stderr and "Unknown method 'scgm'" in done.stderr


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_a_finished_run_is_not_evaluated_again(tmp_path):
  config_file = _config_file(tmp_path)
  workdir = tmp_path / "run"
  loop.train_and_evaluate(load_config(config_file), str(workdir))  # as the command would, in this process
  before = {name: (workdir / name).read_bytes() for name in ("metrics.jsonl", "results.json")}
  done = subprocess.run(_command("main", f"--config={config_file}", f"--workdir={workdir}"), cwd=REPO, env=ENV,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.strip().splitlines() == [
      f"{workdir}: finished at step 16 with this config (results.json); nothing to do. --reevaluate evaluates it "
      f"again, python -m coarse2fine.evaluate --workdir={workdir} writes eval.json."]
  assert {name: (workdir / name).read_bytes() for name in before} == before

  # another evaluation setting is another run's question: it is evaluated again
  done = subprocess.run(_command("main", f"--config={config_file}", f"--workdir={workdir}",
                                 "--config.eval.batch_size=64"), cwd=REPO, env=ENV, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "finished at step" not in done.stdout and "| test/coarse_top1" in done.stdout


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_reevaluate_evaluates_a_finished_run_again(tmp_path):
  config_file = _config_file(tmp_path)
  workdir = tmp_path / "run"
  loop.train_and_evaluate(load_config(config_file), str(workdir))
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  done = subprocess.run(_command("main", f"--config={config_file}", f"--workdir={workdir}", "--reevaluate"),
                        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "| test/coarse_top1" in done.stdout
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) > len(lines)


def _params(workdir, config):
  checkpointer = Checkpointer(str(workdir), config)
  try:
    return checkpointer.latest_step(), checkpointer.read_state()["params"]
  finally:
    checkpointer.close()


@pytest.mark.slow  # three runs of the command (76 s); SIGINT's twin stays in the default suite
def test_sigterm_saves_the_step_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
  config_file = _config_file(tmp_path, epochs=250)  # 2000 steps of 8 per epoch
  config = load_config(config_file)
  interrupted = tmp_path / "interrupted"
  process = subprocess.Popen(_command("main", f"--config={config_file}", f"--workdir={interrupted}"), cwd=REPO,
                             env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  metrics = interrupted / "metrics.jsonl"
  deadline = time.monotonic() + 300
  while not (metrics.exists() and '"step": 8,' in metrics.read_text()) and process.poll() is None:
    assert time.monotonic() < deadline
    time.sleep(0.02)
  process.send_signal(signal.SIGTERM)
  out, err = process.communicate(timeout=300)
  assert process.returncode == 143, err[-3000:]
  last = err.strip().splitlines()[-1]
  step = int(last.split()[3].rstrip(","))
  assert last == f"stopped at step {step}, checkpoint saved; re-run the same command to resume"
  assert "Traceback" not in err
  assert 8 <= step < 2000 and not (interrupted / "results.json").exists()
  assert _params(interrupted, config)[0] == step

  resumed = subprocess.run(_command("main", f"--config={config_file}", f"--workdir={interrupted}"), cwd=REPO,
                           env=ENV, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"(resuming from step {step})" in resumed.stdout

  uninterrupted = tmp_path / "uninterrupted"
  loop.train_and_evaluate(config, str(uninterrupted))
  (step_a, a), (step_b, b) = _params(interrupted, config), _params(uninterrupted, config)
  assert step_a == step_b == 2000
  flat_a, flat_b = _flatten(a), _flatten(b)
  assert flat_a.keys() == flat_b.keys()
  for name in flat_a:
    np.testing.assert_array_equal(flat_a[name], flat_b[name], err_msg=name)
  logged = [line["step"] for line in map(json.loads, metrics.read_text().splitlines()) if "train/loss" in line]
  assert logged == list(range(4, 2001, 4))  # each log step once across the two sessions


def _flatten(tree, prefix=""):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}/"))
    else:
      out[f"{prefix}{key}"] = np.asarray(value)
  return out


def test_only_the_librarys_own_raises_become_one_line():
  """A ValueError the library raises with its message is a user's line; one from numpy (a bug) keeps its traceback."""
  from coarse2fine.cli import common
  from coarse2fine.engine import distributed

  with pytest.raises(ValueError) as raised:
    distributed.initialize_arguments("host:1", None, None)
  assert common.user_error_line(raised.value).startswith("A multi-process run given --coordinator_address")
  with pytest.raises(ValueError) as raised:
    np.zeros(3).reshape(2)
  assert common.user_error_line(raised.value) is None
  with pytest.raises(FileNotFoundError) as raised:
    open("/no/such/file")
  assert "/no/such/file" in common.user_error_line(raised.value)  # a path is the user's, wherever it is opened
