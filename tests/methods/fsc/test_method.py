"""F-SC and its comparison heads as a method: fixed sub-centres, the step's loss against numpy, predictions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.engine import loop
from coarse2fine.engine.checkpointing import Checkpointer
from coarse2fine.methods import build_method
from coarse2fine.methods.fsc import losses as fsc_losses
from tests import multi_device
from tests.methods import initial_state
from tests.methods.fsc.test_losses import fsc_reference, softtriple_reference


@pytest.fixture
def fsc_config(tiny_config):
  config = tiny_config
  config.method = "fsc"
  config.fsc.num_sub = 3
  config.fsc.beta = 0.01
  config.train.batch_size = 32
  return config


def _setup(config):
  return initial_state.build(config)[:3]


def _batch(data, size=32):
  index = np.random.default_rng(0).permutation(len(data.train))[:size]
  return initial_state.batch(data.train.inputs[index][:, None], data.train.coarse[index], data.train.fine[index])


def _features(method, state, inputs):
  outputs, _ = method.model().apply({"params": state.params, "batch_stats": state.batch_stats}, inputs,
                                    train=True, mutable=["batch_stats"])
  return outputs


def _size(tree):
  return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree.leaves(tree))


def test_sub_centres_are_fixed_constants_without_parameters_or_optimizer_state(fsc_config, tmp_path):
  results = loop.train_and_evaluate(fsc_config, str(tmp_path))
  manager = Checkpointer(str(tmp_path), fsc_config)
  state = manager.read_state()
  manager.close()
  data = load_dataset(fsc_config.data)
  dim = fsc_config.model.encoder_args.hidden_sizes[-1]
  # Bit-identical to the initial state's: training never touched them.
  initial = np.asarray(_setup(fsc_config)[2].extra["sub_centres"])
  np.testing.assert_array_equal(np.asarray(state["extra"]["sub_centres"]), initial)
  # ... which are the seed's draw (up to float rounding of the jitted initialisation).
  drawn = fsc_losses.sample_sub_centres(jax.random.fold_in(jax.random.PRNGKey(fsc_config.seed), 0xF5C),
                                        data.num_coarse, 3, dim, 1e-3)
  np.testing.assert_allclose(initial, np.asarray(drawn), rtol=1e-6, atol=1e-7)
  # The run did train: the encoder moved away from its initialisation and learnt the coarse task.
  assert results["metrics"]["test/coarse_top1"] > 80.0
  # The head adds no parameters and no optimizer state: both are exactly the encoder's.
  encoder = build_method(fsc_config, data).model().encoder
  encoder_params = encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, *data.input_shape)), train=False)["params"]
  assert _size(state["params"]) == _size(encoder_params)
  # SGD momentum: one trace per encoder parameter, plus the schedule's step counter.
  assert _size(state["opt_state"]) == _size(encoder_params) + 1


def test_softmax_head_adds_a_linear_layer_and_its_optimizer_state(fsc_config):
  fsc_config.fsc.head = "softmax"
  data, method, state = _setup(fsc_config)
  _, fsc_method, fsc_state = _setup(_with(fsc_config, head="fsc"))
  dim = fsc_config.model.encoder_args.hidden_sizes[-1]
  added = dim * data.num_coarse + data.num_coarse
  assert _size(state.params) - _size(fsc_state.params) == added
  assert _size(state.opt_state) - _size(fsc_state.opt_state) == added


def _with(config, **fields):
  config = config.copy_and_resolve_references()
  for name, value in fields.items():
    setattr(config.fsc, name, value)
  return config


@pytest.mark.parametrize("assign,scale", [("logit", 1.0), ("euclidean", 1.0), ("logit", 10.0)])
def test_fsc_step_loss_matches_numpy(fsc_config, assign, scale):
  fsc_config.fsc.assign = assign
  fsc_config.fsc.logit_scale = scale
  data, method, state = _setup(fsc_config)
  batch = _batch(data)
  loss, aux = method.loss(state.params, state, batch, jax.random.key(0))
  x = np.asarray(_features(method, state, batch.views[:, 0])["features"], np.float64)
  centres = np.asarray(state.extra["sub_centres"], np.float64)
  want, want_sub, want_scc = fsc_reference(x, centres, np.asarray(batch.coarse), 0.01, assign, scale)
  assert float(aux.metrics["train/sub_ce"]) == pytest.approx(want_sub, rel=1e-5)
  assert float(aux.metrics["train/compactness"]) == pytest.approx(want_scc, rel=1e-5)
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert aux.extra is state.extra  # the sub-centres pass through untouched


def test_fsc_gradient_reaches_the_encoder_but_not_the_sub_centres(fsc_config):
  data, method, state = _setup(fsc_config)
  batch = _batch(data)
  grads = jax.grad(lambda p: method.loss(p, state, batch, jax.random.key(0))[0])(state.params)
  assert _size(grads) == _size(state.params)
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) > 0


def test_centre_head_loss_and_moving_centres_match_wen_et_al(fsc_config):
  fsc_config.fsc.head = "centre"
  fsc_config.fsc.centre_lambda = 0.1
  data, method, state = _setup(fsc_config)
  centres = np.random.default_rng(1).normal(size=state.extra["centres"].shape).astype(np.float32)
  state = state.replace(extra={"centres": jnp.asarray(centres)})
  batch = _batch(data)
  labels = np.asarray(batch.coarse)
  loss, aux = method.loss(state.params, state, batch, jax.random.key(0))
  outputs = _features(method, state, batch.views[:, 0])
  x, logits = np.asarray(outputs["features"], np.float64), np.asarray(outputs["logits"], np.float64)
  shifted = logits - logits.max(1, keepdims=True)
  ce = -np.mean(shifted[np.arange(len(labels)), labels] - np.log(np.exp(shifted).sum(1)))
  pull = sum(0.5 * np.sum((x[i] - centres[labels[i]]) ** 2) for i in range(len(labels)))
  assert float(loss) == pytest.approx(ce + 0.1 * pull, rel=1e-5)
  want = centres.astype(np.float64).copy()
  for j in range(data.num_coarse):
    members = labels == j
    want[j] -= 0.5 * (members.sum() * centres[j] - x[members].sum(0)) / (1 + members.sum())
  np.testing.assert_allclose(np.asarray(aux.extra["centres"]), want, rtol=1e-4, atol=1e-5)


def test_softtriple_step_loss_matches_numpy(fsc_config):
  fsc_config.fsc.head = "softtriple"
  data, method, state = _setup(fsc_config)
  batch = _batch(data)
  loss, _ = method.loss(state.params, state, batch, jax.random.key(0))
  outputs = _features(method, state, batch.views[:, 0])
  assert outputs["centres"].shape == (data.num_coarse, 3, fsc_config.model.encoder_args.hidden_sizes[-1])
  want, _, _ = softtriple_reference(np.asarray(outputs["features"], np.float64),
                                    np.asarray(outputs["centres"], np.float64), np.asarray(batch.coarse),
                                    20.0, 0.1, 0.01, 0.2)
  assert float(loss) == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_coarse_predictions_sum_their_sub_classes_and_name_their_parents(fsc_config, scale):
  fsc_config.fsc.logit_scale = scale
  data, method, state = _setup(fsc_config)
  out = method.predict(state, jnp.asarray(data.test.inputs[:20]))
  sub = np.asarray(out["cluster_logits"], np.float64)  # [b, C*s]
  features = np.asarray(out["features"], np.float64)
  centres = np.asarray(state.extra["sub_centres"], np.float64).reshape(-1, features.shape[1])
  np.testing.assert_allclose(sub, scale * features @ centres.T, rtol=1e-4, atol=1e-4)
  relation = method.discovered(state).relation
  assert relation.shape == (data.num_coarse * 3, data.num_coarse)
  np.testing.assert_array_equal(relation.argmax(1), np.repeat(np.arange(data.num_coarse), 3))
  p_sub = np.exp(sub - sub.max(1, keepdims=True))
  p_sub /= p_sub.sum(1, keepdims=True)
  np.testing.assert_allclose(np.exp(np.asarray(out["coarse_logits"])), p_sub @ relation, rtol=1e-5, atol=1e-12)


def test_fine_label_head_predicts_fine_classes_without_clusters(fsc_config):
  fsc_config.fsc.label = "fine"
  data, method, state = _setup(fsc_config)
  out = method.predict(state, jnp.asarray(data.test.inputs[:20]))
  assert out["fine_logits"].shape == (20, data.num_fine)
  assert "cluster_logits" not in out and method.discovered(state) is None
  # log p(coarse) = log of the summed probabilities of its fine children
  p_fine = np.asarray(jax.nn.softmax(out["fine_logits"]), np.float64)
  want = np.stack([p_fine[:, data.taxonomy.fine_to_coarse == c].sum(1) for c in range(data.num_coarse)], 1)
  np.testing.assert_allclose(np.exp(np.asarray(out["coarse_logits"])), want, rtol=1e-5)


@pytest.mark.parametrize("field,value,match", [("head", "arcface", "fsc.head"), ("label", "both", "fsc.label"),
                                               ("assign", "cosine", "fsc.assign"),
                                               ("centre_init", "xavier", "sub-centre init"),
                                               ("num_sub", 0, "fsc.num_sub"), ("logit_scale", 0.0, "fsc.logit_scale")])
def test_bad_settings_are_named(fsc_config, field, value, match):
  setattr(fsc_config.fsc, field, value)
  with pytest.raises(ValueError, match=match):
    build_method(fsc_config, load_dataset(fsc_config.data))


def test_kaiming_bound_is_the_literal_default():
  assert fsc_losses.centre_bound(512, "kaiming_uniform") == pytest.approx(math.sqrt(6 / 512))


MULTI_DEVICE_SCRIPT = multi_device.SYNTHETIC_IMAGES_CONFIG + r"""
config.method = "fsc"
config.fsc.head = "centre"
config.fsc.centre_lambda = 0.01
config.data.views = ("crop_flip",)
""" + multi_device.TRAIN_AND_DUMP_STATE


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  """The moving centres see the whole global batch, whatever the device count."""
  one, eight = multi_device.states_on_one_and_eight(MULTI_DEVICE_SCRIPT, tmp_path)
  assert any("centres" in name for name in one)
  multi_device.assert_states_match(one, eight)
