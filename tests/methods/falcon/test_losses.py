"""FALCON's losses against a per-example numpy transcription of docs/methods/falcon.md#classifier-losses
and docs/methods/falcon.md#schedules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.falcon import losses as falcon_losses

B, K, C, M_NB, T = 6, 7, 3, 4, 0.9


def _log_softmax(x):
  x = x - x.max()
  return x - np.log(np.exp(x).sum())


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  relation = np.zeros((K, C), bool)
  relation[np.arange(K), np.r_[0, 1, 2, rng.integers(0, C, K - 3)]] = True  # every column used
  coarse = rng.integers(0, C, B)
  logits = rng.normal(size=(B, K)) * 2
  teacher = rng.normal(size=(B, K)) * 2
  nb = np.exp(rng.normal(size=(B, M_NB, K)))
  nb /= nb.sum(-1, keepdims=True)
  return relation, coarse, logits, teacher, nb


def _reference(relation, coarse, logits, teacher, nb, tau):
  """The equations of docs/methods/falcon.md#classifier-losses, one example at a time, float64."""
  l_coarse, l_cons, l_conf, probs = 0.0, 0.0, 0.0, []
  for i in range(B):
    kids = np.flatnonzero(relation[:, coarse[i]])
    logp = _log_softmax(logits[i])
    p = np.exp(logp)
    probs.append(p)
    l_coarse += -(np.log(np.exp(logits[i][kids]).sum()) - np.log(np.exp(logits[i]).sum())) / B
    for j in range(M_NB):
      l_cons += -np.log(p @ nb[i, j]) / (M_NB * B)
    qsoft = np.zeros(K)
    e = np.exp(teacher[i][kids] / T)
    qsoft[kids] = e / e.sum()
    qhard = np.eye(K)[np.argmax(qsoft)]
    t = tau * qsoft + (1 - tau) * qhard
    l_conf += -(t * logp).sum() / B
  pbar = np.mean(probs, axis=0)
  l_reg = math.log(K) + (pbar * np.log(pbar)).sum()
  return l_coarse, l_cons, l_conf, l_reg


@pytest.mark.parametrize("tau", [1.0, 0.3, 0.0])
def test_losses_match_the_equations(tau):
  relation, coarse, logits, teacher, nb = _problem()
  want = _reference(relation, coarse, logits, teacher, nb, tau)
  allowed = falcon_losses.allowed_children(jnp.asarray(relation)[None], jnp.zeros(B, jnp.int32), jnp.asarray(coarse))
  assert allowed.shape == (B, K)
  lg = jnp.asarray(logits, jnp.float32)
  probs = jax.nn.softmax(lg)
  got = (falcon_losses.coarse_loss(lg, allowed),
         falcon_losses.neighbour_consistency_loss(jnp.log(probs), jnp.log(jnp.asarray(nb, jnp.float32))),
         falcon_losses.confidence_loss(lg, falcon_losses.confidence_targets(
             jnp.asarray(teacher, jnp.float32), allowed, jnp.float32(tau), T)),
         falcon_losses.entropy_regulariser(probs))
  np.testing.assert_allclose(np.array(got, np.float64), want, rtol=1e-5, atol=1e-6)


def test_allowed_children_picks_each_examples_dataset():
  rng = np.random.default_rng(1)
  relations = rng.random((2, K, 4)) < 0.5
  dataset = rng.integers(0, 2, B)
  coarse = rng.integers(0, 4, B)
  got = np.asarray(falcon_losses.allowed_children(jnp.asarray(relations), jnp.asarray(dataset), jnp.asarray(coarse)))
  want = np.stack([relations[dataset[i], :, coarse[i]] for i in range(B)])
  np.testing.assert_array_equal(got, want)


def test_relation_cost_is_the_per_dataset_outer_product_sum():
  rng = np.random.default_rng(2)
  probs = rng.dirichlet(np.ones(K), size=B)
  dataset = rng.integers(0, 2, B)
  coarse = rng.integers(0, C, B)
  got = np.asarray(falcon_losses.relation_cost(jnp.asarray(probs), jnp.asarray(coarse), jnp.asarray(dataset), 2, C))
  want = np.zeros((2, K, C))
  for i in range(B):
    want[dataset[i]] += np.outer(probs[i], np.eye(C)[coarse[i]])
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_soft_label_weight_schedule():
  # 1 at epoch 1, a half-cosine down to epoch E, then 0 (docs/methods/falcon.md#schedules).
  epochs = np.arange(1, 12)
  got = np.asarray(falcon_losses.soft_label_weight(jnp.asarray(epochs), 8))
  want = [0.5 * (1 + math.cos(math.pi * (e - 1) / 8)) if e <= 8 else 0.0 for e in epochs]
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert got[0] == 1.0 and got[-1] == 0.0


def test_ema_warm_up_and_update():
  decays = np.asarray(falcon_losses.ema_decay(jnp.arange(1, 2000)))
  np.testing.assert_allclose(decays[:3], [2 / 11, 3 / 12, 4 / 13], rtol=1e-6)
  assert decays.max() == pytest.approx(0.99)
  teacher = {"w": jnp.array([1.0, 2.0])}
  online = {"w": jnp.array([3.0, 0.0])}
  new = falcon_losses.ema_update(teacher, online, jnp.float32(0.75))
  np.testing.assert_allclose(np.asarray(new["w"]), [0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * 0])


def test_consistency_stays_finite_when_confident_predictions_disagree():
  # p = onehot(0), q = onehot(1) up to float32: p . q underflows to 0, log(0) = -inf.
  logits = jnp.array([[60.0, -60.0, -60.0]])
  neighbour_logits = jnp.array([[[-60.0, 60.0, -60.0]]])
  loss = falcon_losses.neighbour_consistency_loss(jax.nn.log_softmax(logits), jax.nn.log_softmax(neighbour_logits))
  # p . q = e^-120 (k=0) + e^-120 (k=1) + e^-240 (k=2): the loss is 120 - log 2.
  assert np.isfinite(float(loss)) and float(loss) == pytest.approx(120.0 - math.log(2.0), rel=1e-5)
  grad = jax.grad(lambda l: falcon_losses.neighbour_consistency_loss(
      jax.nn.log_softmax(l), jax.nn.log_softmax(neighbour_logits)))(logits)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_entropy_regulariser_gradient_is_finite_when_a_class_mean_underflows():
  """A class that no example predicts (mean probability exactly 0) adds 0 to H and a finite gradient."""
  logits = jnp.asarray(np.random.default_rng(2).normal(size=(B, K)), jnp.float32).at[:, 0].set(-1e4)
  value, grad = jax.value_and_grad(lambda l: falcon_losses.entropy_regulariser(jax.nn.softmax(l)))(logits)
  p = np.asarray(jax.nn.softmax(logits), np.float64)
  assert p[:, 0].max() == 0.0  # the underflow really happens
  pbar = p.mean(0)[1:]
  np.testing.assert_allclose(float(value), math.log(K) + np.sum(pbar * np.log(pbar)), rtol=1e-5)
  assert np.all(np.isfinite(np.asarray(grad)))
