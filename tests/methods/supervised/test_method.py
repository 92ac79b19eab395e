"""Baseline losses and predictions against numpy transcriptions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.base import coarse_logits_from_fine
from tests.methods import initial_state


def test_coarse_probability_is_the_sum_of_its_children():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 5)).astype(np.float32)
  fine_to_coarse = np.array([0, 1, 0, 2, 1])
  out = np.asarray(coarse_logits_from_fine(jnp.asarray(logits), fine_to_coarse, 3))
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  expected = np.stack([probs[:, fine_to_coarse == c].sum(1) for c in range(3)], 1)
  np.testing.assert_allclose(np.exp(out), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["coarse", "coarse_plus", "fine", "fine_plus"])
def test_loss_is_cross_entropy_on_the_right_labels(tiny_config, name):
  tiny_config.method = name
  tiny_config.model.embedder = "mlp" if name.endswith("plus") else "none"
  data, method, state, _ = initial_state.build(tiny_config)
  batch = initial_state.batch(data.train.inputs[:16, None], data.train.coarse[:16], data.train.fine[:16])
  loss, aux = method.loss(state.params, state, batch, jax.random.PRNGKey(0))
  outputs, _ = method.model().apply(state.variables, batch.views[:, 0], train=True, mutable=["batch_stats"])
  logits = np.asarray(outputs["logits"], np.float64)
  labels = np.asarray(batch.fine if name.startswith("fine") else batch.coarse)
  assert logits.shape[1] == (9 if name.startswith("fine") else 3)
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  assert float(loss) == pytest.approx(-log_probs[np.arange(16), labels].mean(), rel=1e-5)
  # BatchNorm statistics move in training mode.
  before = jax.tree.leaves(state.batch_stats)
  after = jax.tree.leaves(aux.batch_stats)
  assert any(not np.allclose(a, b) for a, b in zip(before, after))
