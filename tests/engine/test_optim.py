"""Learning-rate schedules against their closed forms."""

import math

import numpy as np
import pytest

from coarse2fine.config_base import base_config
from coarse2fine.engine import optim


def _cfg(**fields):
  cfg = base_config().optimizer
  for k, v in fields.items():
    setattr(cfg, k, v)
  return cfg


def test_cosine_with_warmup():
  schedule = optim.make_schedule(_cfg(schedule="cosine", lr=0.4, warmup_epochs=1), steps_per_epoch=10, total_steps=50)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.2)
  for step in (10, 20, 35, 49):
    expected = 0.4 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 40))
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-6)


def test_cosine_restarts_repeats_each_period():
  schedule = optim.make_schedule(_cfg(schedule="cosine_restarts", lr=0.03, restart_epochs=2), 5, 40)
  values = np.array([float(schedule(s)) for s in range(40)])
  np.testing.assert_allclose(values[:10], values[10:20], rtol=1e-6)
  assert values[0] == pytest.approx(0.03) and values[9] < 0.001 and values[10] == pytest.approx(0.03)


def test_cosine_restarts_with_a_floor_as_pytorch_eta_min():
  # CosineAnnealingWarmRestarts(T_0, eta_min): eta_min + (lr - eta_min) (1 + cos(pi t / T_0)) / 2.
  schedule = optim.make_schedule(_cfg(schedule="cosine_restarts", lr=0.1, min_lr=1e-3, restart_epochs=3), 10, 90)
  for step in (0, 7, 15, 29, 30, 44):
    t = step % 30
    expected = 1e-3 + (0.1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * t / 30))
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match="min_lr"):
    optim.make_schedule(_cfg(schedule="cosine", lr=0.1, min_lr=0.2), 10, 90)


def test_multistep():
  schedule = optim.make_schedule(_cfg(schedule="multistep", lr=1.0, decay_epochs=(2, 3), decay_factor=0.1), 10, 40)
  assert [float(schedule(s)) for s in (0, 19, 20, 29, 30)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_unknown_schedule_and_optimizer():
  with pytest.raises(ValueError, match="Unknown optimizer.schedule 'step'"):
    optim.make_schedule(_cfg(schedule="step"), 1, 1)
  with pytest.raises(ValueError, match="Unknown optimizer.name 'lamb'"):
    optim.make_optimizer(_cfg(name="lamb"), lambda s: 0.1)


def test_sgd_step_matches_pytorch_convention():
  """One SGD-momentum step with coupled L2: p - lr * (g + wd * p) on the first step."""
  import jax.numpy as jnp

  tx = optim.make_optimizer(_cfg(name="sgd", momentum=0.9, weight_decay=0.01), lambda s: 0.1)
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, 0.5])}
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.1 * (np.array([0.5, 0.5]) + 0.01 * np.array([1.0, -2.0])), rtol=1e-6)
