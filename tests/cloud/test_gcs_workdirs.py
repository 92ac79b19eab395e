"""gs:// workdirs end to end against the Cloud Storage emulator (tests/cloud/conftest.py).

Every check compares with an independent reference: a local run of the same config, or the
objects read back with a separate gcsfs client.
"""

import json
import os
import time

import numpy as np
import pytest

from coarse2fine import storage
from coarse2fine.data import load_dataset
from coarse2fine.engine import loop, runs
from coarse2fine.engine.workdir_lock import HOLDER_FILE, ObjectLease, WorkdirBusy, WorkdirLock
from tests.cloud.conftest import gcs_fs
from tests.conftest import make_tiny_config


def _lines(text):
  return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
  """The uninterrupted local run that the gs:// runs must reproduce."""
  workdir = tmp_path_factory.mktemp("local_run")
  results = loop.train_and_evaluate(make_tiny_config(), str(workdir))
  return workdir, results


def test_a_gs_workdir_stops_resumes_and_matches_the_local_run(gcs_dir, local_run):
  local_dir, local_results = local_run
  config = make_tiny_config()
  config.train.stop_after_steps = 8
  assert loop.train_and_evaluate(config, gcs_dir) is None  # stopped after step 8, checkpointed there
  fs = gcs_fs()
  names = {os.path.basename(p) for p in fs.ls(gcs_dir)}
  assert {"config.json", "metrics.jsonl", "checkpoints", "tensorboard"} <= names
  assert HOLDER_FILE not in names  # the lock object is removed when the run ends
  assert max(line["step"] for line in _lines(fs.cat(f"{gcs_dir}/metrics.jsonl").decode())) == 8
  assert fs.ls(f"{gcs_dir}/tensorboard")  # events uploaded through google-cloud-storage

  config.train.stop_after_steps = 0
  results = loop.train_and_evaluate(config, gcs_dir)  # resumes from step 8
  stored = json.loads(fs.cat(f"{gcs_dir}/results.json"))
  assert stored["metrics"] == pytest.approx(local_results["metrics"], rel=1e-5, abs=1e-6)
  assert results["metrics"] == stored["metrics"]
  local_lines = _lines((local_dir / "metrics.jsonl").read_text())
  gs_lines = _lines(fs.cat(f"{gcs_dir}/metrics.jsonl").decode())
  assert [line["step"] for line in gs_lines] == [line["step"] for line in local_lines]
  for ours, theirs in zip(gs_lines, local_lines):
    assert ours.keys() == theirs.keys()
    for name in ours:
      if name != "train/epoch":
        assert ours[name] == pytest.approx(theirs[name], rel=1e-5, abs=1e-6), (ours["step"], name)
  assert json.loads(fs.cat(f"{gcs_dir}/config.json")) == json.loads((local_dir / "config.json").read_text())


def test_a_second_run_on_a_held_gs_workdir_is_refused_naming_the_holder(gcs_dir):
  with WorkdirLock(gcs_dir):
    note = json.loads(gcs_fs().cat(f"{gcs_dir}/{HOLDER_FILE}"))
    assert note["pid"] == os.getpid() and note["lease_seconds"] > 0
    with pytest.raises(WorkdirBusy, match=f"in use by another run .*pid {os.getpid()}"):
      loop.train_and_evaluate(make_tiny_config(), gcs_dir)
  assert not gcs_fs().exists(f"{gcs_dir}/{HOLDER_FILE}")  # released


def test_the_lock_object_is_created_once_and_a_dead_holders_lease_expires(gcs_dir):
  path = f"{gcs_dir}/{HOLDER_FILE}"
  first, second = ObjectLease(path, lease=60), ObjectLease(path, lease=60)
  assert first._create() and not second._create()  # ifGenerationMatch=0: one create wins
  # A holder killed 5 minutes ago: its note stays, its heartbeat stops.
  stale = {"host": "elsewhere", "pid": 4242, "since": time.time() - 400, "heartbeat": time.time() - 300,
           "lease_seconds": 60, "token": "dead"}
  gcs_fs().pipe(path, json.dumps(stale).encode())
  third = ObjectLease(path, lease=60)
  third.acquire(gcs_dir)  # expired: taken over
  try:
    assert json.loads(gcs_fs().cat(path))["token"] == third.token
    with pytest.raises(WorkdirBusy, match="pid"):
      ObjectLease(path, lease=60).acquire(gcs_dir)
  finally:
    third.release()
  assert not gcs_fs().exists(path)


def test_an_unwritable_workdir_fails_before_any_computation(tmp_path, gcs_emulator):
  with pytest.raises(PermissionError, match=r"Cannot write to --workdir=gs://no-such-bucket-c2f/run .*gcloud"):
    loop.train_and_evaluate(make_tiny_config(), "gs://no-such-bucket-c2f/run")
  if os.geteuid() != 0:  # root writes anywhere
    locked = tmp_path / "read_only"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(PermissionError, match=f"Cannot write to --workdir={locked}"):
      loop.train_and_evaluate(make_tiny_config(), str(locked))


def test_files_on_gs(gcs_dir):
  """The storage layer's operations on objects, read back through a separate client."""
  fs = gcs_fs()
  storage.write_text_atomically(storage.join(gcs_dir, "a", "x.txt"), "hello")
  assert fs.cat(f"{gcs_dir}/a/x.txt") == b"hello"
  assert storage.isfile(f"{gcs_dir}/a/x.txt") and storage.isdir(f"{gcs_dir}/a") and not storage.exists(f"{gcs_dir}/b")
  storage.move(f"{gcs_dir}/a", f"{gcs_dir}/b")
  assert not fs.exists(f"{gcs_dir}/a/x.txt") and fs.cat(f"{gcs_dir}/b/x.txt") == b"hello"
  assert storage.listdir(gcs_dir) == ["b"] and storage.list_files(f"{gcs_dir}/b") == ["x.txt"]
  log = storage.LineLog(f"{gcs_dir}/log.jsonl", min_interval=3600)
  log.write("1\n")  # the first line is put at once
  log.write("2\n")  # within min_interval: kept in memory
  assert fs.cat(f"{gcs_dir}/log.jsonl") == b"1\n"
  log.close()
  assert fs.cat(f"{gcs_dir}/log.jsonl") == b"1\n2\n"
  storage.rmtree(f"{gcs_dir}/b")
  assert not fs.exists(f"{gcs_dir}/b/x.txt")


def test_features_of_a_gs_run_equal_those_of_the_local_run(gcs_dir, local_run):
  """`checkpoint:<workdir>` neighbours read another run's features: from gs:// as from the local copy."""
  local_dir, _ = local_run
  storage.copytree(str(local_dir), gcs_dir)  # the local run, uploaded
  config = make_tiny_config()
  data = load_dataset(config.data)
  np.testing.assert_array_equal(runs.features_from_checkpoint(gcs_dir, data, 128),
                                runs.features_from_checkpoint(str(local_dir), data, 128))
  assert runs.load_run_config(gcs_dir).to_dict() == json.loads((local_dir / "config.json").read_text())


def test_the_api_fits_saves_and_loads_gs_workdirs(gcs_dir, tmp_path):
  import coarse2fine as c2f
  from tests.test_api import COARSE, TINY, X

  model = c2f.fit(X, COARSE, method="coarse", workdir=f"{gcs_dir}/fit", config_overrides={**TINY, "train.num_epochs": 1})
  assert gcs_fs().exists(f"{gcs_dir}/fit/api_meta.json")
  loaded = c2f.load(f"{gcs_dir}/fit")
  np.testing.assert_array_equal(loaded.embed(X), model.embed(X))
  saved = c2f.load(model.save(f"{gcs_dir}/copy"))  # gs:// to gs://
  np.testing.assert_array_equal(saved.embed(X), model.embed(X))
  here = c2f.load(model.save(str(tmp_path / "local_copy")))  # gs:// to a local folder
  np.testing.assert_array_equal(here.embed(X), model.embed(X))


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_a_damaged_gs_checkpoint_is_set_aside_and_the_run_resumes_exactly(gcs_dir, local_run, tmp_path, caplog):
  """The newest step's OCDBT manifest is gone: the step is moved to checkpoints_unusable/ (copied, then deleted)."""
  import logging as std_logging

  from tests.engine.test_checkpointing import _delete_manifest

  _, local_results = local_run
  config = make_tiny_config()
  config.train.stop_after_steps = 12
  stopped = tmp_path / "stopped"
  loop.train_and_evaluate(config, str(stopped))
  _delete_manifest(str(stopped / "checkpoints" / "12"))
  storage.copytree(str(stopped), gcs_dir)
  config.train.stop_after_steps = 0
  with caplog.at_level(std_logging.WARNING):
    results = loop.train_and_evaluate(config, gcs_dir)
  assert [r.getMessage() for r in caplog.records if "unusable" in r.getMessage() and "step 12" in r.getMessage()]
  fs = gcs_fs()
  prefix = f"{gcs_dir[len('gs://'):]}/checkpoints_unusable/12/"
  moved = {p[len(prefix):] for p in fs.find(f"{gcs_dir}/checkpoints_unusable/12")}
  uploaded = {os.path.relpath(os.path.join(d, f), stopped / "checkpoints" / "12")
              for d, _, names in os.walk(stopped / "checkpoints" / "12") for f in names}
  assert moved == uploaded  # every object of the damaged step, set aside
  assert results["metrics"] == pytest.approx(local_results["metrics"], rel=1e-5, abs=1e-6)
