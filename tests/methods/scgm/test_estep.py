"""SCGM E-step against numpy transcriptions of docs/methods/scgm.md#e-step-target and the official Sinkhorn loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from coarse2fine.methods.scgm import estep as scgm_estep
from tests import multi_device


def _normalize(u):
  return u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)


def _numpy_log_posterior(v, y, mu_y, mu_z, sigma2, sigmabar2, use_pi):
  """docs/methods/scgm.md#e-step-target in float64, one formula per line.

  pi as in docs/methods/scgm.md#generative-model-and-notation.
  """
  cos_vz = _normalize(v) @ _normalize(mu_z).T  # [N, r]
  cos_yz = _normalize(mu_y) @ _normalize(mu_z).T  # [C, r]
  pi = softmax(cos_yz[y] / sigmabar2, axis=1)  # [N, r]
  p_zv = np.exp(cos_vz / sigma2) * (pi if use_pi else 1.0)
  p_zv /= p_zv.sum(1, keepdims=True)
  p_yz = np.exp(cos_yz / sigmabar2) / np.exp(cos_yz / sigmabar2).sum(0, keepdims=True)  # over c, per k
  return np.log(p_zv * p_yz[y])


def _problem(n, r, c=4, e=16, spread=0.5, seed=0):
  """Clustered embeddings with sub-class means near some cluster centres (a trained model's P)."""
  rng = np.random.default_rng(seed)
  centres = _normalize(rng.normal(size=(r, e)))
  cluster = rng.choice(r, size=n, p=rng.dirichlet(np.full(r, 2.0)))
  v = centres[cluster] + spread * rng.normal(size=(n, e)) / np.sqrt(e)
  mu_z = 3.0 * centres[rng.choice(r, r)] + 0.5 * rng.normal(size=(r, e))  # unnormalised on purpose
  y = rng.integers(0, c, r)[cluster]
  mu_y = rng.normal(size=(c, e))
  return [np.asarray(a, np.float32) for a in (v, mu_y, mu_z)], y.astype(np.int32)


@pytest.mark.parametrize("use_pi", [False, True])
def test_log_posterior_matches_numpy(use_pi):
  (v, mu_y, mu_z), y = _problem(50, 7)
  got = scgm_estep.log_posterior(v, y, mu_y, mu_z, sigma2=0.1, sigmabar2=1.0, use_pi=use_pi)
  want = _numpy_log_posterior(v.astype(np.float64), y, mu_y.astype(np.float64), mu_z.astype(np.float64), 0.1, 1.0,
                              use_pi)
  assert got.shape == (50, 7) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)


def test_mixing_weights_are_a_softmax_over_subclasses():
  (_, mu_y, mu_z), y = _problem(30, 6)
  log_pi = np.asarray(scgm_estep.log_mixing_weights(y, mu_y, mu_z, sigmabar2=0.5))
  np.testing.assert_allclose(np.exp(log_pi).sum(1), 1.0, rtol=1e-5)
  want = softmax((_normalize(mu_y) @ _normalize(mu_z).T)[y] / 0.5, axis=1)
  np.testing.assert_allclose(np.exp(log_pi), want, rtol=1e-5)


N, R = 2000, 20  # one shape for every solver test: each new shape is a new compile


def _peaked_log_p(n=N, r=R, sigma2=0.1):
  (v, mu_y, mu_z), y = _problem(n, r, spread=0.8)
  return scgm_estep.log_posterior(v, y, mu_y, mu_z, sigma2=sigma2)


def _random_log_p(n=N, r=R):
  return jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (n, r)) * 2.0, axis=1)


@pytest.mark.parametrize("kind,epsilon_stages", [("peaked", 4), ("random", 4), ("peaked", 1)])
def test_codes_match_the_official_loop(kind, epsilon_stages):
  log_p = _peaked_log_p() if kind == "peaked" else _random_log_p()
  res = scgm_estep.balanced_codes(log_p, lam=25.0, epsilon_stages=epsilon_stages)
  ref_codes, ref_iters = scgm_estep.reference_sinkhorn_knopp(np.exp(np.asarray(log_p, np.float64)), lam=25.0)
  assert bool(res.converged) and ref_iters > 10
  assert np.mean(np.asarray(res.codes) == ref_codes) >= 0.99
  # Balanced: no sub-class is left empty or takes much more than its share N/r = 100.
  counts = np.bincount(np.asarray(res.codes), minlength=R)
  assert counts.min() > 50 and counts.max() < 150, counts


def test_marginals_of_the_plan():
  log_p = _peaked_log_p()
  res = scgm_estep.balanced_codes(log_p, lam=25.0, threshold=1e-4)
  # Recomputed independently in float64 from the returned column potential g:
  # Q[i, k] = exp(lam (log P + g)) normalised per row to 1/N.
  s = 25.0 * (np.asarray(log_p, np.float64) + np.asarray(res.column_potential, np.float64))
  q = np.exp(s - logsumexp(s, axis=1, keepdims=True)) / s.shape[0]
  np.testing.assert_allclose(q.sum(1), 1 / s.shape[0], rtol=1e-9)
  assert np.abs(q.sum(0) - 1 / R).sum() < 2e-4  # the solver's L1 column error, with float32 slack
  assert float(res.marginal_error) < 1e-4
  np.testing.assert_array_equal(np.asarray(res.codes), q.argmax(1))
  plan = np.asarray(scgm_estep.transport_plan(log_p, res.column_potential, lam=25.0))
  np.testing.assert_allclose(plan, q, rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("lse_mode", [False, True])
def test_log_domain_and_kernel_modes_agree(lse_mode):
  log_p = _peaked_log_p()
  ref_codes, _ = scgm_estep.reference_sinkhorn_knopp(np.exp(np.asarray(log_p, np.float64)))
  res = scgm_estep.balanced_codes(log_p, lse_mode=lse_mode)
  assert bool(res.converged)
  assert np.mean(np.asarray(res.codes) == ref_codes) >= 0.99


def test_warm_start_gives_the_cold_start_codes():
  log_p = _peaked_log_p()
  cold = scgm_estep.balanced_codes(log_p, threshold=1e-4)
  # A later E-step: the posterior moved a little.
  moved = log_p + 0.05 * jax.random.normal(jax.random.key(1), log_p.shape)
  moved_cold = scgm_estep.balanced_codes(moved, threshold=1e-4)
  moved_warm = scgm_estep.balanced_codes(moved, threshold=1e-4, init_column_potential=cold.column_potential)
  assert bool(moved_warm.converged)
  assert np.mean(np.asarray(moved_warm.codes) == np.asarray(moved_cold.codes)) >= 0.995
  assert int(moved_warm.iterations) < int(moved_cold.iterations)


def test_no_nan_at_extreme_peakedness():
  # sigma2 = 0.05 and lam = 25: lam log P spans thousands of nats; P^lam underflows in float32
  # for most entries, and whole columns do for sub-classes far from every sample.
  log_p = _peaked_log_p(sigma2=0.05)
  assert float(jnp.max(-25.0 * (log_p - jnp.max(log_p, axis=1, keepdims=True)))) > 500
  res = scgm_estep.balanced_codes(log_p, lam=25.0)
  assert np.all(np.isfinite(np.asarray(res.column_potential)))
  assert bool(res.converged) and np.isfinite(float(res.marginal_error))
  ref_codes, _ = scgm_estep.reference_sinkhorn_knopp(np.exp(np.asarray(log_p, np.float64)))
  assert np.mean(np.asarray(res.codes) == ref_codes) >= 0.99


def test_result_carries_no_gradient():
  log_p = _random_log_p()
  grad = jax.grad(lambda x: jnp.sum(scgm_estep.balanced_codes(x).column_potential))(log_p)
  np.testing.assert_array_equal(np.asarray(grad), 0.0)


SHARDED_SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from coarse2fine.methods.scgm import estep as scgm_estep

jax.config.update("jax_disable_most_optimizations", True)  # as in conftest: compile time dominates

key = jax.random.key(0)
centres = jax.random.normal(key, (24, 8))
x = centres[jax.random.randint(jax.random.key(1), (2048,), 0, 24)] + 0.3 * jax.random.normal(key, (2048, 8))
log_p = scgm_estep.log_posterior(x, jnp.zeros((2048,), jnp.int32), jnp.ones((1, 8)), centres[:16])
mesh = Mesh(np.array(jax.devices()), ("data",))
out = {"devices": jax.device_count()}
for name, where in [("one", jax.devices()[0]), ("eight", NamedSharding(mesh, PartitionSpec("data", None)))]:
  x = jax.device_put(log_p, where)
  res = scgm_estep.balanced_codes(x, threshold=1e-4)
  out[name] = {"shards": len(x.addressable_shards), "codes_shards": len(res.codes.addressable_shards),
               "codes": np.asarray(res.codes).tolist(), "g": np.asarray(res.column_potential).tolist(),
               "converged": bool(res.converged)}
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow  # a subprocess with 8 host devices (66 s)
def test_rows_sharded_over_eight_devices_match_one_device():
  # One process with 8 host devices runs the solve twice: on one device, and sharded over all.
  result = multi_device.run_script(SHARDED_SCRIPT, devices=8, timeout=120)
  one, eight = result["one"], result["eight"]
  assert result["devices"] == 8 and one["shards"] == 1 and eight["shards"] == 8
  assert eight["codes_shards"] == 8  # the codes stay sharded like the rows
  assert one["converged"] and eight["converged"]
  # Cross-device sums change float32 rounding only; rows at an exact tie may flip.
  assert np.mean(np.array(one["codes"]) == np.array(eight["codes"])) >= 0.999
  np.testing.assert_allclose(eight["g"], one["g"], atol=1e-3)


def test_first_argmax_is_argmax_with_ties_to_the_first():
  rng = np.random.default_rng(5)
  x = rng.integers(0, 4, size=(300, 7)).astype(np.float32)  # many ties
  x[0] = -np.inf
  x[1, 3] = np.inf
  np.testing.assert_array_equal(np.asarray(scgm_estep.first_argmax(jnp.asarray(x))), np.argmax(x, axis=1))
