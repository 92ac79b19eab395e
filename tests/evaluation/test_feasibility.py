"""Evaluation protocols that cannot run on the data are refused before the first step, naming the field."""

import dataclasses

import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.engine import loop


def _refused_before_training(config, tmp_path, match):
  with pytest.raises(ValueError, match=match):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()  # refused before anything was written


def test_fewshot_needs_shots_plus_queries_of_every_fine_class(tiny_config, tmp_path):
  tiny_config.eval.protocols = ("classification", "fewshot")
  tiny_config.eval.fewshot_shots = (1, 5)
  tiny_config.eval.fewshot_episodes = 4
  smallest = int(np.bincount(load_dataset(tiny_config.data).test.fine).min())  # counted here, independently
  tiny_config.eval.fewshot_queries = smallest - 5 + 1  # one more than the smallest class holds
  _refused_before_training(tiny_config, tmp_path, rf"eval.fewshot_shots \+ eval.fewshot_queries = 5 \+ "
                           rf"{smallest - 4} = {smallest + 1} .*the smallest has {smallest}\); "
                           "lower eval.fewshot_queries")
  tiny_config.eval.fewshot_queries = smallest - 5  # exactly enough: trains and evaluates
  results = loop.train_and_evaluate(tiny_config, str(tmp_path / "enough"))
  assert "fewshot/5way_5shot" in results["metrics"]


def test_own_clusters_need_a_method_that_has_them(tiny_config, tmp_path):
  tiny_config.eval.protocols = ("classification", "clusters")  # `coarse` discovers no classes
  _refused_before_training(tiny_config, tmp_path, "discovers no classes of its own; use 'kmeans'")


def test_protocols_on_fine_labels_need_them_on_the_evaluation_split(tiny_config, tmp_path):
  data = load_dataset(tiny_config.data)
  unlabelled = dataclasses.replace(data.test, fine=np.where(np.arange(len(data.test)) % 7 == 0, -1, data.test.fine))
  tiny_config.eval.protocols = ("classification", "retrieval")
  with pytest.raises(ValueError, match=rf"\['retrieval'\] need fine labels on the test split, but "
                     rf"{len(range(0, len(data.test), 7))} of its {len(data.test)} examples have none"):
    loop.train_and_evaluate(tiny_config, str(tmp_path / "run"), data=dataclasses.replace(data, test=unlabelled))
  assert not (tmp_path / "run" / "config.json").exists()
