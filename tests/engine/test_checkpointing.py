"""Damaged checkpoints: each kind of damage in the newest step is reported, set aside, and the run
resumes from the older intact step to exactly the parameters of an uninterrupted run."""

import json
import logging as std_logging
import os
import shutil

import jax
import numpy as np
import pytest

from coarse2fine.engine import loop
from coarse2fine.engine.checkpointing import Checkpointer, UnusableCheckpoint
from tests.conftest import make_tiny_config


def _config(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.checkpoint.every_steps = 4
  config.checkpoint.keep = 2
  config.eval.protocols = ("classification",)
  return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """An uninterrupted run (16 steps) and one stopped at step 12 (checkpoints 8 and 12), made once."""
  config = _config(make_tiny_config())
  root = tmp_path_factory.mktemp("runs")
  loop.train_and_evaluate(config, str(root / "whole"))
  stopped = config.copy_and_resolve_references()
  stopped.train.stop_after_steps = 12
  loop.train_and_evaluate(stopped, str(root / "stopped"))
  assert sorted(int(d) for d in os.listdir(root / "stopped" / "checkpoints")) == [8, 12]
  return config, root


def _params(workdir, config):
  manager = Checkpointer(workdir, config)
  try:
    return manager.read_state()["params"]
  finally:
    manager.close()


def _largest_data_file(step_dir):
  files = [os.path.join(d, f) for d, _, names in os.walk(os.path.join(step_dir, "state")) for f in names
           if os.sep + "d" + os.sep in os.path.join(d, f)]
  return max(files, key=os.path.getsize)


def _flip_bytes(step_dir):
  """64 bytes inverted at a tenth of the largest array data file: same size, and TensorStore reads it."""
  path = _largest_data_file(step_dir)
  start = os.path.getsize(path) // 10
  with open(path, "r+b") as f:
    f.seek(start)
    original = f.read(64)
    f.seek(start)
    f.write(bytes(b ^ 0xFF for b in original))


def _truncate(step_dir):
  path = _largest_data_file(step_dir)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _delete(step_dir):
  os.remove(_largest_data_file(step_dir))


def _empty(step_dir):
  shutil.rmtree(step_dir)
  os.makedirs(step_dir)


def _break_meta(step_dir):
  meta = [os.path.join(d, f) for d, _, names in os.walk(os.path.join(step_dir, "meta")) for f in names]
  for path in meta:
    with open(path, "w") as f:
      f.write('{"config": ')


def _delete_manifest(step_dir):
  """The state's OCDBT manifest: without it no array can be found."""
  os.remove(os.path.join(step_dir, "state", "manifest.ocdbt"))


DAMAGE = {"byte_flip": _flip_bytes, "truncated": _truncate, "deleted": _delete, "empty": _empty, "meta": _break_meta,
          "manifest": _delete_manifest}


def test_orbax_alone_restores_flipped_bytes_as_wrong_values(runs, tmp_path):
  """Why the digests exist: the same damage, restored by orbax without them, raises nothing."""
  import orbax.checkpoint as ocp

  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "stopped", workdir)
  _flip_bytes(str(workdir / "checkpoints" / "12"))
  manager = ocp.CheckpointManager(str(workdir / "checkpoints"))
  damaged = manager.restore(12, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  manager.close()
  intact = _read(str(root / "stopped"), config, 12)
  changed = sum(int(np.sum(np.asarray(a) != np.asarray(b))) for a, b in zip(jax.tree.leaves(damaged),
                                                                               jax.tree.leaves(intact)))
  assert changed > 0


def _read(workdir, config, step):
  manager = Checkpointer(workdir, config)
  try:
    return manager.read_state(step)
  finally:
    manager.close()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_and_resumes_exactly(runs, tmp_path, caplog, damage):
  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "stopped", workdir)
  DAMAGE[damage](str(workdir / "checkpoints" / "12"))
  with caplog.at_level(std_logging.WARNING):
    results = loop.train_and_evaluate(config, str(workdir))
  warnings = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
  assert len(warnings) == 1 and "step 12" in warnings[0], warnings
  assert os.path.isdir(workdir / "checkpoints_unusable" / "12")
  with open(root / "whole" / "results.json") as f:
    assert results["metrics"] == json.load(f)["metrics"]
  jax.tree.map(np.testing.assert_array_equal, _params(str(workdir), config), _params(str(root / "whole"), config))


def test_no_intact_checkpoint_is_an_error_naming_each_step(runs, tmp_path):
  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "stopped", workdir)
  _flip_bytes(str(workdir / "checkpoints" / "12"))
  _empty(str(workdir / "checkpoints" / "8"))
  with pytest.raises(UnusableCheckpoint, match=r"No intact checkpoint.*\n  step 12: .*digest.*\n  step 8: "):
    loop.train_and_evaluate(config, str(workdir))


def test_evaluation_reads_the_newest_intact_checkpoint_and_moves_nothing(runs, tmp_path):
  from coarse2fine.engine import runs as run_lib

  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "stopped", workdir)
  _flip_bytes(str(workdir / "checkpoints" / "12"))
  evaluated = run_lib.evaluate_checkpoint(config, str(workdir))
  assert evaluated["step"] == 8
  assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["8", "12"]
  assert not os.path.exists(workdir / "checkpoints_unusable")


def _drop_from_saved_config(step_dir, group, field):
  path = os.path.join(step_dir, "meta", "metadata")
  with open(path) as f:
    meta = json.load(f)
  del meta["config"][group][field]
  with open(path, "w") as f:
    json.dump(meta, f)


def test_a_field_added_after_the_checkpoint_takes_its_default(runs, tmp_path, caplog):
  """A checkpoint from before `data.device_prefetch` existed: resumed at the default, refused otherwise."""
  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "stopped", workdir)
  for step in ("8", "12"):
    _drop_from_saved_config(str(workdir / "checkpoints" / step), "data", "device_prefetch")
  changed = config.copy_and_resolve_references()
  changed.data.device_prefetch = 5
  with pytest.raises(ValueError, match=r"another config:\n  data.device_prefetch: checkpoint has '<missing>', "
                                       r"config has 5\n"):
    loop.train_and_evaluate(changed, str(workdir))
  with caplog.at_level(std_logging.WARNING):
    results = loop.train_and_evaluate(config, str(workdir))
  assert any("data.device_prefetch is newer than" in r.getMessage() for r in caplog.records)
  with open(root / "whole" / "results.json") as f:
    assert results["metrics"] == json.load(f)["metrics"]


def test_sections_of_other_method_families_do_not_refuse_a_resume(runs, tmp_path):
  """Which method sections a config holds depends on what its process registered (a plugin's tests, a notebook).

  The checkpoint was saved by a process that knew one more family; the resuming config also
  changes another family's section: neither is read by this run, so it resumes exactly. A change
  to a field the run reads is still refused.
  """
  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "stopped", workdir)
  for step in ("8", "12"):
    path = os.path.join(workdir, "checkpoints", step, "meta", "metadata")
    with open(path) as f:
      meta = json.load(f)
    meta["config"]["plugin_family"] = {"num_clusters": 6}
    with open(path, "w") as f:
      json.dump(meta, f)
  other = config.copy_and_resolve_references()
  assert config.method not in ("falcon", "scan", "scan_c")
  other.falcon.num_fine = 17
  other.scan.num_clusters = 3
  changed = other.copy_and_resolve_references()
  changed.train.batch_size = config.train.batch_size // 2
  with pytest.raises(ValueError, match=r"another config:\n  train.batch_size: checkpoint has"):
    loop.train_and_evaluate(changed, str(workdir))
  results = loop.train_and_evaluate(other, str(workdir))
  with open(root / "whole" / "results.json") as f:
    assert results["metrics"] == json.load(f)["metrics"]


def test_a_finished_run_from_before_a_field_existed_is_still_finished(runs, tmp_path):
  """config.json without `data.device_prefetch` (written before it existed): finished at its default, not otherwise."""
  from coarse2fine.engine import runs as run_lib

  config, root = runs
  workdir = tmp_path / "run"
  shutil.copytree(root / "whole", workdir)
  saved = json.loads((workdir / "config.json").read_text())
  assert run_lib.finished_run(config, str(workdir)) is not None
  del saved["data"]["device_prefetch"]
  (workdir / "config.json").write_text(json.dumps(saved))
  assert run_lib.finished_run(config, str(workdir))["steps"] == 16
  changed = config.copy_and_resolve_references()
  changed.data.device_prefetch = config.data.device_prefetch + 3
  assert run_lib.finished_run(changed, str(workdir)) is None
