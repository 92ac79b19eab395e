"""Where training measurements go: JSON lines, TensorBoard events and a progress line."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Mapping, Optional

import numpy as np

from coarse2fine import storage
from coarse2fine.engine.reporting import write_text_atomically


class MetricWriter:
  """Appends `{"step": s, name: value, ...}` to `workdir/metrics.jsonl` and TensorBoard.

  Only the main process (`enabled=True`) writes. A run resumed at `resume_step` first drops the
  lines logged after that step by the interrupted session, so that each step appears once and
  the log agrees with the checkpoint it continues from.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: Optional[int] = None):
    self.enabled = enabled
    self._tb = None
    if not enabled:
      return
    storage.makedirs(workdir)
    path = storage.join(workdir, "metrics.jsonl")
    if resume_step is not None and storage.isfile(path):
      _keep_lines_up_to(path, resume_step)
    self._jsonl = storage.LineLog(path)  # on an object store: rewritten whole (no appends there)
    self._tb = _summary_writer(storage.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(name, value, int(step))

  def flush(self) -> None:
    """Makes every line written so far durable (on an object store, the throttled rewrite happens now)."""
    if self.enabled:
      self._jsonl.flush(force=True)
      if self._tb is not None:
        self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      if self._tb is not None:
        self._tb.close()


def _summary_writer(logdir: str):
  """A tensorboardX writer, or None where tensorboardX is missing (events are a convenience, metrics.jsonl has all)."""
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    return None
  return SummaryWriter(logdir=logdir) if storage.is_local(logdir) else _UploadedEvents(logdir)


class _UploadedEvents:
  """TensorBoard events for an object-store workdir: written to a local temporary folder, uploaded at each flush.

  An events file grows by appends, which object stores do not have (tensorboardX's own gs://
  writer re-uploads the file at every flush and once more when garbage-collected, blocking on
  a store it cannot reach); here each `flush` (before every checkpoint) and `close` put the
  whole file, through `storage`, to LOGDIR/<events file>. A killed run's events stop at its last checkpoint.
  """

  def __init__(self, logdir: str):
    from tensorboardX import SummaryWriter

    self.logdir = logdir
    self._local = tempfile.mkdtemp(prefix="c2f_tensorboard_")
    self._writer = SummaryWriter(logdir=self._local)

  def add_scalar(self, name: str, value: float, step: int) -> None:
    self._writer.add_scalar(name, value, step)

  def flush(self) -> None:
    self._writer.flush()
    for name in os.listdir(self._local):
      with open(os.path.join(self._local, name), "rb") as f:
        storage.write_bytes_atomically(storage.join(self.logdir, name), f.read())

  def close(self) -> None:
    try:
      self._writer.close()
      self.flush()
    finally:
      shutil.rmtree(self._local, ignore_errors=True)


def _keep_lines_up_to(path: str, step: int) -> None:
  """Rewrites `path` (atomically) without the lines logged after `step` (and without a torn last line).

  At step 0 nothing is kept: a run that starts over also reruns its step-0 hooks, which log again.
  """
  lines = storage.read_text(path).splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      if step > 0 and json.loads(line)["step"] <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    except (ValueError, KeyError, TypeError):
      continue  # a line cut by a kill mid-write
  if len(kept) != len(lines):
    write_text_atomically(path, "".join(kept))


def _format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
  """One status line: step, loss, examples/s and ETA (redrawn in place on a terminal)."""

  def __init__(self, total_steps: int, batch_size: int, enabled: bool = True, stream=None):
    self.total_steps = total_steps
    self.batch_size = batch_size
    self.enabled = enabled
    self.stream = stream or sys.stderr
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._start_step: Optional[int] = None
    self._start_time = 0.0

  def update(self, step: int, loss: float) -> None:
    if not self.enabled:
      return
    now = time.perf_counter()
    if self._start_step is None:
      self._start_step, self._start_time = step, now
      rate = float("nan")
    else:
      rate = (step - self._start_step) / max(now - self._start_time, 1e-9)
    eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
    width = 24
    done = int(width * step / max(self.total_steps, 1))
    line = (f"[{'#' * done}{'.' * (width - done)}] step {step}/{self.total_steps} "
            f"loss {loss:.4f} {rate * self.batch_size:,.0f} ex/s ETA {_format_seconds(eta)}")
    if not np.isfinite(rate):
      line = line.replace("nan ex/s", "- ex/s")
    self.stream.write(("\r" + line) if self._tty else (line + "\n"))
    self.stream.flush()

  def close(self) -> None:
    if self.enabled and self._tty:
      self.stream.write("\n")
