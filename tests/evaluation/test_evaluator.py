"""The evaluator inside the training loop and the `coarse2fine.evaluate` entry point."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from coarse2fine.engine import loop, runs
from coarse2fine.evaluation import evaluator as evaluator_lib
from tests import multi_device

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def all_protocols(tiny_config):
  tiny_config.eval.protocols = ("classification", "fewshot", "retrieval", "kmeans")
  tiny_config.eval.fewshot_episodes = 50
  tiny_config.data.synthetic.num_test = 400  # >= 16 examples per fine class for 1-shot, 15 queries
  return tiny_config


def test_all_protocols_reach_results_json(all_protocols, tmp_path):
  metrics = loop.train_and_evaluate(all_protocols, str(tmp_path))["metrics"]
  on_disk = json.loads((tmp_path / "results.json").read_text())["metrics"]
  assert on_disk == pytest.approx(metrics)
  for key in ("test/coarse_top1", "fewshot/5way_1shot", "fewshot/5way_1shot_ci95", "fewshot/allway_1shot",
              "fewshot/intra_1shot", "fewshot/intra_1shot_ci95", "retrieval/recall@1", "retrieval/recall@10",
              "discovery/acc", "discovery/ari", "discovery/nmi", "discovery/ged", "discovery/ged_invariant",
              "discovery/relation_acc"):
    assert key in metrics, key
  # Planted, well-separated fine classes: retrieval and 5-way episodes are far above chance.
  assert metrics["retrieval/recall@1"] > 60 and metrics["fewshot/5way_1shot"] > 50
  assert metrics["retrieval/recall@1"] <= metrics["retrieval/recall@10"] <= 100
  assert 0 < metrics["fewshot/5way_1shot_ci95"] < 10


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_evaluate_entry_point_matches_training_results(all_protocols, tmp_path):
  all_protocols.eval.protocols = ("classification", "retrieval", "kmeans")
  results = loop.train_and_evaluate(all_protocols, str(tmp_path))
  done = subprocess.run([sys.executable, "-m", "coarse2fine.evaluate", f"--workdir={tmp_path}"], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  evaluated = json.loads((tmp_path / "eval.json").read_text())
  assert evaluated["step"] == results["steps"]
  assert evaluated["metrics"] == pytest.approx(results["metrics"], abs=1e-4)
  assert "retrieval/recall@1" in (tmp_path / "eval.md").read_text()


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_evaluate_takes_the_runs_config_file(all_protocols, tmp_path):
  """`--config` instead of config.json: the same checkpoint, the same metrics."""
  workdir = tmp_path / "run"
  results = loop.train_and_evaluate(all_protocols, str(workdir))
  (workdir / "config.json").rename(tmp_path / "saved.json")
  (tmp_path / "run_config.py").write_text(
      "import json\nimport ml_collections\n\n\ndef get_config():\n"
      f"  return ml_collections.ConfigDict(json.load(open({str(tmp_path / 'saved.json')!r})))\n")
  done = subprocess.run([sys.executable, "-m", "coarse2fine.evaluate", f"--workdir={workdir}",
                         f"--config={tmp_path / 'run_config.py'}", "--protocols=classification"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  evaluated = json.loads((workdir / "eval.json").read_text())["metrics"]
  assert evaluated == pytest.approx({"test/coarse_top1": results["metrics"]["test/coarse_top1"]}, abs=1e-4)


def test_evaluate_without_checkpoint(tmp_path):
  (tmp_path / "config.json").write_text("{}")
  done = subprocess.run([sys.executable, "-m", "coarse2fine.evaluate", f"--workdir={tmp_path / 'nothing'}"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode != 0 and "config.json not found" in done.stderr


def test_embed_equals_the_model_applied_directly(all_protocols):
  import jax.numpy as jnp

  run = runs.setup_run(all_protocols)
  evaluator = evaluator_lib.Evaluator(run.method, run.data, run.mesh, all_protocols)
  x = run.data.test.inputs[:37]
  got = evaluator.embed(run.state, x)
  normalised = (x - run.data.mean) / run.data.std
  expected = run.method.model().apply(run.state.variables, jnp.asarray(normalised), train=False)["embedding"]
  np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_fewshot_settings_parsing(tiny_config):
  tiny_config.eval.fewshot_settings = ("5way", "20way", "allway", "intra")
  tiny_config.eval.fewshot_shots = (1, 5)
  settings = evaluator_lib.fewshot_settings(tiny_config.eval)
  assert settings[:4] == [("5way", 5, 1), ("20way", 20, 1), ("allway", None, 1), ("intra", None, 1)]
  assert settings[-1] == ("intra", None, 5)
  tiny_config.eval.fewshot_settings = ("fiveway",)
  with pytest.raises(ValueError, match="Unknown eval.fewshot_settings entry 'fiveway'"):
    evaluator_lib.fewshot_settings(tiny_config.eval)


def test_unknown_protocol(tiny_config, tmp_path):
  tiny_config.eval.protocols = ("classification", "linear_probe")
  with pytest.raises(ValueError, match=r"Unknown eval.protocols \['linear_probe'\]"):
    loop.train_and_evaluate(tiny_config, str(tmp_path))


EVALUATE_ON_THIS_MACHINE = r"""
import json, sys
import jax
from coarse2fine.engine import runs
config = runs.load_run_config(sys.argv[1])
print("DEVICES", jax.device_count())
print("RESULT" + json.dumps(runs.evaluate_checkpoint(config, sys.argv[1])["metrics"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("devices", [3, 4])
def test_a_run_evaluates_on_device_counts_that_do_not_divide_its_batches(all_protocols, tmp_path, devices):
  """Trained on 1 device with batch 64; evaluated on 3 and 4: the same metrics."""
  all_protocols.eval.protocols = ("classification", "retrieval")
  all_protocols.eval.batch_size = 50  # divides neither 3 nor 4 devices: rounded up, the last batch padded
  results = loop.train_and_evaluate(all_protocols, str(tmp_path))
  evaluated = multi_device.run_script(EVALUATE_ON_THIS_MACHINE, [tmp_path], devices=devices)
  assert evaluated == pytest.approx(results["metrics"], abs=1e-3)


def test_progress_bars_count_every_batch_and_episode(all_protocols, monkeypatch):
  """With `show_progress`, the prediction bar advances once per evaluation batch and the few-shot bar once
  per episode of every setting, up to the totals they announce."""
  bars = {}

  class Recorder:
    def __init__(self, desc, total, unit, enabled=True):
      self.total, self.done, self.enabled = total, 0, enabled
      bars[desc] = self

    def update(self, n=1):
      self.done += n

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      pass

  monkeypatch.setattr(evaluator_lib, "work_bar", Recorder)
  run = runs.setup_run(all_protocols)
  evaluator_lib.Evaluator(run.method, run.data, run.mesh, all_protocols, show_progress=True)(run.state)
  batch = all_protocols.eval.batch_size  # 128 divides on 1 and 8 devices
  assert bars["predicting"].total == bars["predicting"].done == -(-400 // batch) == 4
  settings = len(all_protocols.eval.fewshot_settings) * len(all_protocols.eval.fewshot_shots)
  assert bars["few-shot episodes"].total == bars["few-shot episodes"].done == 50 * settings
  assert all(bar.enabled for bar in bars.values())
