"""What a run shows on the terminal: the start banner, the progress bar, event and stage lines.

The bar is tqdm's (a dependency of the stack already; it writes event lines above itself with
`tqdm.write` and degrades to occasional lines when stderr is a file). Only the main process
draws; `config.logging.progress=False` turns the bars off (event and stage lines stay).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator, Optional

from tqdm import tqdm

# On a file (a batch job's log) the bar is redrawn this rarely, in seconds, rather than on every change.
FILE_REFRESH_SECONDS = 60.0


def format_rate(examples_per_second: float) -> str:
  """Throughput as people read it: '1,234 ex/s', '12.3 ex/s', and below 1/s the time per example, '2.0 s/ex'."""
  if not examples_per_second > 0:  # also NaN
    return "- ex/s"
  if examples_per_second >= 100:
    return f"{examples_per_second:,.0f} ex/s"
  if examples_per_second >= 1:
    return f"{examples_per_second:.1f} ex/s"
  return f"{1 / examples_per_second:.1f} s/ex"


def _is_tty(stream) -> bool:
  return bool(getattr(stream, "isatty", None) and stream.isatty())


# The size used where a terminal reports none: a pseudo-terminal without a size (`docker exec -t`,
# `script` without a terminal) says 0 x 0, and tqdm would draw no bar at all.
FALLBACK_SIZE = {"ncols": 100, "nrows": 40}


def _width(stream) -> dict:
  """tqdm's size arguments for `stream`: follow the terminal's width, or a fixed size where it reports none."""
  try:
    columns = os.get_terminal_size(stream.fileno()).columns
  except (AttributeError, OSError, ValueError):  # not a real file (io.StringIO, a notebook's stream)
    columns = None
  return dict(FALLBACK_SIZE) if columns == 0 else {"dynamic_ncols": True}


class ProgressBar:
  """Training progress: step n/N, loss, examples/s and ETA, drawn by tqdm on stderr.

  `advance()` after each step; `set_loss(loss)` at log steps. The rate is measured between
  log steps (the first window starts after the first step, so compiling it does not count),
  so a host hook or an evaluation slows one window, not the rest of the run.
  `write(message)` prints a line above the bar (or plainly when there is no bar).
  """

  def __init__(self, total_steps: int, batch_size: int, enabled: bool = True, start_step: int = 0, stream=None):
    self.batch_size = batch_size
    self.enabled = enabled
    self.stream = stream or sys.stderr
    self._bar = None
    self._loss = None
    self._rate = float("nan")
    self._window: Optional[tuple[int, float]] = None  # (step, time) where the current rate window began
    if enabled:
      tty = _is_tty(self.stream)
      self._bar = tqdm(total=total_steps, initial=start_step, file=self.stream, unit="step", **_width(self.stream),
                       mininterval=0.2 if tty else FILE_REFRESH_SECONDS, smoothing=0.1,
                       bar_format="{l_bar}{bar}| step {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")

  def examples_per_second(self) -> float:
    """Examples per second between the last two log steps (NaN before the second)."""
    return self._rate

  def advance(self, steps: int = 1) -> None:
    if self._bar is None:
      return
    self._bar.update(steps)
    if self._window is None:
      self._window = (self._bar.n, time.perf_counter())

  def set_loss(self, loss: float) -> None:
    self._loss = loss
    if self._bar is None:
      return
    now = time.perf_counter()
    if self._window is not None and self._bar.n > self._window[0]:
      self._rate = (self._bar.n - self._window[0]) * self.batch_size / max(now - self._window[1], 1e-9)
      self._window = (self._bar.n, now)
    # drawn now on a terminal; in a file at tqdm's next (rare) refresh
    self._bar.set_postfix_str(self._postfix(), refresh=_is_tty(self.stream))

  def _postfix(self) -> str:
    loss = "" if self._loss is None else f"loss {self._loss:.4f}, "
    return f"{loss}{format_rate(self._rate)}"  # tqdm puts ", " before it

  def write(self, message: str) -> None:
    """A line on stdout (with the banner and the results), the bar cleared and redrawn below it."""
    if self._bar is not None:
      self._bar.write(message, file=sys.stdout)
    else:
      print(message, file=sys.stdout, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None


@contextlib.contextmanager
def stage(message: str, enabled: bool = True, stream=None) -> Iterator[None]:
  """A line 'MESSAGE ...' on entering and 'MESSAGE: done in S s' on leaving a long stage (on stderr).

  stdout is left to results (the evaluation table, the paths `python -m coarse2fine.plot` prints).

  When stderr is a terminal, a ticking elapsed-time line shows there instead of the first line
  (a tqdm bar without total, refreshed each second by a thread), so nothing is silent for more
  than a second. Nothing is printed when `enabled` is False (another process than the main one).
  """
  if not enabled:
    yield
    return
  stream = stream or sys.stderr
  start = time.perf_counter()
  ticker = None
  stop = threading.Event()
  if _is_tty(sys.stderr):
    ticker = tqdm(total=None, desc=message, file=sys.stderr, bar_format="{desc} [{elapsed}]", leave=False,
                  **_width(sys.stderr))
    thread = threading.Thread(target=lambda: [ticker.refresh() for _ in iter(lambda: stop.wait(1.0), True)],
                              daemon=True)
    thread.start()
  else:
    print(f"{message} ...", file=stream, flush=True)
  try:
    yield
  finally:
    if ticker is not None:
      stop.set()
      thread.join()
      ticker.close()
  print(f"{message}: done in {time.perf_counter() - start:.0f} s", file=stream, flush=True)


class _NoBar:
  """What `work_bar` gives where nothing is drawn: the same calls, no output."""

  def update(self, n: int = 1) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    pass


def work_bar(desc: str, total: int, unit: str, enabled: bool = True, stream=None):
  """A bar for a bounded piece of work inside a stage (batches predicted, episodes solved), used as
  `with work_bar(...) as bar: ... bar.update(n)`.

  Drawn on a terminal only, below the stage's ticking line, and removed when the work is done; on a
  file (a batch job's log) nothing, since the stage's start and end lines say enough there.
  """
  stream = stream or sys.stderr
  if not (enabled and _is_tty(stream)):
    return _NoBar()
  return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False, mininterval=0.2, **_width(stream))


def _count(n: int) -> str:
  return f"{n:,}"


def banner(run, config, workdir: str, start_step: int, devices: list, process_count: int) -> str:
  """The start banner: what is trained on what, where, for how long, and whether it resumes.

  `run` is `engine.runs.Run`; `devices` the global `jax.devices()`.
  """
  data = run.data
  taxonomy = data.taxonomy
  sizes = [f"{_count(len(data.train))} train"]
  if data.val is not None:
    sizes.append(f"{_count(len(data.val))} val")
  sizes.append(f"{_count(len(data.test))} test")
  shape = "x".join(str(d) for d in data.input_shape)
  kinds = sorted({getattr(d, "device_kind", d.platform) for d in devices})
  processes = f"{process_count} process" + ("es" if process_count > 1 else "")
  epochs = config.train.num_epochs
  if start_step == 0:
    start = "fresh start"
    if config.model.get("init_from", ""):
      start += f", encoder from {config.model.init_from}"
  elif start_step >= run.total_steps:
    start = f"resuming from step {start_step:,} (training done; evaluating)"
  else:
    start = f"resuming from step {start_step:,}"
  lines = [
      f"coarse2fine: {config.method} on {config.data.name}, taxonomy {taxonomy.name} "
      f"({taxonomy.num_coarse} coarse / {taxonomy.num_fine} fine classes)",
      f"  data     {', '.join(sizes)} examples; input {shape}; encoder {config.model.encoder}",
      f"  devices  {len(devices)} x {'/'.join(kinds)}, {processes}; global batch {config.train.batch_size}",
      f"  steps    {run.total_steps:,} ({epochs} epoch{'s' if epochs != 1 else ''} x {run.steps_per_epoch:,} "
      f"steps/epoch)",
      f"  workdir  {workdir} ({start})",
  ]
  return "\n".join(lines)
