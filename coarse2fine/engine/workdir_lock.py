"""One run per workdir: an OS lock on a local workdir, a leased lock object on an object store.

Local workdirs: `flock` on the folder (Linux, macOS; local disks and most shared file systems)
is released by the OS when the holder exits, also when it is killed, so a crashed run never
blocks the next. Acquiring writes nothing; once the run is accepted (its config matches the
checkpoints) it records its host and pid in `workdir/run.lock.json`, which a refused second
run reads to name the holder.

Object stores (`gs://`, `s3://`) have no locks, and nothing releases a lock when its holder is
killed. There the lock is the object `workdir/run.lock.json` itself, with a lease:
  * acquiring creates it only if it does not exist (on Cloud Storage a create with the
    precondition `ifGenerationMatch=0`, atomic: of two runs starting together one succeeds);
    it holds the host, pid, start time and `heartbeat`, and the lease length;
  * the holder rewrites it (a new `heartbeat`) every `lease / 4` seconds from a background
    thread, and deletes it when the run ends, also on an error;
  * a second run finding it refuses at once, naming the holder, unless its heartbeat is older
    than the lease: the lock of a killed run expires `lease` seconds after its last heartbeat
    ($C2F_LOCK_LEASE_SECONDS, default 120), and the next run takes it over (deleting it only
    if it is still that generation, then creating its own).
Heartbeats are compared with the reader's clock: hosts' clocks must agree to well within the
lease (NTP does). On stores other than Cloud Storage the create is a check then a write, not
atomic (two runs started within a second of each other may both proceed).
Only process 0 of a run locks.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from typing import Optional

from absl import logging

from coarse2fine import storage
from coarse2fine.engine.reporting import write_json_atomically

HOLDER_FILE = "run.lock.json"
DEFAULT_LEASE_SECONDS = 120.0


def lease_seconds() -> float:
  return float(os.environ.get("C2F_LOCK_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))


class WorkdirBusy(RuntimeError):
  """Another run holds the workdir."""


def _describe(holder: dict) -> str:
  try:
    return f"host {holder['host']}, pid {holder['pid']}, since {time.ctime(holder['since'])}"
  except (KeyError, TypeError, ValueError):
    return "holder unknown"


class WorkdirLock:
  """`with WorkdirLock(workdir):` holds the workdir for the block; raises `WorkdirBusy` at once if taken."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self._fd: Optional[int] = None
    self._lease: Optional[ObjectLease] = None

  def __enter__(self) -> "WorkdirLock":
    if not self.enabled:
      return self
    if not storage.is_local(self.workdir):
      self._lease = ObjectLease(storage.join(self.workdir, HOLDER_FILE), lease_seconds())
      self._lease.acquire(self.workdir)
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
    """Writes this process's host and pid for runs that will be refused (call once the run is accepted).

    On an object store the lock object already names the holder.
    """
    if self._fd is not None:
      write_json_atomically(os.path.join(self.workdir, HOLDER_FILE),
                            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})

  def __exit__(self, *exc) -> None:
    if self._lease is not None:
      self._lease.release()
      self._lease = None
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def _holder(self) -> str:
    try:
      return _describe(json.loads(storage.read_text(os.path.join(self.workdir, HOLDER_FILE))))
    except (OSError, ValueError):
      return "holder unknown"


class ObjectLease:
  """The lock object of a workdir on an object store (see the module docstring)."""

  def __init__(self, path: str, lease: float):
    import fsspec  # installed with gcsfs / s3fs, which a gs:// or s3:// workdir needs anyway

    self.path, self.lease = path, lease
    self.fs, self._key = fsspec.core.url_to_fs(path)
    self.token = uuid.uuid4().hex
    self.note = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "token": self.token,
                 "lease_seconds": lease}
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def _payload(self) -> bytes:
    return json.dumps({**self.note, "heartbeat": time.time()}, indent=2).encode()

  def _create(self) -> bool:
    """Creates the lock object if none exists; False if one does."""
    try:
      self.fs.pipe_file(self._key, self._payload(), mode="create")  # gcsfs: ifGenerationMatch=0
      return True
    except FileExistsError:
      return False
    except TypeError:  # a file system without conditional creates: check, then write (not atomic)
      if self.fs.exists(self._key):
        return False
      self.fs.pipe_file(self._key, self._payload())
      return True

  def _read(self) -> tuple[Optional[dict], Optional[str]]:
    """(the lock's note, its generation), or (None, None) if there is none; an unreadable note is {}."""
    self.fs.invalidate_cache(self._key)  # fsspec caches listings; the lock is about the store's state now
    try:
      info = self.fs.info(self._key)
      data = self.fs.cat_file(self._key)
    except FileNotFoundError:
      return None, None
    try:
      note = json.loads(data)
    except ValueError:
      note = {}
    return (note if isinstance(note, dict) else {}), info.get("generation")

  def _delete(self, generation: Optional[str]) -> None:
    """Deletes the lock object, on Cloud Storage only if it is still `generation` (another may have taken it)."""
    try:
      if generation is not None and hasattr(self.fs, "split_path") and type(self.fs).__module__.startswith("gcsfs"):
        bucket, key, _ = self.fs.split_path(self._key)
        self.fs.call("DELETE", "b/{}/o/{}", bucket, key, ifGenerationMatch=str(generation))
        self.fs.invalidate_cache(self._key)
      else:
        self.fs.rm_file(self._key)
    except (FileNotFoundError, FileExistsError):  # gone, or replaced by another run (412): not ours to delete
      pass

  def acquire(self, workdir: str) -> None:
    for _ in range(3):
      if self._create():
        self._start_heartbeat()
        return
      note, generation = self._read()
      if note is None:
        continue  # released in between: try again
      age = time.time() - float(note.get("heartbeat", 0) or 0)
      lease = float(note.get("lease_seconds", self.lease) or self.lease)
      if age <= lease:
        raise WorkdirBusy(
            f"{workdir} is in use by another run ({_describe(note)}; last heartbeat {age:.0f} s ago, the lock "
            f"expires {lease:.0f} s after its last heartbeat); wait for it to finish, or train in another "
            f"--workdir.")
      if "heartbeat" in note:
        logging.warning("Taking over %s: its holder (%s) sent no heartbeat for %.0f s (lease %.0f s).", self.path,
                        _describe(note), age, lease)
      else:  # e.g. a local workdir's holder note, copied with the workdir
        logging.warning("Taking over %s: it has no heartbeat (%s), so no run holds it.", self.path, _describe(note))
      self._delete(generation)
    raise WorkdirBusy(f"Could not take the lock {self.path}: other runs keep taking it; try again.")

  def _start_heartbeat(self) -> None:
    self._thread = threading.Thread(target=self._beat, name="c2f-workdir-lease", daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(self.lease / 4):
      try:
        note, _ = self._read()
        if note is None or note.get("token") != self.token:
          logging.error("Lost the lock %s to another run (%s): this run's saves may now collide with it.",
                        self.path, _describe(note or {}))
          return
        self.fs.pipe_file(self._key, self._payload())
      except Exception as error:  # noqa: BLE001 -- a failed heartbeat is retried at the next one
        logging.warning("Could not renew the lock %s: %s", self.path, error)

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    try:
      note, generation = self._read()
      if note is not None and note.get("token") == self.token:
        self._delete(generation)
    except Exception as error:  # noqa: BLE001 -- the lease expires by itself
      logging.warning("Could not remove the lock %s (%s); it expires %.0f s after its last heartbeat.", self.path,
                      error, self.lease)
