"""The fine-class estimate: the criteria on planted blobs, its config path end to end, the CLI override."""

import json
import os

import numpy as np
import pytest
import scipy.sparse
from absl import flags
from ml_collections import config_flags

import coarse2fine as c2f
from coarse2fine import api
from coarse2fine.data.sparse_rows import SparseRows
from coarse2fine.engine import loop, runs
from coarse2fine.methods.common import estimate_k

CHILDREN = (1, 2, 3, 5)  # uneven children per coarse class, one class with a single child


def planted_blobs(children, per_fine: int = 120, dim: int = 12, seed: int = 0):
  """([n, dim] points, [n] coarse labels): coarse class c holds children[c] Gaussian blobs.

  Generated here, independently of the data layer: every fine centre is drawn around its coarse
  centre, well apart; points are the centre plus unit-variance noise / 4.
  """
  rng = np.random.default_rng(seed)
  xs, coarse = [], []
  for c, k in enumerate(children):
    centre = rng.normal(0, 10.0, dim)
    for _ in range(k):
      fine_centre = centre + rng.normal(0, 3.0, dim)
      xs.append(fine_centre + rng.normal(0, 0.25, (per_fine, dim)))
      coarse += [c] * per_fine
  return np.concatenate(xs).astype(np.float32), np.asarray(coarse)


@pytest.mark.parametrize("criterion", ["gap", "bic", "eigengap", "silhouette"])
def test_criteria_recover_planted_children(criterion):
  x, coarse = planted_blobs(CHILDREN)
  found = estimate_k.estimate_children(x, coarse, len(CHILDREN), criterion=criterion, k_max=6)
  np.testing.assert_array_equal(found.per_coarse, CHILDREN)
  assert found.total == sum(CHILDREN)


def test_ded_counts_density_peaks_of_well_apart_blobs():
  x, coarse = planted_blobs((2, 4), per_fine=80)
  found = estimate_k.estimate_children(x, coarse, 2, criterion="ded", k_max=8)
  assert found.per_coarse.tolist() == [2, 4]


def test_settings_and_field_values_are_checked():
  with pytest.raises(ValueError, match="Unknown estimate.criterion 'elbow'"):
    estimate_k.check_settings("elbow", 10)
  with pytest.raises(ValueError, match="estimate.k_max must be an integer >= 1"):
    estimate_k.check_settings("gap", 0)
  with pytest.raises(ValueError, match=r"falcon.num_fine='estimated': use an integer .* or 'estimate'"):
    estimate_k.check_fine_count("falcon.num_fine", "estimated")
  estimate_k.check_fine_count("falcon.num_fine", "estimate")
  estimate_k.check_fine_count("falcon.num_fine", 12)


@pytest.fixture
def falcon_estimate_config(tiny_config):
  config = tiny_config
  config.method = "falcon"
  config.data.views = ("none", "none")
  config.data.synthetic.children = (1, 2, 3)
  config.data.synthetic.num_train = 600
  config.falcon.num_fine = "estimate"
  config.falcon.neighbours = 5
  config.falcon.solve_every = 2
  config.falcon.soft_label_epochs = 1
  config.eval.protocols = ("classification", "clusters")
  return config


def test_config_path_end_to_end(falcon_estimate_config, tmp_path, capsys):
  workdir = str(tmp_path)
  results = loop.train_and_evaluate(falcon_estimate_config, workdir)
  record = results["num_fine_estimate"]
  assert record["true_per_coarse"] == [1, 2, 3] and record["true_total"] == 6  # from the generator's children
  assert record["per_coarse"] == [1, 2, 3] and record["total"] == 6 and record["criterion"] == "silhouette"
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["num_fine_estimate"] == record
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["falcon"]["num_fine"] == 6  # what a reload builds, without estimating again
  assert "total K=6 (true: coarse0=1, coarse1=2, coarse2=3; total 6)" in capsys.readouterr().out
  assert results["metrics"]["discovery/clusters_acc"] > 0  # the 6-class head was trained and scored
  # A reload (evaluation) reuses the record instead of estimating.
  run = runs.setup_run(falcon_estimate_config, for_training=False, recorded_estimate=runs.read_estimate(workdir))
  assert run.method.num_fine == 6 and run.fine_count_estimate == record


def test_bad_field_value_fails_before_any_work(falcon_estimate_config, tmp_path):
  falcon_estimate_config.falcon.num_fine = "auto"
  with pytest.raises(ValueError, match="falcon.num_fine='auto': use an integer"):
    loop.train_and_evaluate(falcon_estimate_config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "config.json")


@pytest.mark.parametrize("value,expected", [("estimate", "estimate"), ("12", 12)])
def test_command_line_override_parses(value, expected, tmp_path):
  for field in ("falcon.num_fine", "scgm.num_subclasses", "scan.num_clusters"):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs", "falcon_fashion_mnist.py")
    argv = ["prog", f"--config={path}", f"--config.{field}={value}"]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)  # as cli/train.py
    flag_values(argv)
    section, name = field.split(".")
    assert flag_values.config[section][name] == expected


def test_api_defaults_to_the_estimate_without_fine_labels():
  x, coarse = planted_blobs((1, 2), per_fine=40)
  data = api.build_data(x, coarse)
  assert api.make_config("falcon", data).falcon.num_fine == "estimate"
  assert api.make_config("scgm_g", data).scgm.num_subclasses == "estimate"
  assert api.make_config("falcon", data, num_fine=5).falcon.num_fine == 5
  labelled = api.build_data(x, coarse, fine=np.repeat(np.arange(3), 40))
  assert api.make_config("falcon", labelled).falcon.num_fine == 0  # fine labels: their number (0 = the true count)


def test_sparse_inputs_give_the_dense_estimate():
  x, coarse = planted_blobs((1, 3), per_fine=60)
  x = np.maximum(x, 0)  # mostly zeros, as expression counts
  dense = estimate_k.estimate_children(x, coarse, 2, criterion="eigengap")
  sparse = estimate_k.estimate_children(SparseRows(scipy.sparse.csr_matrix(x)), coarse, 2, criterion="eigengap")
  np.testing.assert_array_equal(sparse.per_coarse, dense.per_coarse)


def test_fit_without_fine_labels_estimates_and_reloads(tmp_path):
  x, coarse = planted_blobs((1, 3))
  model = c2f.fit(x, coarse, method="falcon", workdir=str(tmp_path), config_overrides={
      "train.num_epochs": 2, "train.batch_size": 32, "model.encoder_args.hidden_sizes": (32,), "logging.progress": False})
  with open(tmp_path / "results.json") as f:
    record = json.load(f)["num_fine_estimate"]
  assert record["per_coarse"] == [1, 3] and "true_total" not in record  # no fine labels: no truth to report
  assert model.method.num_fine == 4 and c2f.load(str(tmp_path)).method.num_fine == 4  # rebuilt from config.json


def test_a_resumed_run_reuses_the_recorded_estimate(falcon_estimate_config, tmp_path):
  workdir = str(tmp_path)
  falcon_estimate_config.train.stop_after_steps = 4  # stops as if preempted, after a checkpoint
  assert loop.train_and_evaluate(falcon_estimate_config, workdir) is None
  first = runs.read_estimate(workdir)
  with open(os.path.join(workdir, runs.ESTIMATE_FILE), "w") as f:  # a marker only a reuse can carry over
    json.dump({**first, "criterion": "recorded"}, f)
  falcon_estimate_config.train.stop_after_steps = 0
  results = loop.train_and_evaluate(falcon_estimate_config, workdir)
  assert results["num_fine_estimate"] == {**first, "criterion": "recorded"} and results["steps"] > 4
