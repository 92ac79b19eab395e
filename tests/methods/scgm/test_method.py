"""SCGM-G, SCGM-A and ANCOR: losses against numpy transcriptions, gradients, EM on planted sub-classes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.engine import loop
from coarse2fine.methods import build_method
from coarse2fine.methods.scgm import method as scgm
from tests import multi_device
from tests.methods import initial_state


def _n(x):
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _ce(logits, labels):
  logits = np.asarray(logits, np.float64)
  m = logits.max(1, keepdims=True)
  lse = np.log(np.exp(logits - m).sum(1)) + m[:, 0]
  return float(np.mean(lse - logits[np.arange(len(labels)), labels]))


def _ang(u, w):
  return _n(_n(u) - _n(w))


@pytest.fixture
def scgm_config(tiny_config):
  config = tiny_config
  config.method = "scgm_g"
  config.model.embedder = "mlp"
  config.model.embedding_dim = 8
  config.scgm.num_subclasses = 6
  config.contrast.queue_size = 64
  config.contrast.momentum = 0.9
  return config


def _setup(config, batch_size=16):
  data, method, state, mesh = initial_state.build(config)
  rng = np.random.default_rng(0)
  codes = rng.integers(0, config.scgm.num_subclasses, size=len(data.train)).astype(np.int32)
  if "codes" in state.extra:
    state = state.replace(extra={**state.extra, "codes": jnp.asarray(codes), "codes_ready": jnp.ones(())})
  index = rng.permutation(len(data.train))[:batch_size].astype(np.int32)
  x = data.train.inputs[index].astype(np.float32)
  views = np.stack([x, x + 0.1 * rng.normal(size=x.shape).astype(np.float32)], axis=1)
  views = views if config.method in ("scgm_a", "ancor") else x[:, None]
  batch = initial_state.batch(views, data.train.coarse[index], index=index)
  return data, method, state, batch, codes[index]


def _forward(method, variables, x):
  outputs, _ = method.model().apply(variables, x, train=True, mutable=["batch_stats"])
  return jax.tree.map(lambda a: np.asarray(a, np.float64), outputs)


def _query_outputs_and_keys(method, state, batch, m):
  """Online outputs on view 0, and keys of view 1 from the key encoder moved by momentum m.

  The key encoder moves towards the online parameters and the BN statistics the online
  forward just updated (the reference order), then encodes view 1 in train mode.
  """
  out = _forward(method, state.variables, batch.views[:, 0])
  _, updated = method.model().apply(state.variables, batch.views[:, 0], train=True, mutable=["batch_stats"])
  momentum = state.extra["momentum"]
  key_vars = {"params": jax.tree.map(lambda k, o: m * k + (1 - m) * o, momentum.params, state.params),
              "batch_stats": jax.tree.map(lambda k, o: m * k + (1 - m) * o, momentum.batch_stats,
                                          updated["batch_stats"])}
  return out, _forward(method, key_vars, batch.views[:, 1])["embedding"]


@pytest.mark.parametrize("use_pi,ce_scale", [(False, 1.0), (True, 1.0), (False, 10.0)])
def test_scgm_g_loss_matches_numpy(scgm_config, use_pi, ce_scale):
  scgm_config.scgm.use_pi = use_pi
  scgm_config.scgm.ce_scale = ce_scale
  hp = scgm_config.scgm
  _, method, state, batch, z = _setup(scgm_config)
  loss, aux = method.loss(state.params, state, batch, jax.random.PRNGKey(0))
  out = _forward(method, state.variables, batch.views[:, 0])
  v, mu_y, mu_z, y = out["embedding"], out["mu_y"], out["mu_z"], np.asarray(batch.coarse)
  sub = _n(v) @ _n(mu_z).T / hp.sigma2
  if use_pi:  # pi^i_k = softmax_k(cos(mu_z[k], mu_y[y_i]) / sigmabar2)
    b = _n(mu_y) @ _n(mu_z).T / hp.sigmabar2
    sub = sub + np.log(np.exp(b) / np.exp(b).sum(1, keepdims=True))[y]
  l_sub = _ce(sub, z)
  l_rel = np.mean([-np.log(np.exp(_n(mu_y)[y[i]] @ _n(mu_z)[z[i]])
                           / np.exp(_n(mu_y) @ _n(mu_z)[z[i]]).sum()) for i in range(len(y))])
  l_ce = _ce(ce_scale * (np.maximum(_n(v), 0) @ mu_y.T), y)  # mu_y not normalised, no bias
  assert float(loss) == pytest.approx(hp.gamma * (l_sub + l_rel) + l_ce, rel=1e-5)
  assert float(aux.metrics["train/subclass"]) == pytest.approx(l_sub, rel=1e-5)
  predicted = method.predict(state, batch.views[:, 0])["coarse_logits"]  # eval mode: the running statistics
  v_eval = np.asarray(method.predict(state, batch.views[:, 0])["embedding"], np.float64)
  np.testing.assert_allclose(predicted, ce_scale * (np.maximum(_n(v_eval), 0) @ mu_y.T), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("detach_means,ce_scale,infonce_weight", [(True, 1.0, 1.0), (False, 1.0, 1.0),
                                                                     (True, 3.0, 1.0), (True, 1.0, 0.25)])
def test_scgm_a_loss_matches_numpy(scgm_config, detach_means, ce_scale, infonce_weight):
  scgm_config.method = "scgm_a"
  scgm_config.data.views = ("none", "none")
  scgm_config.scgm.detach_means = detach_means
  scgm_config.scgm.ce_scale = ce_scale
  scgm_config.scgm.infonce_weight = infonce_weight
  hp, m, temperature = scgm_config.scgm, scgm_config.contrast.momentum, scgm_config.contrast.temperature
  _, method, state, batch, z = _setup(scgm_config)
  loss, aux = method.loss(state.params, state, batch, jax.random.PRNGKey(0))

  out, k = _query_outputs_and_keys(method, state, batch, m)
  momentum = state.extra["momentum"]
  v, mu_y, mu_z, y = out["embedding"], out["mu_y"], out["mu_z"], np.asarray(batch.coarse)
  queue = np.asarray(momentum.queues.keys, np.float64)
  l1 = _ce(ce_scale * (np.maximum(_n(v), 0) @ mu_y.T), y)
  l2 = []
  for i in range(len(y)):
    w = mu_y[y[i]]
    logits = np.concatenate([[_ang(v[i], w) @ _ang(k[i], w)], _ang(queue[y[i]], w) @ _ang(v[i], w)]) / temperature
    l2.append(_ce(logits[None], [0]))
  l3 = _ce(_n(v) @ _n(mu_z).T / hp.sigma2, z)
  l4 = _ce(_n(mu_z)[z] @ _n(mu_y).T / hp.sigmabar2, y)
  assert float(loss) == pytest.approx(l1 + infonce_weight * np.mean(l2) + hp.gamma * (l3 + l4), rel=1e-5)
  # The batch's keys went into their classes' queues, in batch order.
  new_queues = aux.extra["momentum"].queues
  for c in range(3):
    members = np.flatnonzero(y == c)
    np.testing.assert_allclose(np.asarray(new_queues.keys)[c, :len(members)], k[members], rtol=2e-4, atol=1e-5)
    assert int(new_queues.pointer[c]) == len(members)


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_scgm_a_reference_code_never_trains_the_subclass_means(scgm_config):
  scgm_config.method = "scgm_a"
  scgm_config.data.views = ("none", "none")
  grads = {}
  for detach in (True, False):
    scgm_config.scgm.detach_means = detach
    _, method, state, batch, _ = _setup(scgm_config)
    grads[detach] = jax.grad(lambda p: method.loss(p, state, batch, jax.random.PRNGKey(0))[0])(state.params)
  assert np.abs(np.asarray(grads[True]["mu_z"])).max() == 0.0  # [C]: mu_z gets no gradient, L4 constant
  assert np.abs(np.asarray(grads[False]["mu_z"])).max() > 0.0  # paper: the means are learnt
  assert np.abs(np.asarray(grads[True]["mu_y"])).max() > 0.0  # mu_y still learns through L1


def test_scgm_g_trains_both_means(scgm_config):
  _, method, state, batch, _ = _setup(scgm_config)
  grads = jax.grad(lambda p: method.loss(p, state, batch, jax.random.PRNGKey(0))[0])(state.params)
  assert np.abs(np.asarray(grads["mu_z"])).max() > 0 and np.abs(np.asarray(grads["mu_y"])).max() > 0


def test_means_are_glorot_uniform(scgm_config):
  scgm_config.scgm.num_subclasses = 400
  scgm_config.model.embedding_dim = 64
  _, _, state, _, _ = _setup(scgm_config)
  for name, rows in (("mu_y", 3), ("mu_z", 400)):
    values = np.asarray(state.params[name])
    bound = np.sqrt(6.0 / (rows + 64))
    assert values.shape == (rows, 64)
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound


def test_ancor_loss_matches_numpy(scgm_config):
  scgm_config.method = "ancor"
  scgm_config.data.views = ("none", "none")
  m, temperature = scgm_config.contrast.momentum, scgm_config.contrast.temperature
  _, method, state, batch, _ = _setup(scgm_config)
  loss, _ = method.loss(state.params, state, batch, jax.random.PRNGKey(0))
  out, k = _query_outputs_and_keys(method, state, batch, m)
  momentum = state.extra["momentum"]
  v, y = out["embedding"], np.asarray(batch.coarse)
  w_all = np.asarray(state.params["classifier"]["fc"]["kernel"], np.float64).T
  queue = np.asarray(momentum.queues.keys, np.float64)
  l_nce = np.mean([_ce((np.concatenate([[_ang(v[i], w_all[y[i]]) @ _ang(k[i], w_all[y[i]])],
                                        _ang(queue[y[i]], w_all[y[i]]) @ _ang(v[i], w_all[y[i]])])
                        / temperature)[None], [0]) for i in range(len(y))])
  assert float(loss) == pytest.approx(_ce(out["logits"], y) + l_nce, rel=1e-5)


def test_relation_puts_each_subclass_under_its_closest_superclass():
  rng = np.random.default_rng(0)
  mu_y, mu_z = rng.normal(size=(3, 5)), rng.normal(size=(7, 5))
  relation = scgm.subclass_relation(mu_y, mu_z)
  for k in range(7):
    cosines = [_n(mu_z[k]) @ _n(mu_y[c]) for c in range(3)]
    assert relation[k].tolist() == [int(c == np.argmax(cosines)) for c in range(3)]


@pytest.mark.parametrize("field,value,message", [
    ("data.views", ("none",), "takes 2 view"),
    ("contrast.queue_size", 16, "smaller than the batch"),
])
def test_scgm_a_config_errors(scgm_config, field, value, message):
  scgm_config.method = "scgm_a"
  scgm_config.data.views = ("none", "none")
  group, key = field.split(".")
  setattr(scgm_config[group], key, value)
  with pytest.raises(ValueError, match=message):
    build_method(scgm_config, load_dataset(scgm_config.data))


@pytest.mark.parametrize("method", ["scgm_g", "scgm_a"])
def test_em_recovers_planted_subclasses(scgm_config, tmp_path, method):
  """On a synthetic hierarchy of 3 x 3 planted fine classes, the discovered sub-classes are the fine classes."""
  config = scgm_config
  config.method = method
  config.data.views = ("none",) if method == "scgm_g" else ("none", "none")
  config.data.synthetic.num_train = 1024
  config.model.encoder_args.hidden_sizes = (64, 64)
  config.model.embedding_dim = 16
  config.scgm.num_subclasses = 9
  config.scgm.estep_every_epochs = 1
  config.contrast.queue_size = 128
  config.contrast.momentum = 0.99
  config.train.num_epochs = 6
  config.train.batch_size = 64
  config.train.log_every_steps = 16
  config.checkpoint.every_steps = 1000
  config.eval.protocols = ("classification", "clusters")
  metrics = loop.train_and_evaluate(config, str(tmp_path))["metrics"]
  assert metrics["discovery/nmi"] >= 90.0
  assert metrics["test/coarse_top1"] >= 95.0
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  esteps = [l for l in lines if "estep/nmi" in l]
  assert [l["step"] for l in esteps] == [16 * e for e in range(6)]  # before every epoch
  assert esteps[-1]["estep/nmi"] >= 90.0 and esteps[-1]["estep/used_subclasses"] == 9  # codes on train


MULTI_DEVICE_SCRIPT = multi_device.SYNTHETIC_IMAGES_CONFIG + r"""
config.method = sys.argv[2]
config.model.embedder = "mlp"
config.model.embedding_dim = 8
config.scgm.num_subclasses = 6
config.scgm.estep_every_epochs = 1
config.contrast.queue_size = 48
config.contrast.momentum = 0.9
""" + multi_device.TRAIN_AND_DUMP_STATE


@pytest.mark.slow
@pytest.mark.parametrize("method", ["scgm_a", "ancor"])
def test_eight_devices_match_one_device(tmp_path, method):
  one, eight = multi_device.states_on_one_and_eight(MULTI_DEVICE_SCRIPT, tmp_path, [method])
  assert any("queues" in name for name in one) and any("codes" in name for name in one) == (method == "scgm_a")
  multi_device.assert_states_match(one, eight, exact=lambda name: name.endswith((".pointer", "['codes']")))


def test_warmup_trains_on_the_coarse_loss_alone_until_the_first_estep(scgm_config, tmp_path):
  scgm_config.scgm.warmup_epochs = 1
  scgm_config.scgm.estep_every_epochs = 1
  scgm_config.train.log_every_steps = 1
  results = loop.train_and_evaluate(scgm_config, str(tmp_path))  # 2 epochs of 8 steps
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  steps = {l["step"]: l for l in lines if "train/loss" in l}
  for step in range(1, 9):  # before the first E-step (after epoch 1) the loss is L_ce
    assert steps[step]["train/loss"] == pytest.approx(steps[step]["train/ce"], rel=1e-6)
  gamma = scgm_config.scgm.gamma
  for step in range(9, 17):
    expected = steps[step]["train/ce"] + gamma * (steps[step]["train/subclass"] + steps[step]["train/relation"])
    assert steps[step]["train/loss"] == pytest.approx(expected, rel=1e-5)
  estep_lines = [l for l in lines if "estep/iterations" in l]
  assert [l["step"] for l in estep_lines] == [8]  # none after the last step
  assert results["split"] == "test"
