"""The momentum (EMA) update of a key encoder, shared by ANCOR, SCGM-A and MaskCon."""

from __future__ import annotations

from typing import Any

import jax


def momentum_update(key_tree: Any, online_tree: Any, momentum: float) -> Any:
  """xi <- m * xi + (1 - m) * theta, leaf by leaf (params and BN statistics alike)."""
  return jax.tree.map(lambda k, o: momentum * k + (1.0 - momentum) * o, key_tree, online_tree)
