"""Momentum encoders (ANCOR, SCGM-A, MaskCon): the EMA update, and the random stream of a queue's first keys."""

from __future__ import annotations

from typing import Any

import jax

QUEUE_INIT_STREAM = 0x9E0E  # random stream: a momentum queue's initial keys (SCGM-A, ANCOR, MaskCon)


def momentum_update(key_tree: Any, online_tree: Any, momentum: float) -> Any:
  """xi <- m * xi + (1 - m) * theta, leaf by leaf (params and BN statistics alike)."""
  return jax.tree.map(lambda k, o: momentum * k + (1.0 - momentum) * o, key_tree, online_tree)
