"""MaskCon as a method: its step against numpy, the momentum update, the queue, its fill, several devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.engine import hooks
from coarse2fine.methods import build_method
from tests import multi_device
from tests.methods import initial_state

QUEUE = 64


@pytest.fixture
def maskcon_config(tiny_config):
  config = tiny_config
  config.method = "maskcon"
  config.data.views = ("none", "none")
  config.maskcon.queue_size = QUEUE
  config.maskcon.embedding_dim = 8
  config.maskcon.momentum = 0.9
  config.maskcon.t2 = 0.2
  config.maskcon.w = 0.7
  config.train.batch_size = 16
  return config


def _setup(config):
  return initial_state.build(config)


def _batch(data, rng, size=16):
  index = rng.permutation(len(data.train))[:size]
  x = data.train.inputs[index]
  noisy = x + 0.1 * rng.normal(size=x.shape).astype(np.float32)  # a key view that differs from the query
  return initial_state.batch(np.stack([x, noisy], 1), data.train.coarse[index], data.train.fine[index])


def _n(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _numpy_target(mode, hp, k, queue, queue_labels, labels):
  """docs/methods/maskcon.md#losses in float64 numpy, one row at a time."""
  rows = []
  for i in range(len(k)):
    mask = (queue_labels == labels[i]).astype(np.float64)
    if mode == "selfcon" or mask.sum() == 0:
      z = np.r_[1.0, np.zeros(len(queue))]
      rows.append(z)
      continue
    if mode == "maskcon":
      s = queue @ k[i] / hp.t2
      soft = mask * np.exp(s - s[mask > 0].max())
      soft /= soft.sum()
      soft /= soft.max()
      w = hp.w
    else:
      soft, w = mask, (1.0 if mode == "supcon" else hp.w)
    z = np.r_[1.0, soft] / (1.0 + soft.sum())
    rows.append(w * z + (1 - w) * np.r_[1.0, np.zeros(len(queue))])
  return np.stack(rows)


def _apply(method, params, batch_stats, x):
  out, updated = method.model().apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                      mutable=["batch_stats"])
  return out, updated.get("batch_stats", batch_stats)


@pytest.mark.parametrize("mode", ["maskcon", "selfcon", "grafit", "supcon", "coins", "supce", "supfine"])
def test_step_loss_momentum_and_enqueue_match_numpy(maskcon_config, mode):
  maskcon_config.maskcon.mode = mode
  data, method, state, mesh = _setup(maskcon_config)
  context = hooks.HookContext(config=maskcon_config, data=data, mesh=mesh, steps_per_epoch=8, host_state={})
  state = method.fill_queue(state, context)  # a full queue: every class is present
  hp = method.hp
  rng = np.random.default_rng(0)
  # A key encoder that differs from the online one, so the momentum update is visible.
  key = state.extra["key"]
  key = key.replace(params=jax.tree.map(lambda a: a + 0.2 * jnp.asarray(rng.normal(size=a.shape), a.dtype),
                                        key.params))
  state = state.replace(extra={"key": key})
  batch = _batch(data, rng)

  loss, aux = method.loss(state.params, state, batch, jax.random.key(0))

  want_key_params = jax.tree.map(lambda k, p: hp.momentum * np.asarray(k) + (1 - hp.momentum) * np.asarray(p),
                                 key.params, state.params)
  online, _ = _apply(method, state.params, state.batch_stats, batch.views[:, 0])
  keyed, key_stats = _apply(method, want_key_params, key.batch_stats, batch.views[:, 1])
  q, k = _n(online["embedding"]), _n(keyed["embedding"])
  queue, queue_labels = np.asarray(key.queue.keys, np.float64), np.asarray(key.queue.labels)
  labels = np.asarray(batch.fine if mode == "supfine" else batch.coarse)
  logits = np.concatenate([np.sum(q * k, -1, keepdims=True), q @ queue.T], -1) / hp.t1
  if mode in ("coins", "supce", "supfine"):
    w = hp.w if mode == "coins" else 1.0
    ce = -np.mean(_log_softmax(np.asarray(online["logits"], np.float64))[np.arange(len(labels)), labels])
    selfcon = -np.mean(_log_softmax(logits)[:, 0])
    want = w * ce + (1 - w) * selfcon
  else:
    targets = _numpy_target(mode, hp, k, queue, queue_labels, labels)
    want = -np.mean(np.sum(targets * _log_softmax(logits), -1))
  assert float(loss) == pytest.approx(want, rel=2e-5, abs=1e-6)

  if mode in ("supce", "supfine"):  # plain cross-entropy: key encoder and queue untouched
    assert aux.extra["key"] is key
    return
  new_key = aux.extra["key"]
  for got, expected in zip(jax.tree.leaves(new_key.params), jax.tree.leaves(want_key_params)):
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
  for got, expected in zip(jax.tree.leaves(new_key.batch_stats), jax.tree.leaves(key_stats)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)  # its own BN stats
  # The batch's keys and labels go in FIFO at the pointer (0 after a full fill), the rest is unchanged.
  b = len(labels)
  np.testing.assert_allclose(np.asarray(new_key.queue.keys[:b]), k, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(new_key.queue.labels[:b]), labels)
  np.testing.assert_array_equal(np.asarray(new_key.queue.keys[b:]), np.asarray(key.queue.keys[b:]))
  assert int(new_key.queue.pointer) == b


def test_fill_queue_writes_key_encoder_outputs_of_a_seeded_permutation(maskcon_config):
  data, method, state, mesh = _setup(maskcon_config)
  context = hooks.HookContext(config=maskcon_config, data=data, mesh=mesh, steps_per_epoch=8, host_state={})
  filled = method.fill_queue(state, context)
  queue = filled.extra["key"].queue
  order = np.random.default_rng([maskcon_config.seed, 0x3A5C]).permutation(len(data.train))[:QUEUE]
  np.testing.assert_array_equal(np.asarray(queue.labels), data.train.coarse[order])
  # Keys are the key encoder's normalised embeddings of those examples (train mode: batch statistics of each
  # batch of 16), fed as the pipeline feeds them (view "none": standardised inputs).
  key = state.extra["key"]
  inputs = lambda rows: (data.train.inputs[rows] - data.mean) / data.std
  want = np.concatenate([_n(_apply(method, key.params, key.batch_stats, inputs(order[i:i + 16]))[0]["embedding"])
                         for i in range(0, QUEUE, 16)])
  np.testing.assert_allclose(np.asarray(queue.keys), want, rtol=1e-4, atol=1e-5)
  assert int(queue.pointer) == 0
  # The fill updates the key encoder's BN statistics, never its parameters or the online net.
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(filled.extra["key"].batch_stats),
                                                       jax.tree.leaves(key.batch_stats)))
  for a, b in zip(jax.tree.leaves(filled.extra["key"].params), jax.tree.leaves(key.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_mode_and_small_queue_are_named(maskcon_config):
  data = load_dataset(maskcon_config.data)
  maskcon_config.maskcon.mode = "moco"
  with pytest.raises(ValueError, match="maskcon.mode"):
    build_method(maskcon_config, data)
  maskcon_config.maskcon.mode = "maskcon"
  maskcon_config.maskcon.queue_size = 8
  with pytest.raises(ValueError, match="queue_size"):
    build_method(maskcon_config, data)


MULTI_DEVICE_SCRIPT = multi_device.SYNTHETIC_IMAGES_CONFIG + r"""
config.method = "maskcon"
config.maskcon.queue_size = 64
config.maskcon.embedding_dim = 8
config.eval.protocols = ("retrieval",)
""" + multi_device.TRAIN_AND_DUMP_STATE


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  """The global batch is enqueued whole and in order, whatever the device count."""
  one, eight = multi_device.states_on_one_and_eight(MULTI_DEVICE_SCRIPT, tmp_path)
  assert any("queue" in name for name in one)
  multi_device.assert_states_match(one, eight, exact=lambda name: "labels" in name or "pointer" in name)
