"""The training loop end to end on tiny data: results, metrics, resumption, errors."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from coarse2fine.engine import interrupt, loop
from coarse2fine.engine.checkpointing import Checkpointer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_HANDLERS = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}  # at import


def _params_of(workdir, config):
  """The parameters stored in the newest checkpoint of `workdir`."""
  checkpointer = Checkpointer(workdir, config)
  params = checkpointer.read_state()["params"]
  checkpointer.close()
  return params


def test_results_json_and_metrics(tiny_config, tmp_path):
  results = loop.train_and_evaluate(tiny_config, str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["method"] == "coarse" and on_disk["dataset"] == "synthetic"
  assert on_disk["taxonomy"] == "synthetic_3x3"
  assert on_disk["metrics"] == pytest.approx(results["metrics"])
  # Well-separated planted coarse classes: a trained MLP must get them nearly all right.
  assert on_disk["metrics"]["test/coarse_top1"] > 90.0
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "train/loss" in l] == [4, 8, 12, 16]
  assert all(np.isfinite(l["train/loss"]) for l in lines if "train/loss" in l)
  assert os.listdir(tmp_path / "tensorboard")


def test_fine_method_reports_fine_and_coarse(tiny_config, tmp_path):
  tiny_config.method = "fine_plus"
  tiny_config.model.embedder = "mlp"
  tiny_config.model.embedding_dim = 16
  metrics = loop.train_and_evaluate(tiny_config, str(tmp_path))["metrics"]
  assert set(metrics) == {"test/coarse_top1", "test/fine_top1", "test/fine_top5"}
  assert metrics["test/fine_top1"] > 60.0  # 9 planted fine classes, chance is 11%
  assert metrics["test/coarse_top1"] >= metrics["test/fine_top1"]


def test_stopped_and_resumed_run_equals_uninterrupted_run(tiny_config, tmp_path):
  tiny_config.data.views = ("crop_flip",)  # randomness in augmentation must resume too
  tiny_config.data.synthetic.kind = "images"
  tiny_config.data.synthetic.image_shape = (6, 6, 1)
  tiny_config.checkpoint.every_steps = 3
  uninterrupted = str(tmp_path / "a")
  loop.train_and_evaluate(tiny_config, uninterrupted)

  resumed = str(tmp_path / "b")
  stopped = tiny_config.copy_and_resolve_references()
  stopped.train.stop_after_steps = 7  # not a multiple of every_steps: the stop forces a save
  assert loop.train_and_evaluate(stopped, resumed) is None
  assert not os.path.exists(os.path.join(resumed, "results.json"))
  loop.train_and_evaluate(tiny_config, resumed)

  a, b = _params_of(uninterrupted, tiny_config), _params_of(resumed, tiny_config)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
  lines = [json.loads(l) for l in open(os.path.join(resumed, "metrics.jsonl"))]
  assert max(l["step"] for l in lines) == 16


def test_workdir_of_another_config_is_refused(tiny_config, tmp_path):
  tiny_config.train.num_epochs = 1
  loop.train_and_evaluate(tiny_config, str(tmp_path))
  other = tiny_config.copy_and_resolve_references()
  other.optimizer.lr = 0.5
  with pytest.raises(ValueError, match=r"another config:\n  optimizer.lr: checkpoint has 0.05, config has 0.5"):
    loop.train_and_evaluate(other, str(tmp_path))


@pytest.mark.parametrize("field,value,message", [
    ("method", "scgm9", "Unknown method 'scgm9'"),
    ("model.encoder", "vit", "Unknown model.encoder 'vit'"),
    ("optimizer.schedule", "linear", "Unknown optimizer.schedule 'linear'"),
])
def test_unknown_names(tiny_config, tmp_path, field, value, message):
  group, _, key = field.rpartition(".")
  setattr(tiny_config[group] if group else tiny_config, key, value)
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(tiny_config, str(tmp_path))


def test_fine_method_needs_fine_labels(tiny_config, tmp_path):
  from coarse2fine.data.taxonomy import Taxonomy

  Taxonomy.from_groups("t", {"a": ["x"], "b": ["y"]}).save(str(tmp_path / "t.json"))
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "d.npz", x=rng.normal(size=(200, 4)), coarse=rng.integers(0, 2, 200))
  tiny_config.method = "fine"
  tiny_config.data.name = "arrays"
  tiny_config.data.path = str(tmp_path / "d.npz")
  tiny_config.data.taxonomy = str(tmp_path / "t.json")
  with pytest.raises(ValueError, match="trains on fine labels"):
    loop.train_and_evaluate(tiny_config, str(tmp_path / "wd"))


def _run_cli(*args, env=None):
  return subprocess.run([sys.executable, "-m", "coarse2fine.main", *args], cwd=REPO, capture_output=True,
                        text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_cli_rejects_unknown_config_key(tmp_path):
  done = _run_cli("--config=configs/coarse_fashion_mnist.py", f"--workdir={tmp_path}", "--config.train.bogus=1")
  assert done.returncode != 0
  assert "bogus" in done.stderr


MULTI_DEVICE_SCRIPT = r"""
import json, sys
import numpy as np, jax
from coarse2fine.engine import loop, runs
from coarse2fine.config_base import base_config
from coarse2fine.engine.checkpointing import Checkpointer

config = base_config()
config.method = "coarse_plus"
config.data.name = "synthetic"
config.data.synthetic.kind = "images"
config.data.synthetic.image_shape = (8, 8, 3)
config.data.synthetic.num_train = 256
config.data.synthetic.num_test = 64
config.data.views = ("weak",)
config.model.encoder = "convnet"
config.model.encoder_args.widths = (8, 16)
config.model.embedder = "mlp"
config.model.embedding_dim = 8
config.train.num_epochs = 1
config.train.batch_size = int(sys.argv[2])
config.eval.batch_size = 64
config.logging.progress = False
results = loop.train_and_evaluate(config, sys.argv[1])
manager = Checkpointer(sys.argv[1], config)
state = manager.read_state()
manager.close()
leaves = {jax.tree_util.keystr(p): np.asarray(v).tolist() for p, v in
          jax.tree_util.tree_flatten_with_path({"params": state["params"], "bn": state["batch_stats"]})[0]}
print("DEVICES", jax.device_count())
print("RESULT" + json.dumps({"metrics": results["metrics"], "leaves": leaves}))
"""


def _run_devices(tmp_path, devices, batch_size=32):
  env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
  done = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT, str(tmp_path / f"d{devices}"), str(batch_size)],
                        cwd=REPO, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
  return done


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  one, eight = _run_devices(tmp_path, 1), _run_devices(tmp_path, 8)
  assert one.returncode == 0, one.stderr[-3000:]
  assert eight.returncode == 0, eight.stderr[-3000:]
  assert "DEVICES 8" in eight.stdout and "DEVICES 1" in one.stdout
  a = json.loads(one.stdout.split("RESULT")[1])
  b = json.loads(eight.stdout.split("RESULT")[1])
  assert a["leaves"].keys() == b["leaves"].keys()
  for name in a["leaves"]:
    np.testing.assert_allclose(np.array(b["leaves"][name]), np.array(a["leaves"][name]), rtol=2e-4, atol=2e-5,
                               err_msg=name)
  assert a["metrics"] == pytest.approx(b["metrics"], abs=2.0)


def test_batch_not_divisible_by_devices(tmp_path):
  done = _run_devices(tmp_path, 8, batch_size=36)
  assert done.returncode != 0
  assert "train.batch_size=36 is not divisible by the 8 devices" in done.stderr


CLI_WITH_CHECKPOINT_FEATURES = r"""
import sys
import coarse2fine.main  # defines the command line's flags, as `python -m coarse2fine.main` does
import numpy as np
from coarse2fine.engine import loop, runs
from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
config = base_config()
config.method = "coarse"
config.data.name = "synthetic"
config.model.encoder = "mlp"
config.model.encoder_args.hidden_sizes = (8,)
config.train.batch_size = 64
config.logging.progress = False
loop.train_and_evaluate(config, sys.argv[1])
features = runs.features_from_checkpoint(sys.argv[1], load_dataset(config.data), 128)
print("RESULT", features.shape)
"""


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_checkpoint_features_work_under_the_command_line(tmp_path):
  """The library reads another run without importing a command-line module (no duplicate absl flags)."""
  done = subprocess.run([sys.executable, "-c", CLI_WITH_CHECKPOINT_FEATURES, str(tmp_path)], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "RESULT (2048, 8)" in done.stdout


def _tree_snapshot(root):
  """{relative path: (size, sha256)} of every file under root."""
  import hashlib
  snapshot = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        snapshot[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
  return snapshot


def test_refused_resume_changes_no_file(tiny_config, tmp_path):
  tiny_config.train.num_epochs = 1
  loop.train_and_evaluate(tiny_config, str(tmp_path))
  before = _tree_snapshot(tmp_path)
  other = tiny_config.copy_and_resolve_references()
  other.optimizer.lr = 0.5
  with pytest.raises(ValueError, match="another config"):
    loop.train_and_evaluate(other, str(tmp_path))
  assert _tree_snapshot(tmp_path) == before  # config.json still describes the checkpoints


def test_a_second_run_on_a_held_workdir_is_refused_at_once(tiny_config, tmp_path):
  from coarse2fine.engine.workdir_lock import WorkdirBusy, WorkdirLock

  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "holding"
    with pytest.raises(WorkdirBusy, match=rf"in use by another run \(host .*, pid {holder.pid}, since"):
      loop.train_and_evaluate(tiny_config, str(tmp_path))
    assert not os.path.exists(tmp_path / "config.json")
  finally:
    holder.kill()
    holder.wait()
  # The killed holder's lock went with it: the workdir is free again.
  with WorkdirLock(str(tmp_path)):
    pass


HOLD_LOCK = """
import sys, time
from coarse2fine.engine.workdir_lock import WorkdirLock
lock = WorkdirLock(sys.argv[1]).__enter__()
lock.record_holder()
print("holding", flush=True)
time.sleep(600)
"""


def test_metrics_after_a_resume_hold_each_step_once(tiny_config, tmp_path):
  stopped = tiny_config.copy_and_resolve_references()
  stopped.train.stop_after_steps = 10  # checkpoint at 8 (every 4) and at the stop; logs at 4 and 8
  stopped.train.log_every_steps = 3  # logs at 3, 6, 9: step 9 is past the checkpoint at 8 ...
  stopped.checkpoint.every_steps = 8
  workdir = str(tmp_path)
  loop.train_and_evaluate(stopped, workdir)
  # ... and a kill right after the log at 9 loses the checkpoint at 10: resume from 8.
  import shutil
  shutil.rmtree(os.path.join(workdir, "checkpoints", "10"))
  resumed = tiny_config.copy_and_resolve_references()
  resumed.train.log_every_steps = 3
  resumed.checkpoint.every_steps = 8
  loop.train_and_evaluate(resumed, workdir)
  steps = [json.loads(line)["step"] for line in open(os.path.join(workdir, "metrics.jsonl"))
           if "train/loss" in json.loads(line)]
  assert steps == [3, 6, 9, 12, 15, 16]


def test_nonfinite_values_stop_the_run_and_are_never_saved(tiny_config, tmp_path):
  tiny_config.optimizer.lr = 1e30  # diverges within a few steps
  tiny_config.checkpoint.every_steps = 1
  tiny_config.train.log_every_steps = 8  # the check also runs at every save, not only when logging
  with pytest.raises(FloatingPointError, match=r"Non-finite values from step (\d+) .*nothing after step (\d+) was "
                                               r"saved\. Lower optimizer\.lr") as raised:
    loop.train_and_evaluate(tiny_config, str(tmp_path))
  import re
  first, saved = map(int, re.search(r"from step (\d+) .*after step (\d+)", str(raised.value)).groups())
  assert saved == first - 1
  manager = Checkpointer(str(tmp_path), tiny_config)
  try:
    assert manager.latest_step() == saved
    for leaf in jax.tree.leaves(manager.read_state(saved)):
      assert np.isfinite(np.asarray(leaf, np.float64)).all()
  finally:
    manager.close()


def test_results_reach_the_terminal_when_results_json_cannot_be_written(tiny_config, tmp_path, monkeypatch, capsys):
  tiny_config.train.num_epochs = 1

  write = loop.write_json_atomically

  def full_disk_at_the_end(path, payload):
    if path.endswith("results.json"):
      raise OSError(28, "No space left on device", path)
    write(path, payload)

  monkeypatch.setattr(loop, "write_json_atomically", full_disk_at_the_end)
  with pytest.raises(OSError, match="No space left"):
    loop.train_and_evaluate(tiny_config, str(tmp_path))
  assert "| test/coarse_top1" in capsys.readouterr().out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_step_it_reached_and_stops(tiny_config, tmp_path, signum):
  """In process (the command-line twin, with the resume, is slow): the step that was reached is checkpointed."""
  tiny_config.train.num_epochs = 500  # 4000 steps: far more than the signal lets it run
  tiny_config.checkpoint.every_steps = 1000
  metrics = tmp_path / "metrics.jsonl"

  def signal_after_the_first_log():
    deadline = time.monotonic() + 120
    while not (metrics.exists() and '"step": 8,' in metrics.read_text()) and time.monotonic() < deadline:
      time.sleep(0.01)
    os.kill(os.getpid(), signum)

  sender = threading.Thread(target=signal_after_the_first_log, daemon=True)
  sender.start()
  with pytest.raises(interrupt.Interrupted) as stopped:
    loop.train_and_evaluate(tiny_config, str(tmp_path))
  sender.join()
  assert stopped.value.exit_code == 128 + signum
  assert 8 <= stopped.value.step < 4000
  checkpointer = Checkpointer(str(tmp_path), tiny_config)
  try:
    assert checkpointer.latest_step() == stopped.value.step  # not a multiple of every_steps: saved for the stop
  finally:
    checkpointer.close()
  assert not (tmp_path / "results.json").exists()
  assert signal.getsignal(signum) is not None and signal.getsignal(signum) == DEFAULT_HANDLERS[signum]
