"""orbax checkpoints of a run: train state, host state and the config.

One checkpoint holds, under `workdir/checkpoints/<step>/`:
  state: the `TrainState` arrays (restored with their shardings, on any devices),
  meta: JSON with the config, the method's host-side state and a digest of every state array.
Saving every `checkpoint.every_steps` steps keeps the newest `checkpoint.keep`. The data
position needs no entry: global batch `step` comes next (`data.pipeline`), so a checkpoint
resumes on any number of processes. (Checkpoints written before this also hold a per-process
`data` item, which is not read.)

Restoring verifies the digests (`checkpoint_digests`): orbax itself restores overwritten bytes
as wrong values. A checkpoint that is corrupt, partial or empty is reported in one line and
the next older one is tried; with none left, restoring is an error. A resuming run also moves
the damaged step to `workdir/checkpoints_unusable/<step>` (kept for inspection), out of the way
of its own later save of that step.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import flax.serialization
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from coarse2fine import storage
from coarse2fine.config_base import base_config
from coarse2fine.engine.checkpoint_digests import first_mismatch, first_nonfinite, host_arrays, state_digests
from coarse2fine.models.pretrained import with_resolved_normalization

# Config entries that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("checkpoint", "logging", "eval", "data.num_workers", "train.stop_after_steps", "method_modules")


def comparable_config(config: ml_collections.ConfigDict) -> dict:
  """The config as a dict without the entries that may change on resumption, nor other methods' sections."""
  flat = without_other_methods(json.loads(config.to_json_best_effort()))
  for dotted in RESUMABLE_CHANGES:
    node, *rest = dotted.split(".")
    if not rest:
      flat.pop(node, None)
    else:
      flat.get(node, {}).pop(rest[0], None)
  return flat


def without_other_methods(flat: dict) -> dict:
  """`flat` (a config as a dict) without the sections of method families other than its `method`'s.

  The schema has a section for every registered method, so which sections a config holds depends
  on what its process imported (a plugin method, another test); a run never reads the others, and
  they must not make two configs of the same run differ.
  """
  from coarse2fine.methods import METHODS, method_config_sections  # the registry imports the engine

  if flat.get("method") not in METHODS:
    return flat
  method_sections = set(method_config_sections())
  general = set(base_config()) - method_sections
  own = set(METHODS[flat["method"]].config_sections())
  return {key: value for key, value in flat.items() if key in general or key in own}


MISSING = "<missing>"
NONFINITE_HINT = ("Lower optimizer.lr (or add optimizer.warmup_epochs), check the inputs for NaN or inf, "
                  "or use model.dtype='float32'.")


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """[(dotted field, checkpoint's value, config's value)] where they differ (MISSING where absent)."""
  diffs = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key, MISSING), current.get(key, MISSING)
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += config_differences(a, b, f"{prefix}{key}.")
    elif a != b:
      diffs.append((f"{prefix}{key}", a, b))
  return diffs


def _lookup(tree: dict, dotted: str) -> Any:
  for part in dotted.split("."):
    tree = tree.get(part, MISSING) if isinstance(tree, dict) else MISSING
  return tree


def without_added_fields(diffs: list[tuple[str, Any, Any]], where: str) -> list[tuple[str, Any, Any]]:
  """Drops the fields the library added after `where` (a checkpoint, a run) was written, when the config keeps
  their default.

  A run from before such a field behaved as its default does; any other value would change
  the resumed run, so it stays a difference.
  """
  # A run from before data.normalization normalised with the dataset's statistics: "auto" resolved.
  defaults = comparable_config(with_resolved_normalization(base_config()))
  kept = []
  for name, saved, current in diffs:
    if saved == MISSING and current != MISSING and _lookup(defaults, name) == current:
      logging.warning("Config field %s is newer than %s: taking its default %r.", name, where, current)
    else:
      kept.append((name, saved, current))
  return kept


class ConfigMismatch(ValueError):
  """The workdir's checkpoint was written by another config: a refusal, not a damaged checkpoint."""


class UnusableCheckpoint(RuntimeError):
  """A checkpoint step that cannot be restored intact (the message says which file or array)."""


def _first_line(error: BaseException, limit: int = 300) -> str:
  text = f"{type(error).__name__}: {error}".strip().split("\n")[0].split(" See full TensorStore details")[0]
  return text if len(text) <= limit else text[:limit] + "..."


class Checkpointer:
  """Saves and restores a run's checkpoints in `workdir/checkpoints`."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.directory = storage.absolute(storage.join(workdir, "checkpoints"))  # a gs:// URL stays as it is
    self.config = with_resolved_normalization(config)  # "auto" is saved and compared as what it resolved to
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(config.checkpoint.every_steps),
        preservation_policy=ocp.checkpoint_managers.LatestN(config.checkpoint.keep),
        create=True,
    )
    self._manager = ocp.CheckpointManager(storage.epath_of(self.directory), options=options)

  def due(self, step: int) -> bool:
    """Whether `save(step, ...)` would write a checkpoint without `force`."""
    return self._manager.should_save(step)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, host_state: dict, force: bool = False) -> bool:
    if not force and not self._manager.should_save(step):
      return False
    state_dict = flax.serialization.to_state_dict(state)
    arrays = host_arrays(state_dict)
    bad = first_nonfinite(arrays)
    if bad is not None:  # never save a state that could not be resumed from
      raise FloatingPointError(f"Non-finite values in {bad} of the state at step {step}; nothing was saved "
                               f"from it (the newest checkpoint is step {self._manager.latest_step()}). {NONFINITE_HINT}")
    meta = {"config": comparable_config(self.config), "host_state": host_state, "step": step,
            "digests": state_digests(state_dict, arrays)}
    return self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state_dict),
            meta=ocp.args.JsonSave(meta),
        ),
        force=force,
    )

  def restore(self, abstract_state: Any, set_aside_damaged: bool = False) -> Optional[tuple[Any, dict]]:
    """Restores the newest intact checkpoint: a state shaped like `abstract_state`.

    `abstract_state` is a TrainState of `jax.ShapeDtypeStruct`s with shardings. Returns
    (state, host_state), or None when the workdir
    has no checkpoint. `set_aside_damaged` (training, which will save those steps again) moves
    damaged steps out of the way; readers leave the workdir as it is. Raises `ConfigMismatch` if the
    checkpoint was written by a different config, and `UnusableCheckpoint` when every checkpoint
    is damaged.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      return None
    problems = []
    for step in steps:
      try:
        return self._restore_step(step, abstract_state)
      except ConfigMismatch:
        raise
      except Exception as error:  # noqa: BLE001 -- any failure to read a step makes it unusable
        problem = _first_line(error)
        problems.append(f"step {step}: {problem}")
        logging.warning("Checkpoint step %d in %s is unusable (%s); trying an older one.", step, self.directory,
                        problem)
        if set_aside_damaged:
          self._set_aside(step)
    raise UnusableCheckpoint(
        f"No intact checkpoint in {self.directory}:\n  " + "\n  ".join(problems)
        + "\nStart a fresh run with another --workdir (or remove the checkpoints folder to retrain here).")

  def _restore_step(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not isinstance(meta, dict) or "config" not in meta or "host_state" not in meta:
      raise UnusableCheckpoint(f"meta has no config or host state: {str(meta)[:100]}")
    saved = without_other_methods(meta["config"])  # older checkpoints saved every registered section
    diffs = without_added_fields(config_differences(saved, comparable_config(self.config)), self.directory)
    if diffs:
      raise ConfigMismatch(
          f"{self.directory} holds a checkpoint (step {step}) of another config:\n  "
          + "\n  ".join(f"{name}: checkpoint has {a!r}, config has {b!r}" for name, a, b in diffs[:20])
          + "\nUse a fresh --workdir, or the config that wrote the checkpoint.")
    target = flax.serialization.to_state_dict(abstract_state)
    restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    if "digests" in meta:  # checkpoints written before digests existed restore unverified
      mismatch = first_mismatch(restored["state"], meta["digests"])
      if mismatch is not None:
        raise UnusableCheckpoint(f"array {mismatch} does not match the digest saved with it (corrupt data file)")
    state = flax.serialization.from_state_dict(abstract_state, restored["state"])
    return state, meta["host_state"]

  def _unusable_directory(self) -> str:
    return storage.join(storage.dirname(self.directory), "checkpoints_unusable")

  def _set_aside(self, step: int) -> None:
    """Moves a damaged step out of orbax's directory (process 0), so that a later save of that step works."""
    if jax.process_index() == 0:
      source = storage.join(self.directory, str(step))
      if storage.isdir(source):  # on an object store: every object copied, then deleted
        target = storage.join(self._unusable_directory(), str(step))
        storage.makedirs(self._unusable_directory())
        storage.rmtree(target)
        storage.move(source, target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"c2f_set_aside_{step}")
    self._manager.reload()

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
