"""orbax checkpoints of a run: train state, data position, host state and the config.

One checkpoint holds, under `workdir/checkpoints/<step>/`:
  state: the `TrainState` arrays (restored with their shardings),
  data: the grain iterator position,
  meta: JSON with the config and the method's host-side state.
Saving every `checkpoint.every_steps` steps keeps the newest `checkpoint.keep`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import flax.serialization
import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

# Config entries that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("checkpoint", "logging", "eval", "data.num_workers", "train.stop_after_steps", "method_modules")


def comparable_config(config: ml_collections.ConfigDict) -> dict:
  """The config as a dict without the entries that may change on resumption."""
  flat = json.loads(config.to_json_best_effort())
  for dotted in RESUMABLE_CHANGES:
    node, *rest = dotted.split(".")
    if not rest:
      flat.pop(node, None)
    else:
      flat.get(node, {}).pop(rest[0], None)
  return flat


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
  diffs = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key, "<missing>"), current.get(key, "<missing>")
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += config_differences(a, b, f"{prefix}{key}.")
    elif a != b:
      diffs.append(f"{prefix}{key}: checkpoint has {a!r}, config has {b!r}")
  return diffs


class Checkpointer:
  """Saves and restores a run's checkpoints in `workdir/checkpoints`."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.config = config
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(config.checkpoint.every_steps),
        preservation_policy=ocp.checkpoint_managers.LatestN(config.checkpoint.keep),
        create=True,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, iterator, host_state: dict, force: bool = False) -> bool:
    if not force and not self._manager.should_save(step):
      return False
    meta = {"config": comparable_config(self.config), "host_state": host_state, "step": step}
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
            data=grain.checkpoint.CheckpointSave(iterator),
            meta=ocp.args.JsonSave(meta),
        ),
        force=force,
    )

  def restore(self, abstract_state: Any, iterator=None) -> Optional[tuple[Any, dict]]:
    """Restores the latest checkpoint: a state shaped like `abstract_state`, and `iterator`.

    `abstract_state` is a TrainState of `jax.ShapeDtypeStruct`s with shardings; the
    grain `iterator` (None to skip the data position, as evaluation does) is moved to
    the saved position in place. Returns (state, host_state), or None when the workdir
    has no checkpoint. Raises if the checkpoint was written by a different config.
    """
    step = self._manager.latest_step()
    if step is None:
      return None
    meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    diffs = config_differences(meta["config"], comparable_config(self.config))
    if diffs:
      raise ValueError(
          f"{self.directory} holds a checkpoint (step {step}) of another config:\n  "
          + "\n  ".join(diffs[:20])
          + "\nUse a fresh --workdir, or the config that wrote the checkpoint.")
    target = flax.serialization.to_state_dict(abstract_state)
    items = {"state": ocp.args.StandardRestore(target)}
    if iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    state = flax.serialization.from_state_dict(abstract_state, restored["state"])
    return state, meta["host_state"]

  def read_state(self, step: Optional[int] = None) -> dict:
    """The saved train state as nested dicts of numpy arrays (newest step by default)."""
    step = self._manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return jax.tree.map(np.asarray, restored["state"])

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
