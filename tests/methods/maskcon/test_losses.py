"""MaskCon's targets, losses and labelled queue against per-example numpy transcriptions of
docs/methods/maskcon.md#losses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.maskcon import losses as ml

B, NQ, E, C = 5, 12, 4, 3


def _normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _problem(seed=0):
  """Normalised q [B, E], k [B, E], queue [NQ, E]; queue labels with unfilled (-1) slots; every batch class queued."""
  rng = np.random.default_rng(seed)
  q = _normalize(rng.normal(size=(B, E)))
  k = _normalize(rng.normal(size=(B, E)))
  queue = _normalize(rng.normal(size=(NQ, E)))
  queue_labels = np.r_[0, 1, 2, -1, rng.integers(-1, C, NQ - 4)].astype(np.int32)
  labels = np.r_[0, 1, 2, rng.integers(0, C, B - 3)].astype(np.int32)
  return q, k, queue, queue_labels, labels


def _f32(*arrays):
  return [jnp.asarray(a, jnp.float32) if a.dtype.kind == "f" else jnp.asarray(a) for a in arrays]


def _log_softmax_row(x):
  m = max(x)
  lse = m + math.log(sum(math.exp(v - m) for v in x))
  return [v - lse for v in x]


def _logits_reference(q, k, queue, t1):
  out = np.zeros((len(q), 1 + len(queue)))
  for i in range(len(q)):
    out[i, 0] = sum(q[i, d] * k[i, d] for d in range(q.shape[1])) / t1
    for j in range(len(queue)):
      out[i, 1 + j] = sum(q[i, d] * queue[j, d] for d in range(q.shape[1])) / t1
  return out


def _maskcon_reference(k, queue, queue_labels, labels, t2, w):
  """docs/methods/maskcon.md#maskcon-target literally.

  Masked softmax, divide by its max, prepend 1, normalise, mix with e_0.
  """
  nq = len(queue)
  out = np.zeros((len(k), 1 + nq))
  for i in range(len(k)):
    mask = [1.0 if queue_labels[j] == labels[i] else 0.0 for j in range(nq)]
    if sum(mask) == 0:
      z = [1.0] + [0.0] * nq  # the [R] guard
    else:
      s = [float(np.dot(k[i], queue[j])) / t2 for j in range(nq)]
      denom = sum(mask[j] * math.exp(s[j]) for j in range(nq))
      zp = [mask[j] * math.exp(s[j]) / denom for j in range(nq)]
      top = max(zp)
      zp = [v / top for v in zp]
      total = 1.0 + sum(zp)
      z = [1.0 / total] + [v / total for v in zp]
    for j in range(1 + nq):
      out[i, j] = w * z[j] + (1.0 - w) * (1.0 if j == 0 else 0.0)
  return out


def _grafit_reference(queue_labels, labels, w):
  nq = len(queue_labels)
  out = np.zeros((len(labels), 1 + nq))
  for i in range(len(labels)):
    mask = [1.0 if queue_labels[j] == labels[i] else 0.0 for j in range(nq)]
    zsup = [1.0] + mask
    total = sum(zsup)
    for j in range(1 + nq):
      out[i, j] = w * zsup[j] / total + (1.0 - w) * (1.0 if j == 0 else 0.0)
  return out


def _soft_ce_reference(logits, targets):
  loss = 0.0
  for i in range(len(logits)):
    logp = _log_softmax_row(list(logits[i]))
    loss -= sum(targets[i, j] * logp[j] for j in range(len(logp))) / len(logits)
  return loss


def test_contrastive_logits_match_numpy():
  q, k, queue, _, _ = _problem()
  out = ml.contrastive_logits(*_f32(q, k, queue), 0.1)
  assert out.shape == (B, 1 + NQ)
  np.testing.assert_allclose(np.asarray(out), _logits_reference(q, k, queue, 0.1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t2", [0.05, 0.5])
@pytest.mark.parametrize("w", [1.0, 0.5, 0.0])
def test_maskcon_targets_match_numpy(t2, w):
  _, k, queue, queue_labels, labels = _problem(1)
  out = np.asarray(ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), t2, w))
  expected = _maskcon_reference(k, queue, queue_labels, labels, t2, w)
  assert out.dtype == np.float32 and out.shape == (B, 1 + NQ)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)


def test_maskcon_targets_properties():
  """w = 1: the positive and the nearest same-class queue key share the top weight; other classes get 0."""
  _, k, queue, queue_labels, labels = _problem(2)
  out = np.asarray(ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), 0.05, 1.0))
  for i in range(B):
    same = np.flatnonzero(queue_labels == labels[i])
    nearest = same[np.argmax(queue[same] @ k[i])]
    np.testing.assert_allclose(out[i, 1 + nearest], out[i, 0], rtol=1e-6)
    assert np.all(out[i, 1:] <= out[i, 0] * (1 + 1e-6))
    np.testing.assert_array_equal(out[i, 1:][queue_labels != labels[i]], 0.0)
    assert np.all(out[i, 1:][same] > 0)


def test_maskcon_targets_hand_computed_temperature():
  """Two same-class keys at cosines a > b: z' = [1, exp((b - a) / T2)], z = [1, 1, exp((b - a)/T2)] / sum."""
  a, b, t2 = 0.8, 0.2, 0.25
  k = np.array([[1.0, 0.0]])
  queue = np.array([[a, math.sqrt(1 - a * a)], [b, math.sqrt(1 - b * b)], [-1.0, 0.0]])
  queue_labels, labels = np.array([4, 4, 5], np.int32), np.array([4], np.int32)
  r = math.exp((b - a) / t2)
  expected = np.array([[1.0, 1.0, r, 0.0]]) / (2.0 + r)
  out = ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), t2, 1.0)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5)
  mixed = ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), t2, 0.3)
  np.testing.assert_allclose(np.asarray(mixed), 0.3 * expected + 0.7 * np.array([[1.0, 0, 0, 0]]), rtol=1e-5)


def test_maskcon_targets_w_mixing_is_linear():
  _, k, queue, queue_labels, labels = _problem(3)
  args = _f32(k, queue, queue_labels, labels)
  full = np.asarray(ml.maskcon_targets(*args, 0.05, 1.0))
  e_0 = np.asarray(ml.selfcon_targets(B, NQ))
  np.testing.assert_allclose(np.asarray(ml.maskcon_targets(*args, 0.05, 0.3)), 0.3 * full + 0.7 * e_0, rtol=1e-6,
                             atol=1e-7)


def test_empty_class_guard():
  _, k, queue, queue_labels, _ = _problem(4)
  labels = np.array([7, 0, 7, 1, 2], np.int32)  # class 7 never queued
  out = np.asarray(ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), 0.05, 0.8))
  assert np.all(np.isfinite(out))
  e_0 = np.eye(1, 1 + NQ)[0]
  np.testing.assert_array_equal(out[0], e_0)
  np.testing.assert_array_equal(out[2], e_0)
  assert out[1, 0] < 1.0  # the others still spread mass
  np.testing.assert_allclose(out, _maskcon_reference(k, queue, queue_labels, labels, 0.05, 0.8), rtol=1e-5, atol=1e-6)
  with jax.debug_nans(True):  # not even an intermediate NaN (-inf - -inf) that a where() later hides
    ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), 0.05, 0.8).block_until_ready()  # eager: op by op
  # A fresh queue (all labels -1) matches nothing: every row is e_0, and the loss gradient is finite.
  fresh = ml.init_labelled_queue(jax.random.PRNGKey(0), NQ, E)
  q, k_j = _f32(_problem(4)[0], k)
  targets = ml.maskcon_targets(k_j, fresh.keys, fresh.labels, jnp.asarray(labels), 0.05, 1.0)
  np.testing.assert_array_equal(np.asarray(targets), np.tile(e_0, (B, 1)))
  grad = jax.grad(lambda q: ml.soft_cross_entropy(ml.contrastive_logits(q, k_j, fresh.keys, 0.1), targets))(q)
  assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)


@pytest.mark.parametrize("w", [1.0, 0.8, 0.0])
def test_grafit_targets_match_numpy(w):
  _, _, _, queue_labels, labels = _problem(5)
  labels = labels.copy()
  labels[-1] = 9  # an absent class gets e_0 here too
  out = np.asarray(ml.grafit_targets(jnp.asarray(queue_labels), jnp.asarray(labels), w))
  np.testing.assert_allclose(out, _grafit_reference(queue_labels, labels, w), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)


def test_supcon_is_grafit_w1_and_grafit_loss_is_the_mixture_of_two_ces():
  q, k, queue, queue_labels, labels = _problem(6)
  logits = ml.contrastive_logits(*_f32(q, k, queue), 0.1)
  supcon = np.asarray(ml.grafit_targets(jnp.asarray(queue_labels), jnp.asarray(labels), 1.0))
  for i in range(B):  # SupCon: uniform over the positive and the same-class queue keys
    members = [0] + [1 + j for j in range(NQ) if queue_labels[j] == labels[i]]
    for j in range(1 + NQ):
      assert supcon[i, j] == pytest.approx(1.0 / len(members) if j in members else 0.0, rel=1e-6)
  w = 0.8
  zsup = _grafit_reference(queue_labels, labels, 1.0)
  e_0 = _grafit_reference(queue_labels, labels, 0.0)
  logits64 = np.asarray(logits, np.float64)
  expected = w * _soft_ce_reference(logits64, zsup) + (1 - w) * _soft_ce_reference(logits64, e_0)
  grafit = ml.grafit_targets(jnp.asarray(queue_labels), jnp.asarray(labels), w)
  assert float(ml.soft_cross_entropy(logits, grafit)) == pytest.approx(expected, rel=1e-5)


def test_selfcon_is_maskcon_w0_and_infonce():
  q, k, queue, queue_labels, labels = _problem(7)
  e_0 = np.asarray(ml.selfcon_targets(B, NQ))
  assert e_0.shape == (B, 1 + NQ) and e_0.dtype == np.float32
  np.testing.assert_array_equal(e_0, np.tile(np.eye(1, 1 + NQ)[0], (B, 1)))
  np.testing.assert_array_equal(np.asarray(ml.maskcon_targets(*_f32(k, queue, queue_labels, labels), 0.05, 0.0)), e_0)
  logits = ml.contrastive_logits(*_f32(q, k, queue), 0.1)
  ref = _logits_reference(q, k, queue, 0.1)
  infonce = sum(-_log_softmax_row(list(ref[i]))[0] for i in range(B)) / B
  assert float(ml.selfcon_loss(logits)) == pytest.approx(infonce, rel=1e-5)
  assert float(ml.soft_cross_entropy(logits, jnp.asarray(e_0))) == pytest.approx(infonce, rel=1e-5)


def test_grafit_is_maskcon_at_large_t2():
  _, k, queue, queue_labels, labels = _problem(8)
  args = _f32(k, queue, queue_labels, labels)
  grafit = np.asarray(ml.grafit_targets(args[2], args[3], 0.7))
  np.testing.assert_allclose(np.asarray(ml.maskcon_targets(*args, 1e4, 0.7)), grafit, rtol=1e-3, atol=1e-4)
  assert not np.allclose(np.asarray(ml.maskcon_targets(*args, 0.05, 0.7)), grafit, rtol=1e-3, atol=1e-4)


def test_soft_cross_entropy_matches_numpy():
  rng = np.random.default_rng(9)
  logits = rng.normal(size=(B, 1 + NQ)) * 3
  targets = rng.random(size=(B, 1 + NQ))
  targets /= targets.sum(-1, keepdims=True)
  out = ml.soft_cross_entropy(*_f32(logits, targets))
  assert float(out) == pytest.approx(_soft_ce_reference(logits, targets), rel=1e-5)


@pytest.mark.parametrize("w", [0.5, 1.0, 0.0])
def test_coins_and_supce_match_numpy(w):
  q, k, queue, _, labels = _problem(10)
  rng = np.random.default_rng(10)
  class_logits = rng.normal(size=(B, C)) * 2
  logits = ml.contrastive_logits(*_f32(q, k, queue), 0.1)
  ref = _logits_reference(q, k, queue, 0.1)
  ce = sum(-_log_softmax_row(list(class_logits[i]))[labels[i]] for i in range(B)) / B
  selfcon = sum(-_log_softmax_row(list(ref[i]))[0] for i in range(B)) / B
  out = ml.coins_loss(logits, jnp.asarray(class_logits, jnp.float32), jnp.asarray(labels), w)
  assert float(out) == pytest.approx(w * ce + (1 - w) * selfcon, rel=1e-5)
  if w == 1.0:  # SupCE: the plain coarse cross-entropy, the contrastive term has no weight
    assert float(out) == pytest.approx(ce, rel=1e-5)


def test_init_labelled_queue():
  queue = ml.init_labelled_queue(jax.random.PRNGKey(3), NQ, E)
  assert queue.keys.shape == (NQ, E) and queue.keys.dtype == jnp.float32 and queue.size == NQ
  np.testing.assert_allclose(np.linalg.norm(np.asarray(queue.keys), axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(queue.labels), -1)
  assert queue.labels.dtype == jnp.int32 and queue.pointer.dtype == jnp.int32 and queue.pointer.shape == ()
  assert int(queue.pointer) == 0


@pytest.mark.parametrize("jit", [False, True])
def test_enqueue_is_fifo_with_wraparound(jit):
  nq, batch = 8, 3
  queue = ml.init_labelled_queue(jax.random.PRNGKey(0), nq, E)
  keys, labels, pointer = np.asarray(queue.keys).copy(), np.asarray(queue.labels).copy(), 0
  push = jax.jit(ml.enqueue) if jit else ml.enqueue
  rng = np.random.default_rng(11)
  for step in range(6):  # 18 rows into 8 slots: the pointer wraps twice, mid-batch
    batch_keys = _normalize(rng.normal(size=(batch, E))).astype(np.float32)
    batch_labels = rng.integers(0, C, batch).astype(np.int32) + 10 * step
    queue = push(queue, jnp.asarray(batch_keys), jnp.asarray(batch_labels))
    for b in range(batch):  # numpy ring buffer, one row at a time
      keys[pointer], labels[pointer] = batch_keys[b], batch_labels[b]
      pointer = (pointer + 1) % nq
    np.testing.assert_array_equal(np.asarray(queue.keys), keys)
    np.testing.assert_array_equal(np.asarray(queue.labels), labels)
    assert int(queue.pointer) == pointer
  assert pointer == 18 % nq


def test_enqueue_rejects_batch_larger_than_queue():
  queue = ml.init_labelled_queue(jax.random.PRNGKey(0), 4, E)
  with pytest.raises(ValueError):
    ml.enqueue(queue, jnp.zeros((5, E)), jnp.zeros((5,), jnp.int32))


def test_everything_under_jit():
  q, k, queue, queue_labels, labels = _problem(12)
  q, k, queue, queue_labels, labels = _f32(q, k, queue, queue_labels, labels)
  state = ml.LabelledQueue(keys=queue, labels=queue_labels, pointer=jnp.asarray(7, jnp.int32))
  class_logits = jnp.asarray(np.random.default_rng(12).normal(size=(B, C)), jnp.float32)

  def step(q, k, state, labels, w):
    logits = ml.contrastive_logits(q, k, state.keys, 0.1)
    maskcon = ml.soft_cross_entropy(logits, ml.maskcon_targets(k, state.keys, state.labels, labels, 0.05, w))
    grafit = ml.soft_cross_entropy(logits, ml.grafit_targets(state.labels, labels, w))
    selfcon = ml.soft_cross_entropy(logits, ml.selfcon_targets(q.shape[0], state.size))
    coins = ml.coins_loss(logits, class_logits, labels, w)
    return (maskcon, grafit, selfcon, coins), ml.enqueue(state, k, labels)

  eager_losses, eager_state = step(q, k, state, labels, 0.5)
  jit_losses, jit_state = jax.jit(step)(q, k, state, labels, jnp.float32(0.5))  # w traced
  np.testing.assert_allclose(np.asarray(jit_losses), np.asarray(eager_losses), rtol=1e-5)
  assert all(np.isfinite(np.asarray(jit_losses)))
  np.testing.assert_array_equal(np.asarray(jit_state.keys), np.asarray(eager_state.keys))
  np.testing.assert_array_equal(np.asarray(jit_state.labels), np.asarray(eager_state.labels))
  assert int(jit_state.pointer) == (7 + B) % NQ
  # The MaskCon loss is the numpy one built from the queue before the enqueue.
  logits = ml.contrastive_logits(q, k, state.keys, 0.1)
  ref = _maskcon_reference(*[np.asarray(a, np.float64) for a in (k, queue)], np.asarray(queue_labels),
                           np.asarray(labels), 0.05, 0.5)
  assert float(jit_losses[0]) == pytest.approx(_soft_ce_reference(np.asarray(logits, np.float64), ref), rel=1e-5)
  grad = jax.jit(jax.grad(lambda q: step(q, k, state, labels, 0.5)[0][0]))(q)
  assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)
