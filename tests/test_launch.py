"""launch/: shellcheck, the exact commands of each --dry-run, and a real 2-process run on localhost."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from coarse2fine.engine import distributed
from tests import multi_device

LAUNCH = os.path.join(multi_device.REPO, "launch")
SCRIPTS = ("local_multiprocess.sh", "slurm_gpu.sbatch", "tpu_pod.sh")


def _launch(script, *args, env=None, timeout=60):
  return subprocess.run(["bash", os.path.join(LAUNCH, script), *args], capture_output=True, text=True,
                        cwd=multi_device.REPO, env={**os.environ, "PYTHON": "python", **(env or {})}, timeout=timeout)


def test_scripts_pass_shellcheck():
  shellcheck = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable), "shellcheck")
  done = subprocess.run([shellcheck, *[os.path.join(LAUNCH, s) for s in SCRIPTS]], capture_output=True, text=True)
  assert done.returncode == 0, done.stdout + done.stderr


def test_local_dry_run_prints_one_command_per_process():
  done = _launch("local_multiprocess.sh", "--config=configs/a b.py", "--workdir=/tmp/my dir", "--num_processes=3",
                 "--port=4000", "--dry-run", "--", "--config.train.num_epochs=1")
  assert done.returncode == 0, done.stderr
  lines = done.stdout.strip().splitlines()
  assert [shlex.split(line) for line in lines] == [
      ["python", "-m", "coarse2fine.main", "--config=configs/a b.py", "--workdir=/tmp/my dir",
       "--coordinator_address=localhost:4000", "--num_processes=3", f"--process_id={i}",
       "--config.train.num_epochs=1"] for i in range(3)]


def test_slurm_dry_run_prints_the_srun_command():
  done = _launch("slurm_gpu.sbatch", "--dry-run", "--config=configs/x.py", "--workdir=/shared/w", "--",
                 "--config.seed=3")
  assert done.returncode == 0, done.stderr
  assert shlex.split(done.stdout) == ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "python", "-m",
                                      "coarse2fine.main", "--config=configs/x.py", "--workdir=/shared/w",
                                      "--multihost", "--config.seed=3"]


def test_tpu_dry_run_creates_installs_and_runs_on_every_worker():
  done = _launch("tpu_pod.sh", "--tpu=pod1", "--zone=us-central2-b", "--config=configs/x.py",
                 "--workdir=gs://bucket/run", "--create", "--dry-run", "--", "--config.seed=3")
  assert done.returncode == 0, done.stderr
  commands = [shlex.split(line) for line in done.stdout.strip().splitlines()]
  assert commands[0][:5] == ["gcloud", "compute", "tpus", "tpu-vm", "create"] and "pod1" in commands[0]
  assert commands[1][:3] == ["git", "-C", multi_device.REPO] and "archive" in commands[1]
  assert "scp" in commands[2] and "--worker=all" in commands[2]
  assert "--worker=all" in commands[3] and "jax[tpu]" in commands[3][-1]
  assert "./coarse2fine[cloud]" in commands[3][-1]  # gcsfs, for the gs:// workdir
  run = commands[4]
  assert run[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and "--worker=all" in run
  remote = run[-1][len("--command="):]  # what each worker's shell runs
  assert shlex.split(remote) == ["cd", "coarse2fine", "&&", "python3", "-m", "coarse2fine.main",
                                 "--config=configs/x.py", "--workdir=gs://bucket/run", "--multihost",
                                 "--config.seed=3"]
  without_create = _launch("tpu_pod.sh", "--tpu=pod1", "--zone=z", "--config=c.py", "--workdir=gs://b/w", "--dry-run")
  assert "create" not in without_create.stdout.splitlines()[0]


@pytest.mark.parametrize("script,args,message", [
    ("local_multiprocess.sh", ["--workdir=w"], "--config and --workdir are required"),
    ("local_multiprocess.sh", ["--config=c", "--workdir=w", "--num_processes=0"], "positive integer"),
    ("slurm_gpu.sbatch", ["--config=c", "--workdir=w", "--bogus"], "unknown argument '--bogus'"),
    ("slurm_gpu.sbatch", ["--config=c", "--workdir=w"], "not inside a SLURM job"),
    ("tpu_pod.sh", ["--tpu=p", "--config=c", "--workdir=w"], "--zone is required"),
])
def test_bad_arguments_are_named(script, args, message):
  done = _launch(script, *args, env={"SLURM_JOB_ID": ""})
  assert done.returncode == 2
  assert message in done.stderr


TINY_CONFIG = r'''
from coarse2fine.config_base import base_config

def get_config(method="coarse"):
  config = base_config()
  config.method = method
  config.data.name = "synthetic"
  config.data.views = ("none", "none") if method in ("falcon", "maskcon") else ("none",)
  config.data.synthetic.num_train = 256
  config.data.synthetic.num_test = 64
  config.model.encoder = "mlp"
  config.model.encoder_args.hidden_sizes = (16,)
  config.train.num_epochs = 2
  config.train.batch_size = 32
  config.train.log_every_steps = 2
  config.eval.batch_size = 64
  config.eval.protocols = ("classification",)
  config.checkpoint.every_steps = 8
  config.logging.progress = False
  config.scgm.num_subclasses = 9
  config.scgm.estep_every_epochs = 1  # an E-step over both processes' data before each epoch
  config.falcon.solve_every = 4  # relation solves by process 0, broadcast to all
  config.maskcon.queue_size = 64  # filled across processes before the first step
  config.maskcon.embedding_dim = 8
  return config
'''


def _train_losses(workdir):
  """{step: train/loss} of a run's metrics.jsonl (a resumed run's later lines win)."""
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}


def _config_file(tmp_path):
  path = tmp_path / "tiny.py"
  path.write_text(TINY_CONFIG)
  return path


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


def _two_processes(config, workdir, *overrides):
  port = _free_port()
  done = _launch("local_multiprocess.sh", f"--config={config}", f"--workdir={workdir}", "--num_processes=2",
                 f"--port={port}", "--", *overrides, env={"PYTHON": sys.executable}, timeout=240)
  logs = "".join(open(os.path.join(workdir, f"process_{i}.log")).read() for i in range(2)
                 if os.path.exists(os.path.join(workdir, f"process_{i}.log")))
  assert done.returncode == 0, done.stderr + logs[-3000:]
  return logs


def _one_process(config, workdir, devices=2):
  done = multi_device.run(f"import sys; sys.argv = ['main', '--config={config}', '--workdir={workdir}']; "
                          "from absl import app; from coarse2fine.cli.train import main; app.run(main)",
                          devices=devices, timeout=240)
  assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["coarse", "scgm_g", "falcon", "maskcon"])
def test_two_local_processes_train_like_one_process_with_two_devices(tmp_path, method):
  """Same global batches, hooks computed once and shared: every logged loss agrees, step by step."""
  config = f"{_config_file(tmp_path)}:{method}"
  logs = _two_processes(config, tmp_path / "two")
  assert "connected to 1 peer ranks" in logs  # both processes joined one gloo group
  _one_process(config, tmp_path / "one")
  two_losses, one_losses = _train_losses(tmp_path / "two"), _train_losses(tmp_path / "one")
  assert two_losses.keys() == one_losses.keys() and len(two_losses) == 8
  np.testing.assert_allclose([two_losses[k] for k in sorted(two_losses)], [one_losses[k] for k in sorted(one_losses)],
                             rtol=1e-4)
  two_metrics = json.loads((tmp_path / "two" / "results.json").read_text())["metrics"]
  one_metrics = json.loads((tmp_path / "one" / "results.json").read_text())["metrics"]
  assert two_metrics.keys() == one_metrics.keys()
  for name in two_metrics:
    assert two_metrics[name] == pytest.approx(one_metrics[name], rel=1e-4, abs=1e-4), name


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_in_two_processes_or_one(tmp_path):
  """Preempted after step 8 (after one E-step), restarted on 2 processes, or on 1 process with 1 device:
  the same losses and results as an uninterrupted 2-process run."""
  config = f"{_config_file(tmp_path)}:scgm_g"
  _two_processes(config, tmp_path / "whole")
  _two_processes(config, tmp_path / "resumed", "--config.train.stop_after_steps=8")
  assert max(_train_losses(tmp_path / "resumed")) == 8
  shutil.copytree(tmp_path / "resumed", tmp_path / "resumed_alone")
  _two_processes(config, tmp_path / "resumed")
  _one_process(config, tmp_path / "resumed_alone", devices=1)
  whole = _train_losses(tmp_path / "whole")
  whole_metrics = json.loads((tmp_path / "whole" / "results.json").read_text())["metrics"]
  for name in ("resumed", "resumed_alone"):
    resumed = _train_losses(tmp_path / name)
    assert whole.keys() == resumed.keys(), name
    np.testing.assert_allclose([resumed[k] for k in sorted(resumed)], [whole[k] for k in sorted(whole)], rtol=1e-4,
                               err_msg=name)
    metrics = json.loads((tmp_path / name / "results.json").read_text())["metrics"]
    for metric in whole_metrics:
      assert metrics[metric] == pytest.approx(whole_metrics[metric], rel=1e-4, abs=1e-4), (name, metric)


def _process_commands(config, workdir, port, *overrides):
  """The two `python -m coarse2fine.main` commands that launch/local_multiprocess.sh runs."""
  return [[sys.executable, "-m", "coarse2fine.main", f"--config={config}", f"--workdir={workdir}",
           f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}", *overrides]
          for i in range(2)]


@pytest.mark.slow
def test_a_signal_to_one_process_stops_both_at_the_same_step_and_the_run_resumes(tmp_path):
  """SIGTERM to process 1 only (as a scheduler may deliver it): both processes save the same step's
  checkpoint and exit 143; restarted, the run ends with the losses and results of an uninterrupted one."""
  config = f"{_config_file(tmp_path)}:coarse"
  longer = ("--config.train.num_epochs=300", "--config.checkpoint.every_steps=100000")  # 2,400 steps
  _two_processes(config, tmp_path / "whole", *longer)
  workdir = tmp_path / "stopped"
  logs = [open(tmp_path / f"process_{i}.log", "w") for i in range(2)]
  env = dict(os.environ)  # as launch/local_multiprocess.sh runs them (the whole run's environment)
  processes = [subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=multi_device.REPO, env=env)
               for command, log in zip(_process_commands(config, workdir, _free_port(), *longer), logs)]
  try:
    deadline = time.monotonic() + 180
    while not (workdir / "metrics.jsonl").exists() or len(_train_losses(workdir)) < 20:  # 40 steps trained
      assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "training did not start"
      time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=120) for p in processes]
  finally:
    for p in processes:
      p.kill() if p.poll() is None else None
    for log in logs:
      log.close()
  outputs = [(tmp_path / f"process_{i}.log").read_text() for i in range(2)]
  assert codes == [143, 143], outputs
  steps = [int(re.search(r"stopped at step (\d+), checkpoint saved", out).group(1)) for out in outputs]
  assert steps[0] == steps[1] < 2400, outputs
  assert steps[0] % 2 == 0  # log_every_steps: the processes compare their flags there
  assert (workdir / "checkpoints" / str(steps[0])).is_dir()
  _two_processes(config, workdir, *longer)
  whole, resumed = _train_losses(tmp_path / "whole"), _train_losses(workdir)
  assert whole.keys() == resumed.keys()
  np.testing.assert_allclose([resumed[k] for k in sorted(resumed)], [whole[k] for k in sorted(whole)], rtol=1e-4)
  whole_metrics = json.loads((tmp_path / "whole" / "results.json").read_text())["metrics"]
  metrics = json.loads((workdir / "results.json").read_text())["metrics"]
  assert metrics == pytest.approx(whole_metrics, rel=1e-4, abs=1e-4)


def test_explicit_settings_come_from_flags_or_environment():
  env = {"C2F_COORDINATOR_ADDRESS": "10.0.0.1:1234", "C2F_NUM_PROCESSES": "4", "C2F_PROCESS_ID": "2"}
  assert distributed.initialize_arguments(environ=env) == {"coordinator_address": "10.0.0.1:1234",
                                                           "num_processes": 4, "process_id": 2}
  assert distributed.initialize_arguments(process_id=3, environ=env)["process_id"] == 3  # a flag wins
  assert distributed.initialize_arguments(environ={}) is None
  assert distributed.initialize_arguments(multihost=True, environ={}) == {}


@pytest.mark.parametrize("kwargs,message", [
    ({"coordinator_address": "h:1"}, "also needs --num_processes"),
    ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, r"process_id must lie in \[0, num_processes\)"),
    ({"coordinator_address": "nohost", "num_processes": 2, "process_id": 0}, "host:port"),
])
def test_incomplete_or_bad_explicit_settings_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    distributed.initialize_arguments(environ={}, **kwargs)
