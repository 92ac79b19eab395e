import jax
import jax.numpy as jnp
import numpy as np

from coarse2fine.methods.common.normalize import l2_normalize


def test_l2_normalize_matches_numpy_and_torch_convention():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 7)).astype(np.float32)
  x[2] = 0.0  # an all-zero row stays zero, as F.normalize leaves it
  expected = x / np.maximum(np.sqrt((x.astype(np.float64) ** 2).sum(-1, keepdims=True)), 1e-12)
  np.testing.assert_allclose(np.asarray(l2_normalize(jnp.asarray(x))), expected, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(l2_normalize(jnp.asarray(x), axis=0)),
                             x / np.sqrt((x.astype(np.float64) ** 2).sum(0, keepdims=True)), rtol=1e-6)


def test_l2_normalize_gradient_is_finite_at_zero():
  grad = jax.grad(lambda x: l2_normalize(x).sum())(jnp.zeros((2, 3)))
  assert np.isfinite(np.asarray(grad)).all()
  # away from zero it is the Jacobian of x / ||x||: (I - u u^T) / ||x|| applied to ones
  x = np.array([3.0, 4.0, 0.0], np.float32)
  u = x / 5.0
  np.testing.assert_allclose(np.asarray(jax.grad(lambda v: l2_normalize(v).sum())(jnp.asarray(x))),
                             (np.ones(3) - u * u.sum()) / 5.0, rtol=1e-6)
