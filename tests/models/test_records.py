"""The DCCN records encoder: shapes, a numpy transcription, both channels used, errors, a smoke run."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine import models
from coarse2fine.engine import loop
from coarse2fine.models import DCCN, build_encoder, encoder_features_dim, split_records

KEY = jax.random.PRNGKey(0)
S, T, F = 3, 4, 2  # static features, time steps, features per step


def _records(n=5, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, S)).astype(np.float32), rng.normal(size=(n, T, F)).astype(np.float32)


def _flat(static, series):  # the documented layout, built independently of the library
  return np.concatenate([static, series.reshape(len(series), -1)], axis=1)


def _init(encoder, x):  # jitted: un-jitted, the LSTM's scan alone takes seconds
  return jax.jit(lambda x: encoder.init(KEY, x, train=False))(x)


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


def _numpy_dccn(params, static, series, pooling):
  """DCCN without BN, transcribed: ReLU(Dense) static channel, LSTM, ReLU(Dense) combiner."""
  dense = lambda p, x: x @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
  s = np.maximum(dense(params["static_dense0"], static), 0)
  cell = {k: {n: np.asarray(v) for n, v in p.items()} for k, p in params["lstm"].items()}
  h = c = np.zeros((len(series), cell["hi"]["kernel"].shape[0]))
  hidden = []
  for t in range(series.shape[1]):
    x = series[:, t]
    gate = lambda name: x @ cell["i" + name]["kernel"] + h @ cell["h" + name]["kernel"] + cell["h" + name]["bias"]
    i, f, g, o = _sigmoid(gate("i")), _sigmoid(gate("f")), np.tanh(gate("g")), _sigmoid(gate("o"))
    c = f * c + i * g
    h = o * np.tanh(c)
    hidden.append(h)
  temporal = hidden[-1] if pooling == "last" else np.mean(hidden, axis=0)
  return np.maximum(dense(params["combiner_dense0"], np.concatenate([s, temporal], axis=1)), 0)


@pytest.mark.parametrize("kwargs,dim", [({}, 128), ({"combiner_hidden": (16, 12), "lstm_size": 5}, 12)])
def test_output_shape_matches_features_dim(kwargs, dim):
  encoder = build_encoder("records", static_dim=S, series_features=F, **kwargs)
  assert isinstance(encoder, DCCN) and encoder.features_dim == dim
  assert encoder_features_dim("records", static_dim=S, series_features=F, **kwargs) == dim
  x = jnp.zeros((2, S + T * F))
  variables = jax.eval_shape(lambda: encoder.init(KEY, x, train=False))
  out, _ = jax.eval_shape(lambda v: encoder.apply(v, x, train=True, mutable=["batch_stats"]), variables)
  assert out.shape == (2, dim) and out.dtype == jnp.float32


def test_paper_sizes():
  encoder = models.ENCODERS["records"]()  # 28 static features, 40 per session, w = 5
  x = jnp.zeros((2, 28 + 5 * 40))
  variables = jax.eval_shape(lambda: encoder.init(KEY, x, train=False))
  assert variables["params"]["static_dense0"]["kernel"].shape == (28, 64)
  assert variables["params"]["lstm"]["ii"]["kernel"].shape == (40, 64)
  assert variables["params"]["combiner_dense0"]["kernel"].shape == (64 + 64, 128)


@functools.lru_cache(maxsize=None)
def _small_dccn(pooling):
  """A BN-free DCCN, its variables and a jitted eval forward (cached: one compile per pooling)."""
  encoder = DCCN(static_dim=S, series_features=F, static_hidden=(6,), lstm_size=5, combiner_hidden=(7,),
                 pooling=pooling, use_bn=False)
  variables = _init(encoder, _flat(*_records()))
  return encoder, variables, jax.jit(lambda x: encoder.apply(variables, x, train=False))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_against_numpy_transcription(pooling):
  static, series = _records()
  _, variables, apply = _small_dccn(pooling)
  assert "batch_stats" not in variables
  np.testing.assert_allclose(apply(_flat(static, series)), _numpy_dccn(variables["params"], static, series, pooling),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_uses_both_channels_and_the_order_of_steps(pooling):
  static, series = _records(seed=1)
  _, _, apply = _small_dccn(pooling)
  run = lambda st, se: np.asarray(apply(_flat(st, se)))
  base = run(static, series)
  assert np.abs(run(static + 1.0, series) - base).max() > 1e-3  # static only
  assert np.abs(run(static, series + 1.0) - base).max() > 1e-3  # series only
  assert np.abs(run(static, series[:, ::-1]) - base).max() > 1e-3  # same steps, reversed order
  np.testing.assert_array_equal(run(static, series), base)  # and the changes are not noise


def test_batch_norm_lives_in_batch_stats():
  static, series = _records(n=8)
  encoder = DCCN(static_dim=S, series_features=F, static_hidden=(6,), combiner_hidden=(7,))
  variables = _init(encoder, _flat(static, series))
  assert set(variables["batch_stats"]) == {"static_bn0", "combiner_bn0"}
  _, state = jax.jit(lambda x: encoder.apply(variables, x, train=True, mutable=["batch_stats"]))(
      _flat(static, series))
  # Running means move from 0 by 0.1 of the batch mean of the Dense output (PyTorch momentum).
  kernel = np.asarray(variables["params"]["static_dense0"]["kernel"])
  np.testing.assert_allclose(state["batch_stats"]["static_bn0"]["mean"], 0.1 * (static @ kernel).mean(0),
                             rtol=1e-4, atol=1e-6)


def test_split_records_inverts_the_flat_layout():
  static, series = _records()
  got_static, got_series = split_records(_flat(static, series), S, F)
  np.testing.assert_array_equal(got_static, static)
  np.testing.assert_array_equal(got_series, series)
  jax_static, jax_series = split_records(jnp.asarray(_flat(static, series)), S, F)
  np.testing.assert_array_equal(jax_series, series)


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"width 12 do not fit static_dim=3 plus T x series_features=2"):
    split_records(np.zeros((2, 12)), S, F)  # 12 - 3 is odd
  with pytest.raises(ValueError, match="model.encoder_args.static_dim"):
    DCCN(static_dim=S, series_features=F).init(KEY, jnp.zeros((2, S)), train=False)  # T = 0
  with pytest.raises(ValueError, match="at least 1"):
    split_records(np.zeros((2, 8)), 0, F)
  with pytest.raises(ValueError, match=r"Unknown DCCN pooling 'max'"):
    DCCN(static_dim=S, series_features=F, pooling="max").init(KEY, jnp.zeros((2, S + F)), train=False)
  with pytest.raises(ValueError, match="combiner_hidden"):
    DCCN(combiner_hidden=()).features_dim


def test_coarse_baseline_trains_on_generated_records(tiny_config, tmp_path):
  config = tiny_config
  config.data.name = "records"
  config.data.variant = "synthetic"
  config.data.views = ("none",)
  records = config.data.records.synthetic
  records.static_dim, records.series_features = 6, 4
  records.num_patients, records.windows_per_patient = 32, 16  # 256 train / 256 test windows
  config.model.encoder = "records"
  config.model.encoder_args = {"static_dim": 6, "series_features": 4, "static_hidden": (16,), "lstm_size": 16,
                               "combiner_hidden": (32,)}
  config.eval.protocols = ("classification",)
  config.train.num_epochs = 3
  config.train.batch_size = 32
  config.train.log_every_steps = 8
  config.checkpoint.every_steps = 100
  results = loop.train_and_evaluate(config, str(tmp_path))
  assert results["dataset"] == "records"
  # Two coarse classes (chance 50%); the static channel alone separates them (~85% for a linear model).
  assert results["metrics"]["test/coarse_top1"] > 75.0
