"""MoCo v3's loss and momentum schedule against float64 numpy transcriptions of the paper's equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.moco import losses


def _n(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ctr(q, k, tau):
  """2 tau * mean_i -log( exp(q_i.k_i / tau) / sum_j exp(q_i.k_j / tau) ), one row at a time."""
  q, k = _n(q), _n(k)
  total = 0.0
  for i in range(len(q)):
    s = np.array([q[i] @ k[j] for j in range(len(k))]) / tau
    total += -(s[i] - np.log(np.sum(np.exp(s))))
  return 2 * tau * total / len(q)


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_contrastive_and_symmetric_losses_match_numpy(tau):
  rng = np.random.default_rng(0)
  q1, q2, k1, k2 = (rng.normal(size=(6, 5)).astype(np.float32) for _ in range(4))
  assert float(losses.contrastive_loss(q1, k2, tau)) == pytest.approx(_ctr(q1, k2, tau), rel=1e-5)
  want = _ctr(q1, k2, tau) + _ctr(q2, k1, tau)
  assert float(losses.symmetric_loss(q1, q2, k1, k2, tau)) == pytest.approx(want, rel=1e-5)
  # Scaled inputs give the same loss (both sides are normalised); the keys get no gradient.
  assert float(losses.contrastive_loss(3 * q1, 0.5 * k2, tau)) == pytest.approx(_ctr(q1, k2, tau), rel=1e-5)
  grad_k = jax.grad(lambda k: losses.contrastive_loss(jnp.asarray(q1), k, tau))(jnp.asarray(k2))
  np.testing.assert_array_equal(np.asarray(grad_k), 0.0)


def test_loss_gradient_matches_finite_differences():
  rng = np.random.default_rng(1)
  q, k = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  grad = np.asarray(jax.grad(lambda x: losses.contrastive_loss(x, jnp.asarray(k, jnp.float32), 0.5))(
      jnp.asarray(q, jnp.float32)))
  eps, numeric = 1e-5, np.zeros_like(q)
  for idx in np.ndindex(q.shape):
    up, down = q.copy(), q.copy()
    up[idx] += eps
    down[idx] -= eps
    numeric[idx] = (_ctr(up, k, 0.5) - _ctr(down, k, 0.5)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)


def test_momentum_schedule_values():
  m0, total = 0.99, 100
  at = lambda step, schedule="cosine": float(losses.momentum_at(jnp.int32(step), total, m0, schedule))
  assert at(0) == pytest.approx(0.99)
  assert at(50) == pytest.approx(0.995)  # half-way: (1 + m0) / 2
  assert at(100) == pytest.approx(1.0)
  assert at(250) == pytest.approx(1.0)  # past the end it stays at 1
  for step in (10, 25, 75, 90):
    assert at(step) == pytest.approx(1 - 0.01 * (1 + np.cos(np.pi * step / 100)) / 2, abs=1e-7)
  assert [at(s) for s in range(0, 101, 10)] == sorted(at(s) for s in range(0, 101, 10))  # rises monotonically
  assert at(0, "constant") == at(70, "constant") == pytest.approx(0.99)
  with pytest.raises(ValueError, match="moco.momentum_schedule"):
    losses.momentum_at(jnp.int32(0), total, m0, "linear")
