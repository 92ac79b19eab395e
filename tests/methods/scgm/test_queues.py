"""Per-super-class queues, momentum updates and the angular InfoNCE against numpy transcriptions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.common.momentum import momentum_update
from coarse2fine.methods.scgm import queues as sq


def _normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _angular(u, w):
  return _normalize(_normalize(u) - _normalize(w))


def _enqueue_reference(keys, pointer, batch_keys, labels):
  """The reference semantics, one key at a time: write at the class pointer, advance, wrap."""
  keys, pointer = keys.copy(), pointer.copy()
  size = keys.shape[1]
  for key, c in zip(batch_keys, labels):
    keys[c, pointer[c]] = key
    pointer[c] = (pointer[c] + 1) % size
  return keys, pointer


def test_enqueue_is_fifo_per_class_with_wraparound():
  rng = np.random.default_rng(0)
  queues = sq.QueueState(keys=jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32),
                         pointer=jnp.asarray([0, 3, 4], jnp.int32))
  keys, pointer = np.asarray(queues.keys), np.asarray(queues.pointer)
  for step in range(4):  # several batches, so pointers wrap around more than once
    labels = rng.integers(0, 3, size=5)
    batch_keys = rng.normal(size=(5, 4)).astype(np.float32)
    queues = sq.enqueue(queues, jnp.asarray(batch_keys), jnp.asarray(labels, jnp.int32))
    keys, pointer = _enqueue_reference(keys, pointer, batch_keys, labels)
    np.testing.assert_array_equal(np.asarray(queues.pointer), pointer)
    np.testing.assert_array_equal(np.asarray(queues.keys), keys)


def test_init_queues_are_unit_vectors():
  queues = sq.init_queues(jax.random.PRNGKey(0), 2, 7, 5)
  assert queues.keys.shape == (2, 7, 5)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(queues.keys), axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(queues.pointer), [0, 0])


def test_momentum_update():
  key = {"a": jnp.ones(3), "b": {"c": jnp.zeros(2)}}
  online = {"a": jnp.full(3, 3.0), "b": {"c": jnp.full(2, 10.0)}}
  out = momentum_update(key, online, 0.9)
  np.testing.assert_allclose(np.asarray(out["a"]), 0.9 * 1 + 0.1 * 3)
  np.testing.assert_allclose(np.asarray(out["b"]["c"]), 1.0)


def test_angular_normalisation_matches_numpy():
  rng = np.random.default_rng(1)
  u, w = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
  np.testing.assert_allclose(np.asarray(sq.angular(jnp.asarray(u), jnp.asarray(w))), _angular(u, w), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("num_classes", [1, 3])
def test_within_superclass_infonce_matches_numpy(num_classes):
  rng = np.random.default_rng(2)
  b, size, e, temperature = 6, 8, 5, 0.2
  query, key = rng.normal(size=(b, e)), rng.normal(size=(b, e))
  labels = rng.integers(0, num_classes, size=b)
  reference = rng.normal(size=(num_classes, e))
  queue = rng.normal(size=(num_classes, size, e))
  expected = []
  for i in range(b):
    w = reference[labels[i]]
    q, k = _angular(query[i], w), _angular(key[i], w)
    negatives = _angular(queue[labels[i]], w)  # only the example's own super-class
    logits = np.concatenate([[q @ k], negatives @ q]) / temperature
    expected.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[0])
  queues = sq.QueueState(keys=jnp.asarray(queue, jnp.float32), pointer=jnp.zeros(num_classes, jnp.int32))
  got = sq.within_superclass_infonce(jnp.asarray(query, jnp.float32), jnp.asarray(key, jnp.float32),
                                     jnp.asarray(labels, jnp.int32), jnp.asarray(reference, jnp.float32), queues,
                                     temperature)
  assert float(got) == pytest.approx(np.mean(expected), rel=1e-5)


def test_infonce_gradient_reaches_only_the_query():
  rng = np.random.default_rng(3)
  args = [jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(4, 3), (4, 3), (2, 3)]]
  queues = sq.QueueState(keys=jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32), pointer=jnp.zeros(2, jnp.int32))
  labels = jnp.asarray([0, 1, 1, 0])
  grads = jax.grad(lambda q, k, ref: sq.within_superclass_infonce(q, k, labels, ref, queues, 0.2),
                   argnums=(0, 1, 2))(*args)
  assert np.abs(np.asarray(grads[0])).sum() > 0
  assert np.abs(np.asarray(grads[1])).sum() == 0 and np.abs(np.asarray(grads[2])).sum() == 0
