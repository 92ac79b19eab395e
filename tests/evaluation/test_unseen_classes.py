"""Evaluation on a test split of classes unseen in training (data.split_protocol="unseen_classes")."""

import dataclasses

import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.data.splits import Split
from coarse2fine.engine import loop, runs
from coarse2fine.evaluation import evaluator as evaluator_lib
from coarse2fine.evaluation import feasibility

KS = (1, 2, 4, 8)


def _unseen_class_data(data):
  """The tiny dataset's train and test pooled, re-split as the CUB/Cars loaders do: the first half of the
  fine classes train, the others test."""
  inputs = np.concatenate([data.train.inputs, data.test.inputs])
  fine = np.concatenate([data.train.fine, data.test.fine])
  coarse = np.concatenate([data.train.coarse, data.test.coarse])
  seen = fine < data.num_fine // 2
  train, test = (Split(inputs[rows], coarse[rows], fine[rows]) for rows in (seen, ~seen))
  return dataclasses.replace(data, train=train, test=test, unseen_test_classes=True)


def _brute_force_recall(embeddings, labels, k):
  """Recall@k (%) in float64 numpy: each item against all others, cosine similarity, the item itself left out."""
  x = embeddings.astype(np.float64)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  sims = x @ x.T
  np.fill_diagonal(sims, -np.inf)
  hits = 0
  for i in range(len(x)):
    nearest = np.argsort(-sims[i], kind="stable")[:k]
    hits += bool((labels[nearest] == labels[i]).any())
  return 100.0 * hits / len(x)


@pytest.fixture
def unseen_run(tiny_config):
  tiny_config.eval.protocols = ("retrieval", "kmeans")
  tiny_config.eval.retrieval_ks = KS
  data = _unseen_class_data(load_dataset(tiny_config.data))
  return tiny_config, data, runs.setup_run(tiny_config, data=data)


def test_recall_at_k_on_unseen_classes_matches_brute_force(unseen_run, monkeypatch):
  config, data, run = unseen_run
  assert set(data.test.fine) == set(range(data.num_fine // 2, data.num_fine))  # none of them trained on
  assert not set(data.train.fine) & set(data.test.fine)
  clusters = []
  kmeans_metrics = evaluator_lib.kmeans.kmeans_metrics
  monkeypatch.setattr(evaluator_lib.kmeans, "kmeans_metrics",
                      lambda *a, **kw: clusters.append(kw["num_clusters"]) or kmeans_metrics(*a, **kw))
  evaluator = evaluator_lib.Evaluator(run.method, data, run.mesh, config)
  metrics = evaluator(run.state)
  embeddings = evaluator.embed(run.state, data.test.inputs)
  for k in KS:
    assert metrics[f"retrieval/recall@{k}"] == pytest.approx(_brute_force_recall(embeddings, data.test.fine, k),
                                                             abs=1e-4), k
  assert "test/fine_top1" not in metrics and "test/coarse_top1" not in metrics
  # k-means: one cluster per class the test split holds, not the taxonomy's count.
  assert clusters == [len(np.unique(data.test.fine))] and clusters[0] < data.num_fine


def test_classification_is_refused_on_unseen_test_classes(unseen_run, tmp_path):
  config, data, run = unseen_run
  config.eval.protocols = ("classification", "retrieval")
  with pytest.raises(ValueError, match="data.split_protocol='unseen_classes' keeps every test class out of "
                                       "training.*'retrieval'"):
    feasibility.check_protocols(config, data, type(run.method))
  with pytest.raises(ValueError, match="keeps every test class out of training"):
    loop.train_and_evaluate(config, str(tmp_path / "run"), data=data)
  assert not (tmp_path / "run" / "config.json").exists()  # refused before the first step
  # The same data with the official flag, or classification on the (seen-class) val split, is accepted.
  feasibility.check_protocols(config, dataclasses.replace(data, unseen_test_classes=False), type(run.method))
  config.eval.split = "val"
  feasibility.check_protocols(config, dataclasses.replace(data, val=data.train), type(run.method))
