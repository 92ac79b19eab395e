"""Input checks at load: NaN, inf and huge values refused naming split, count and index; constant examples warned."""

import dataclasses
import logging as std_logging

import numpy as np
import pytest

from coarse2fine.data import checks, load_dataset
from coarse2fine.engine import loop


def test_range_limit_is_at_the_documented_magnitude():
  checks.check_range(np.array([[1e15, -1e15]]), "x")  # at the limit: accepted
  with pytest.raises(ValueError, match=r"x: 2 values exceed 1e\+15 .*at index \(1, 0\)"):
    checks.check_range(np.array([[0.0, 1.0], [2e15, -3e20]]), "x")


def test_constant_examples_match_a_brute_force_count():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 3, size=(200, 2, 2, 1)).astype(np.uint8)  # small images: some constant by chance
  x[5] = 7
  expected = [len(set(row.ravel().tolist())) == 1 for row in x]
  np.testing.assert_array_equal(checks.constant_examples(x), expected)
  assert sum(expected) > 1


def _with_train_inputs(data, inputs):
  return dataclasses.replace(data, train=dataclasses.replace(data.train, inputs=inputs))


@pytest.mark.parametrize("bad,message", [(np.nan, "NaN or infinite"), (-np.inf, "NaN or infinite"),
                                         (1e30, r"exceed 1e\+15")])
def test_a_run_on_bad_vectors_is_refused_before_anything_is_written(tiny_config, tmp_path, bad, message):
  """Any loader's data (here the synthetic one, passed in as the API does) is checked at the start of a run."""
  data = load_dataset(tiny_config.data)
  inputs = data.train.inputs.copy()
  inputs[3, 5] = bad
  with pytest.raises(ValueError, match=rf"synthetic train split inputs: 1 values .*{message}.*index \(3, 5\)"):
    loop.train_and_evaluate(tiny_config, str(tmp_path / "run"), data=_with_train_inputs(data, inputs))
  assert not (tmp_path / "run" / "config.json").exists()


def test_constant_examples_are_a_warning_and_the_run_stays_finite(tiny_config, tmp_path, caplog):
  data = load_dataset(tiny_config.data)
  inputs = data.train.inputs.copy()
  inputs[[2, 9, 40]] = 0.0  # three all-zero examples: l2-normalised features of zero must not give NaN
  tiny_config.method = "scgm_g"
  tiny_config.scgm.estep_every_epochs = 1
  tiny_config.eval.protocols = ("classification",)
  with caplog.at_level(std_logging.WARNING):
    results = loop.train_and_evaluate(tiny_config, str(tmp_path / "run"), data=_with_train_inputs(data, inputs))
  warned = [r.getMessage() for r in caplog.records if "constant" in r.getMessage()]
  assert len(warned) == 1 and "3 of 512 examples are constant (every value equal, e.g. example 2)" in warned[0]
  assert all(np.isfinite(v) for v in results["metrics"].values())
