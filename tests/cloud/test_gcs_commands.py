"""The command lines on a gs:// workdir (emulator): train, a killed run's lock expiring, resume, evaluate, plot;
and two processes sharing one gs:// workdir. Each command is a fresh process (a slow test)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import multi_device
from tests.cloud.conftest import gcs_fs
from tests.test_launch import _config_file, _free_port, _launch, _one_process, _train_losses

PNG = b"\x89PNG\r\n\x1a\n"


def _command(module, *args, env=None, timeout=240):
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=multi_device.REPO,
                        env={**os.environ, **(env or {})}, timeout=timeout)


def _losses(text):
  lines = [json.loads(line) for line in text.splitlines() if line.strip()]
  return {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}


@pytest.mark.slow
def test_train_kill_resume_evaluate_and_plot_a_gs_workdir_like_a_local_one(tmp_path, gcs_dir):
  config = f"{_config_file(tmp_path)}:scgm_g"
  local = tmp_path / "local"
  for module in ("coarse2fine.main", "coarse2fine.evaluate"):
    done = _command(module, f"--config={config}" if module == "coarse2fine.main" else "--verbosity=0",
                    f"--workdir={local}")
    assert done.returncode == 0, done.stderr[-3000:]
  fs = gcs_fs()

  # Stopped after step 8 (after the first checkpoint), then killed mid-run holding a 30 s lease (long enough
  # for the next command to start and be refused on a loaded machine).
  done = _command("coarse2fine.main", f"--config={config}", f"--workdir={gcs_dir}", "--config.train.stop_after_steps=8")
  assert done.returncode == 0, done.stderr[-3000:]
  assert max(_losses(fs.cat(f"{gcs_dir}/metrics.jsonl").decode())) == 8
  killed = subprocess.Popen([sys.executable, "-m", "coarse2fine.main", f"--config={config}", f"--workdir={gcs_dir}"],
                            cwd=multi_device.REPO, env={**os.environ, "C2F_LOCK_LEASE_SECONDS": "30"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while not fs.exists(f"{gcs_dir}/run.lock.json") and killed.poll() is None and time.time() < deadline:
    time.sleep(0.1)
    fs.invalidate_cache()
  assert killed.poll() is None, "the run ended before it could be killed"
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  refused = _command("coarse2fine.main", f"--config={config}", f"--workdir={gcs_dir}")
  assert refused.returncode != 0 and f"pid {killed.pid}" in refused.stderr and "in use by another run" in refused.stderr
  note = json.loads(fs.cat(f"{gcs_dir}/run.lock.json"))
  assert note["pid"] == killed.pid and note["lease_seconds"] == 30
  time.sleep(max(0.0, note["heartbeat"] + 31 - time.time()))  # the killed run's lease expires
  done = _command("coarse2fine.main", f"--config={config}", f"--workdir={gcs_dir}")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Taking over" in done.stderr
  assert not fs.exists(f"{gcs_dir}/run.lock.json")

  local_losses = _train_losses(local)
  gs_losses = _losses(fs.cat(f"{gcs_dir}/metrics.jsonl").decode())
  assert gs_losses.keys() == local_losses.keys()
  np.testing.assert_allclose([gs_losses[k] for k in sorted(gs_losses)], [local_losses[k] for k in sorted(local_losses)],
                             rtol=1e-5)
  local_results = json.loads((local / "results.json").read_text())["metrics"]
  assert json.loads(fs.cat(f"{gcs_dir}/results.json"))["metrics"] == pytest.approx(local_results, rel=1e-5, abs=1e-6)

  done = _command("coarse2fine.evaluate", f"--workdir={gcs_dir}")
  assert done.returncode == 0, done.stderr[-3000:]
  local_eval = json.loads((local / "eval.json").read_text())
  gs_eval = json.loads(fs.cat(f"{gcs_dir}/eval.json"))
  assert gs_eval["step"] == local_eval["step"] == 16
  assert gs_eval["metrics"] == pytest.approx(local_eval["metrics"], rel=1e-5, abs=1e-6)
  assert fs.cat(f"{gcs_dir}/eval.md").decode().splitlines()[2:] == (local / "eval.md").read_text().splitlines()[2:]

  done = _command("coarse2fine.plot", f"--workdir={gcs_dir}", "--max_points=64")
  assert done.returncode == 0, done.stderr[-3000:]
  written = done.stdout.split()
  assert f"{gcs_dir}/plots/curves.png" in written and f"{gcs_dir}/plots/embedding_tsne.png" in written
  for path in written:
    assert fs.cat(path)[:8] == PNG, path


@pytest.mark.slow
def test_two_processes_share_a_gs_workdir(tmp_path, gcs_dir):
  """Two processes on one gs:// workdir train like one process with two devices on a local one."""
  config = f"{_config_file(tmp_path)}:coarse"
  logs = tmp_path / "logs"
  done = _launch("local_multiprocess.sh", f"--config={config}", f"--workdir={gcs_dir}", "--num_processes=2",
                 f"--port={_free_port()}", f"--log_dir={logs}", env={"PYTHON": sys.executable}, timeout=300)
  text = "".join((logs / f"process_{i}.log").read_text() for i in range(2) if (logs / f"process_{i}.log").exists())
  assert done.returncode == 0, done.stderr + text[-3000:]
  _one_process(config, tmp_path / "one")
  fs = gcs_fs()
  two, one = _losses(fs.cat(f"{gcs_dir}/metrics.jsonl").decode()), _train_losses(tmp_path / "one")
  assert two.keys() == one.keys() and len(two) == 8
  np.testing.assert_allclose([two[k] for k in sorted(two)], [one[k] for k in sorted(one)], rtol=1e-4)
  two_metrics = json.loads(fs.cat(f"{gcs_dir}/results.json"))["metrics"]
  one_metrics = json.loads((tmp_path / "one" / "results.json").read_text())["metrics"]
  assert two_metrics == pytest.approx(one_metrics, rel=1e-4, abs=1e-4)
  assert not fs.exists(f"{gcs_dir}/run.lock.json")
