"""One run per workdir: an OS lock on the workdir folder itself, and a note of who holds it.

`flock` on the folder (Linux, macOS; local disks and most shared file systems) is released
by the OS when the holder exits, also when it is killed, so a crashed run never blocks the
next. Acquiring writes nothing; once the run is accepted (its config matches the checkpoints)
it records its host and pid in `workdir/run.lock.json`, which a refused second run reads to
name the holder. Only process 0 of a run locks.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from typing import Optional

from coarse2fine.engine.reporting import write_json_atomically

HOLDER_FILE = "run.lock.json"


class WorkdirBusy(RuntimeError):
  """Another run holds the workdir."""


class WorkdirLock:
  """`with WorkdirLock(workdir):` holds the workdir for the block; raises `WorkdirBusy` at once if taken."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self._fd: Optional[int] = None

  def __enter__(self) -> "WorkdirLock":
    if not self.enabled:
      return self
    os.makedirs(self.workdir, exist_ok=True)
    fd = os.open(self.workdir, os.O_RDONLY)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise WorkdirBusy(f"{self.workdir} is in use by another run ({self._holder()}); wait for it to finish, "
                        "or train in another --workdir.") from None
    self._fd = fd
    return self

  def record_holder(self) -> None:
    """Writes this process's host and pid for runs that will be refused (call once the run is accepted)."""
    if self._fd is not None:
      write_json_atomically(os.path.join(self.workdir, HOLDER_FILE),
                            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})

  def __exit__(self, *exc) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def _holder(self) -> str:
    try:
      with open(os.path.join(self.workdir, HOLDER_FILE), encoding="utf-8") as f:
        holder = json.load(f)
      return f"host {holder['host']}, pid {holder['pid']}, since {time.ctime(holder['since'])}"
    except (OSError, ValueError, KeyError):
      return "holder unknown"
