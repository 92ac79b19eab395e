"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's kill).

While training, `StopRequests` turns the signals into a flag that the loop reads between steps:
it saves a checkpoint of the step it reached, waits for the saves under way, and raises
`Interrupted`, which the command line prints as one line with exit code 128 + signal
(130 for SIGINT, 143 for SIGTERM). A second Ctrl-C stops at once (a plain KeyboardInterrupt).

Several processes must stop at the same step (the checkpoint is written by all of them together):
they compare their flags with one all-gather every `sync_every` steps, so a signal that reaches
only some of them, or reaches them at different steps, stops all at the first such step after it.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

import numpy as np


class Interrupted(KeyboardInterrupt):
  """The run stopped on a signal after saving a checkpoint of `step` (a KeyboardInterrupt, as Ctrl-C is)."""

  def __init__(self, step: int, signum: int):
    self.step = step
    self.signum = signum
    super().__init__(f"stopped at step {step}, checkpoint saved; re-run the same command to resume")

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


class StopRequests:
  """A context manager that catches SIGINT and SIGTERM during training (in the main thread only).

  `stop_at(step)`: whether to stop after `step`; with several processes True at the same step on all.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, process_count: int = 1, sync_every: int = 1, on_request=None):
    self.process_count = process_count
    self.sync_every = max(1, sync_every)
    self.signum: Optional[int] = None
    self._previous: dict = {}
    self._on_request = on_request  # e.g. a line on the terminal that the stop is coming

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    if self.signum is not None and signum == signal.SIGINT:  # the second Ctrl-C: stop now
      raise KeyboardInterrupt
    self.signum = signum
    if self._on_request is not None:
      self._on_request(signum)

  def stop_at(self, step: int) -> bool:
    if self.process_count == 1:
      return self.signum is not None
    if step % self.sync_every:
      return False
    from jax.experimental import multihost_utils

    # every process reaches this all-gather at the same steps, whatever its own flag says
    flags = multihost_utils.process_allgather(np.int32(self.signum or 0))
    signals = np.asarray(flags).ravel()
    if signals.any() and self.signum is None:
      self.signum = int(signals[signals > 0][0])  # stopped because another process was told to
    return bool(signals.any())
