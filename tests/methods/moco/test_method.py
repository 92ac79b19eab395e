"""MoCo v3 as a method: its step against numpy, the momentum encoder, labels unused, predictions, config errors,
a short run whose loss falls, several devices."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine import api
from coarse2fine.data import load_dataset
from coarse2fine.engine import loop
from coarse2fine.evaluation import feasibility
from coarse2fine.methods import build_method
from coarse2fine.methods.moco.method import MoCoV3
from tests import multi_device
from tests.methods import initial_state


@pytest.fixture
def moco_config(tiny_config):
  config = tiny_config
  config.method = "moco_v3"
  config.data.views = ("mask_noise", "mask_noise")
  config.moco.temperature = 0.3
  config.moco.embedding_dim = 8
  config.moco.projector_hidden = 16
  config.moco.predictor_hidden = 12
  config.moco.momentum = 0.9
  config.eval.protocols = ("kmeans", "retrieval")
  config.eval.features = "features"
  config.train.batch_size = 16
  return config


def _n(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ctr(q, k, tau):
  logits = _n(q) @ _n(k).T / tau
  logits = logits - logits.max(-1, keepdims=True)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return -2 * tau * np.mean(np.diag(log_p))


def _apply(method, params, batch_stats, x, **kwargs):
  out, updated = method.model().apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                      mutable=["batch_stats"], **kwargs)
  return out, updated["batch_stats"]


def _batch(data, rng, size=16):
  index = rng.permutation(len(data.train))[:size]
  x = data.train.inputs[index]
  views = np.stack([x + 0.3 * rng.normal(size=x.shape), x + 0.3 * rng.normal(size=x.shape)], 1)
  return initial_state.batch(views.astype(np.float32), data.train.coarse[index], data.train.fine[index])


def test_step_loss_and_momentum_encoder_match_numpy(moco_config):
  data, method, state, mesh = initial_state.build(moco_config)
  assert set(state.params) == {"encoder", "projector", "predictor"}
  key = state.extra["momentum"]
  assert set(key.params) == {"encoder", "projector"} and set(key.batch_stats) == {"encoder", "projector"}
  rng = np.random.default_rng(0)
  # A momentum encoder that differs from the online one, at step 5 of the cosine schedule.
  key = key.replace(params=jax.tree.map(lambda a: a + 0.2 * jnp.asarray(rng.normal(size=a.shape), a.dtype),
                                        key.params))
  state = state.replace(extra={"momentum": key}, step=jnp.asarray(5, jnp.int32))
  batch = _batch(data, rng)

  step_loss = jax.jit(method.loss)
  loss, aux = step_loss(state.params, state, batch, jax.random.key(0))

  total = moco_config.train.num_epochs * (len(data.train) // moco_config.train.batch_size)
  m = 1 - (1 - 0.9) * (1 + np.cos(np.pi * 5 / total)) / 2
  want_key = jax.tree.map(lambda k, p: m * np.asarray(k, np.float64) + (1 - m) * np.asarray(p, np.float64),
                          key.params, {"encoder": state.params["encoder"], "projector": state.params["projector"]})
  x1, x2 = batch.views[:, 0], batch.views[:, 1]
  out1, stats = _apply(method, state.params, state.batch_stats, x1)
  out2, stats = _apply(method, state.params, stats, x2)
  k1, key_stats = _apply(method, want_key, key.batch_stats, x1, with_predictor=False)
  k2, key_stats = _apply(method, want_key, key_stats, x2, with_predictor=False)
  tau = 0.3
  want = _ctr(out1["prediction"], k2["projection"], tau) + _ctr(out2["prediction"], k1["projection"], tau)
  assert float(loss) == pytest.approx(want, rel=2e-5)
  assert float(aux.metrics["train/momentum"]) == pytest.approx(m, rel=1e-6)

  new_key = aux.extra["momentum"]
  for got, expected in zip(jax.tree.leaves(new_key.params), jax.tree.leaves(want_key)):
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
  for got, expected in zip(jax.tree.leaves(new_key.batch_stats), jax.tree.leaves(key_stats)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)  # its own BN stats
  for got, expected in zip(jax.tree.leaves(aux.batch_stats), jax.tree.leaves(stats)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)  # both views, in turn

  # The labels play no part: other coarse and fine labels give the same loss.
  relabelled = batch._replace(coarse=batch.coarse[::-1], fine=jnp.zeros_like(batch.fine))
  assert float(step_loss(state.params, state, relabelled, jax.random.key(0))[0]) == float(loss)


def test_predict_gives_features_and_normalised_embeddings_only(moco_config):
  data, method, state, mesh = initial_state.build(moco_config)
  out = method.predict(state, jnp.asarray(data.test.inputs[:10]))
  assert set(out) == {"features", "embedding"}
  assert out["features"].shape == (10, 32) and out["embedding"].shape == (10, 8)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(out["embedding"]), axis=-1), 1.0, rtol=1e-5)
  assert not type(method).has_clusters(moco_config)


@pytest.mark.parametrize("field,value,match", [
    ("moco.temperature", 0.0, "moco.temperature"),
    ("moco.projector_layers", 0, "moco.projector_layers"),
    ("moco.momentum", 1.5, "moco.momentum"),
    ("moco.momentum_schedule", "linear", "moco.momentum_schedule"),
    ("data.views", ("mask_noise",), "data.views"),
])
def test_bad_config_is_named(moco_config, field, value, match):
  data = load_dataset(moco_config.data)
  section, name = field.split(".")
  moco_config[section][name] = value
  with pytest.raises(ValueError, match=match):
    build_method(moco_config, data)


def test_classification_protocol_is_refused_before_training(moco_config):
  data = load_dataset(moco_config.data)
  moco_config.eval.protocols = ("classification", "kmeans")
  with pytest.raises(ValueError, match="eval.protocols has 'classification'.*learns no classifier"):
    feasibility.check_protocols(moco_config, data, MoCoV3)
  moco_config.eval.protocols = ("kmeans", "retrieval", "fewshot")
  feasibility.check_protocols(moco_config, data, MoCoV3)


def test_api_config_evaluates_features_only(moco_config):
  x = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)
  coarse = np.arange(120) % 2
  without_fine = api.make_config("moco_v3", api.build_data(x, coarse))
  assert without_fine.eval.protocols == () and without_fine.data.views == ("mask_noise", "mask_noise")
  with_fine = api.make_config("moco_v3", api.build_data(x, coarse, fine=np.arange(120) % 4))
  assert with_fine.eval.protocols == ("kmeans",)


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_short_run_lowers_the_loss(moco_config, tmp_path):
  moco_config.train.num_epochs = 3  # 96 steps of 16 vectors, two mask_noise views each
  moco_config.train.log_every_steps = 16
  moco_config.optimizer.lr = 0.1
  results = loop.train_and_evaluate(moco_config, str(tmp_path))
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train = [line["train/loss"] for line in lines if "train/loss" in line]
  assert len(train) == 6 and train[-1] < 0.8 * train[0], train
  assert "retrieval/recall@1" in results["metrics"] and "discovery/acc" in results["metrics"]


MULTI_DEVICE_SCRIPT = multi_device.SYNTHETIC_IMAGES_CONFIG + r"""
config.method = "moco_v3"
config.data.views = ("strong", "strong")
config.moco.temperature = 0.2
config.moco.embedding_dim = 8
config.moco.projector_hidden = config.moco.predictor_hidden = 16
config.eval.protocols = ("retrieval",)
config.eval.features = "features"
""" + multi_device.TRAIN_AND_DUMP_STATE


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  """The loss and the BatchNorm statistics are those of the whole global batch, whatever the device count."""
  one, eight = multi_device.states_on_one_and_eight(MULTI_DEVICE_SCRIPT, tmp_path)
  assert any("momentum" in name for name in one)
  multi_device.assert_states_match(one, eight)
