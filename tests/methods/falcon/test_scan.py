"""SCAN and SCAN-C: the loss against numpy, where the neighbours come from, and the clusters' parents."""

import math

import jax
import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.engine import loop, optim, sharding
from coarse2fine.engine.runs import create_train_state
from coarse2fine.methods import build_method
from tests.methods import initial_state


@pytest.fixture
def scan_config(tiny_config):
  config = tiny_config
  config.method = "scan_c"
  config.data.views = ("none",)
  config.data.synthetic.num_train = 1024
  config.model.encoder_args.hidden_sizes = (64, 64)
  config.scan.neighbours = 10
  config.optimizer.weight_decay = 0.0
  return config


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("method", ["scan", "scan_c"])
def test_loss_matches_numpy_and_neighbours_follow_the_variant(scan_config, method):
  scan_config.method = method
  scan_config.data.synthetic.noise = 3.0  # overlapping classes: nearest neighbours may cross coarse classes
  data = load_dataset(scan_config.data)
  scan = build_method(scan_config, data)
  table = scan.neighbour_sampling().table
  same_coarse = data.train.coarse[table] == data.train.coarse[:, None]
  if method == "scan_c":
    assert same_coarse.all()
  else:  # over all data: some neighbours cross coarse classes, and none is the example itself
    assert not same_coarse.all()
  assert not np.any(table == np.arange(len(data.train))[:, None])

  state = create_train_state(scan, scan_config, data.input_shape, sharding.make_mesh(),
                             optim.make_schedule(scan_config.optimizer, 16, 32))
  rng = np.random.default_rng(0)
  index = rng.permutation(len(data.train))[:16]
  nb = table[index, :1]
  batch = initial_state.batch(data.train.inputs[index][:, None], data.train.coarse[index], index=index,
                              neighbours=data.train.inputs[nb])
  loss, _ = scan.loss(state.params, state, batch, jax.random.key(0))
  apply = lambda x: np.asarray(scan.model().apply(state.variables, x, train=True, mutable=["batch_stats"])[0]["logits"],
                               np.float64)
  p, q = _softmax(apply(batch.views[:, 0])), _softmax(apply(batch.neighbours[:, 0]))
  pbar = p.mean(0)
  want = -np.mean(np.log(np.sum(p * q, 1))) + 5.0 * (math.log(p.shape[1]) + np.sum(pbar * np.log(pbar)))
  assert float(loss) == pytest.approx(want, rel=1e-5)


def test_scan_c_finds_planted_fine_classes_and_parents_by_majority(scan_config, tmp_path):
  scan_config.train.num_epochs = 6
  scan_config.train.batch_size = 64
  scan_config.optimizer.lr = 0.05
  scan_config.eval.protocols = ("clusters",)
  metrics = loop.train_and_evaluate(scan_config, str(tmp_path))["metrics"]
  assert metrics["discovery/clusters_acc"] >= 85.0
  assert metrics["discovery/clusters_relation_acc"] >= 85.0  # parents from each cluster's majority coarse label
