"""Host-side hooks that a method runs between jitted steps.

SCGM's E-step and FALCON's relation solver need work that does not fit in the jitted
step (a solve over the whole training set, a discrete optimisation). A method lists
`HostHook`s; the loop calls each one when it is due and continues with the state it
returns. A hook must be a deterministic function of its inputs (and of the host state
it keeps in `context.host_state`, which is checkpointed), so that a resumed run and
every process of a multi-host run compute the same thing.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Optional

from coarse2fine.engine.train_state import TrainState


@dataclasses.dataclass
class HookContext:
  """What a hook may read: the run's config, data, mesh and the method's host state."""

  config: Any
  data: Any
  mesh: Any
  steps_per_epoch: int
  host_state: dict  # JSON-serialisable; saved in every checkpoint
  metrics: dict = dataclasses.field(default_factory=dict)  # scalars to log; the loop writes and clears them
  # Where `log` lines go: the loop prints them above its progress bar, on the main process only.
  printer: Optional[Callable[[str], None]] = None

  def log(self, message: str) -> None:
    """One line on the terminal about a host event (an E-step, a relation solve, a queue fill)."""
    if self.printer is not None:
      self.printer(message)
    else:
      print(message, file=sys.stdout, flush=True)


@dataclasses.dataclass(frozen=True)
class HostHook:
  """Runs `fn(state, context) -> state` every `every_steps` steps or `every_epochs` epochs.

  Step counts are completed optimizer steps. `at_start` also runs the hook once before
  the first step of a fresh run (e.g. an initial E-step); with no period it runs only then. `start_epochs` > 0 delays the
  first run to the end of that epoch; the period counts from there. `within_epoch` makes
  an `every_steps` period restart with each epoch: the hook runs after the steps whose
  0-based index i within their epoch is a positive multiple of `every_steps` (FALCON's
  solves at i = 20, 40, ...). Hooks prepare the steps that follow them, so none runs
  after the last step of a run.
  """

  name: str
  fn: Callable[[TrainState, HookContext], TrainState]
  every_steps: int = 0
  every_epochs: int = 0
  at_start: bool = False
  start_epochs: int = 0
  within_epoch: bool = False
  schedule_fields: tuple[str, ...] = ()  # the config fields that set this schedule, named when it never runs

  def __post_init__(self):
    periods = (self.every_steps > 0) + (self.every_epochs > 0)
    if periods > 1 or (periods == 0 and not self.at_start):
      raise ValueError(f"Hook {self.name!r}: set exactly one of every_steps and every_epochs "
                       "(or neither, for a hook that runs only at_start).")
    if self.at_start and self.start_epochs > 0:
      raise ValueError(f"Hook {self.name!r}: at_start and start_epochs > 0 contradict each other.")
    if self.within_epoch and not self.every_steps:
      raise ValueError(f"Hook {self.name!r}: within_epoch needs an every_steps period.")

  def due(self, completed_steps: int, steps_per_epoch: int) -> bool:
    if completed_steps == 0:
      return self.at_start
    if not (self.every_steps or self.every_epochs):
      return False
    if self.within_epoch:
      index_in_epoch = (completed_steps - 1) % steps_per_epoch
      return (completed_steps > self.start_epochs * steps_per_epoch and index_in_epoch > 0
              and index_in_epoch % self.every_steps == 0)
    offset = completed_steps - self.start_epochs * steps_per_epoch
    period = self.every_steps or self.every_epochs * steps_per_epoch
    return offset >= 0 and offset % period == 0

  def first_due(self, steps_per_epoch: int) -> Optional[int]:
    """The first completed-step count at which `due` holds; None if it never does."""
    if self.at_start:
      return 0
    if not (self.every_steps or self.every_epochs):
      return None
    start = self.start_epochs * steps_per_epoch
    if self.within_epoch:  # index i = every_steps within the first epoch after the start, if the epoch has it
      return start + self.every_steps + 1 if self.every_steps < steps_per_epoch else None
    period = self.every_steps or self.every_epochs * steps_per_epoch
    return start if start > 0 else period


def check_hooks_run(hooks: list[HostHook], steps_per_epoch: int, total_steps: int) -> None:
  """Refuses, before training, a schedule under which a hook would never run.

  Hooks run before the steps they prepare, so a hook due only at or after the last step
  (`total_steps`) never runs: FALCON with `solve_every` >= the steps of an epoch would never
  solve its relation, SCGM with `warmup_epochs` >= `num_epochs` would never run an E-step.
  """
  for hook in hooks:
    first = hook.first_due(steps_per_epoch)
    if first is None or first >= total_steps:
      fields = " or ".join(hook.schedule_fields) or "its schedule"
      when = "never" if first is None else f"first after step {first}"
      raise ValueError(f"Hook {hook.name!r} would never run in this run of {total_steps} steps "
                       f"({steps_per_epoch} per epoch; it is due {when}); change {fields}, or train longer.")
