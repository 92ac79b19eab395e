"""F-SC, centre loss and SoftTriple against per-example numpy transcriptions of docs/methods/fsc.md#losses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.fsc import losses as fl

B, C, S, D = 6, 3, 4, 5


def _problem(seed=0, spread=1.0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, D)).astype(np.float32)
  centres = (rng.normal(size=(C, 1, D)) + spread * rng.normal(size=(C, S, D))).astype(np.float32)
  labels = np.r_[0, 1, 2, rng.integers(0, C, B - 3)].astype(np.int32)
  return x, centres, labels


def fsc_reference(x, centres, labels, beta, assign, scale=1.0):
  """L_sub as a mean over examples of -log sum_k ptilde (logits scale * w.x); L_scc as a sum; k by the rule named."""
  num_classes, num_sub, _ = centres.shape
  sub_ce, compact = 0.0, 0.0
  for i in range(len(x)):
    logits = {(j, m): scale * float(np.dot(centres[j, m], x[i])) for j in range(num_classes) for m in range(num_sub)}
    top = max(logits.values())
    denom = sum(math.exp(v - top) for v in logits.values())
    p_class = sum(math.exp(logits[(labels[i], m)] - top) for m in range(num_sub)) / denom
    sub_ce -= math.log(p_class) / len(x)
    if assign == "logit":
      k = max(range(num_sub), key=lambda m: logits[(labels[i], m)])
    else:
      k = min(range(num_sub), key=lambda m: float(np.sum((x[i] - centres[labels[i], m]) ** 2)))
    compact += 0.5 * float(np.sum((x[i] - centres[labels[i], k]) ** 2))
  return sub_ce + beta * compact, sub_ce, compact


@pytest.mark.parametrize("assign,scale", [("logit", 1.0), ("euclidean", 1.0), ("logit", 7.0), ("euclidean", 0.5)])
def test_fsc_loss_matches_transcription(assign, scale):
  x, centres, labels = _problem(seed=1)
  loss, parts = fl.fsc_loss(jnp.asarray(x), jnp.asarray(centres), jnp.asarray(labels), beta=0.3, assign=assign,
                            scale=scale)
  want, want_sub, want_scc = fsc_reference(x, centres, labels, 0.3, assign, scale)
  np.testing.assert_allclose(float(parts["sub_ce"]), want_sub, rtol=1e-5)
  np.testing.assert_allclose(float(parts["compactness"]), want_scc, rtol=1e-5)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_logit_and_euclidean_assignments_can_differ():
  # Sub-centres of unequal norm: the largest dot product is not the nearest centre.
  centres = np.zeros((1, 2, 2), np.float32)
  centres[0, 0] = [10.0, 0.0]
  centres[0, 1] = [1.0, 0.0]
  x = np.array([[1.0, 0.0]], np.float32)
  labels = np.zeros(1, np.int32)
  by_logit = fl.assigned_sub_centre(jnp.asarray(x), jnp.asarray(centres), jnp.asarray(labels), "logit")
  by_distance = fl.assigned_sub_centre(jnp.asarray(x), jnp.asarray(centres), jnp.asarray(labels), "euclidean")
  assert int(by_logit[0]) == 0 and int(by_distance[0]) == 1


def test_class_probability_is_the_sum_of_its_sub_class_probabilities():
  x, centres, _ = _problem(seed=2)
  sub = np.einsum("bd,csd->bcs", x, centres).astype(np.float64)
  p_sub = np.exp(sub - sub.reshape(B, -1).max(1)[:, None, None])
  p_sub /= p_sub.reshape(B, -1).sum(1)[:, None, None]  # softmax over all C*s logits
  got = np.exp(np.asarray(fl.class_log_probs(fl.sub_class_logits(jnp.asarray(x), jnp.asarray(centres)))))
  np.testing.assert_allclose(got, p_sub.sum(-1), rtol=1e-5)
  np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("init,bound", [("kaiming_uniform", math.sqrt(6 / 512)), ("linear_default", 1 / math.sqrt(512))])
def test_sub_centres_spread_as_specified(init, bound):
  centres = np.asarray(fl.sample_sub_centres(jax.random.PRNGKey(0), 50, 4, 512, sigma2=1e-3, init=init))
  assert centres.shape == (50, 4, 512)
  class_means = centres.mean(1)
  # mu ~ U(-bound, bound): the largest |mu| entry is just under the bound, the variance bound^2 / 3.
  assert np.abs(class_means).max() < bound + 4 * math.sqrt(1e-3 / 4)
  np.testing.assert_allclose(class_means.var(), bound ** 2 / 3 + 1e-3 / 4, rtol=0.05)
  # Around its class centre each sub-centre has per-coordinate variance sigma^2 = 1e-3.
  residual = centres - centres.mean(1, keepdims=True)
  np.testing.assert_allclose(residual.var() * 4 / 3, 1e-3, rtol=0.05)


def test_unknown_init_and_assignment_are_rejected():
  with pytest.raises(ValueError, match="sub-centre init"):
    fl.sample_sub_centres(jax.random.PRNGKey(0), 2, 2, 4, 1e-3, init="xavier")
  with pytest.raises(ValueError, match="assignment"):
    fl.assigned_sub_centre(jnp.zeros((1, 2)), jnp.zeros((1, 2, 2)), jnp.zeros(1, jnp.int32), "cosine")


def test_centre_loss_and_moving_centres_match_wen_et_al():
  x, _, labels = _problem(seed=3)
  centres = np.random.default_rng(4).normal(size=(C, D)).astype(np.float32)
  want_loss = sum(0.5 * float(np.sum((x[i] - centres[labels[i]]) ** 2)) for i in range(B))
  got = fl.centre_loss(jnp.asarray(x), jnp.asarray(centres), jnp.asarray(labels))
  np.testing.assert_allclose(float(got), want_loss, rtol=1e-5)
  alpha = 0.5
  want = centres.copy()
  for j in range(C):
    members = [i for i in range(B) if labels[i] == j]
    delta = sum((centres[j] - x[i] for i in members), np.zeros(D)) / (1 + len(members))
    want[j] = centres[j] - alpha * delta
  got_centres = fl.update_centres(jnp.asarray(centres), jnp.asarray(x), jnp.asarray(labels), alpha)
  np.testing.assert_allclose(np.asarray(got_centres), want, rtol=1e-5, atol=1e-6)


def test_centre_of_an_absent_class_does_not_move():
  x, _, _ = _problem(seed=5)
  centres = np.ones((C, D), np.float32)
  labels = np.zeros(B, np.int32)
  got = np.asarray(fl.update_centres(jnp.asarray(centres), jnp.asarray(x), jnp.asarray(labels), 0.5))
  np.testing.assert_array_equal(got[1:], centres[1:])
  assert not np.allclose(got[0], centres[0])


def _unit(v):
  return v / np.linalg.norm(v)


def softtriple_reference(x, centres, labels, lam, gamma, delta, tau):
  num_classes, k, _ = centres.shape
  ce = 0.0
  for i in range(len(x)):
    xi = _unit(x[i])
    relaxed = []
    for c in range(num_classes):
      sims = [float(np.dot(xi, _unit(centres[c, m]))) for m in range(k)]
      weights = [math.exp(s / gamma) for s in sims]
      relaxed.append(sum(w * s for w, s in zip(weights, sims)) / sum(weights))
    logits = [lam * (relaxed[c] - (delta if c == labels[i] else 0.0)) for c in range(num_classes)]
    top = max(logits)
    ce -= (logits[labels[i]] - top - math.log(sum(math.exp(v - top) for v in logits))) / len(x)
  spread = 0.0
  for c in range(num_classes):
    for a in range(k):
      for b in range(a + 1, k):
        spread += math.sqrt(2 + 1e-5 - 2 * float(np.dot(_unit(centres[c, a]), _unit(centres[c, b]))))
  spread /= num_classes * k * (k - 1)
  return ce + tau * spread, ce, spread


def test_softtriple_matches_transcription():
  x, centres, labels = _problem(seed=6)
  loss, parts = fl.softtriple_loss(jnp.asarray(x), jnp.asarray(centres), jnp.asarray(labels),
                                   lam=20.0, gamma=0.1, delta=0.01, tau=0.2)
  want, want_ce, want_spread = softtriple_reference(x, centres, labels, 20.0, 0.1, 0.01, 0.2)
  np.testing.assert_allclose(float(parts["softtriple_ce"]), want_ce, rtol=1e-4)
  np.testing.assert_allclose(float(parts["centre_spread"]), want_spread, rtol=1e-5)
  np.testing.assert_allclose(float(loss), want, rtol=1e-4)


def test_softtriple_with_one_centre_is_normalised_softmax():
  x, centres, labels = _problem(seed=7)
  one = centres[:, :1]
  _, parts = fl.softtriple_loss(jnp.asarray(x), jnp.asarray(one), jnp.asarray(labels), 10.0, 0.1, 0.0, 0.2)
  cos = np.stack([[float(np.dot(_unit(x[i]), _unit(one[c, 0]))) for c in range(C)] for i in range(B)])
  logits = 10.0 * cos
  want = -np.mean(logits[np.arange(B), labels] - np.log(np.exp(logits).sum(1)))
  np.testing.assert_allclose(float(parts["softtriple_ce"]), want, rtol=1e-5)
  assert float(parts["centre_spread"]) == 0.0


def test_softtriple_regulariser_gradient_is_finite_when_centres_coincide():
  centres = jnp.ones((2, 3, 4))
  grad = jax.grad(lambda w: fl.softtriple_regulariser(w))(centres)
  assert np.isfinite(np.asarray(grad)).all()
