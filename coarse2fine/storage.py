"""Files of workdirs and data folders, on a local disk or in an object store (`gs://`, `s3://`).

Every file the library reads or writes under a run's workdir or a data folder goes through
here. Local paths (anything without a `scheme://`) use the standard library exactly as
before; other paths go through etils `epath` (the same layer orbax and tfds use), which
reaches object stores through fsspec: `gs://` needs gcsfs (`pip install -e ".[cloud]"`),
`s3://` needs s3fs. Paths stay strings in the library's interfaces.

Object stores differ from disks in three ways that matter here:
  * there is no rename: `write_*_atomically` writes a local file through a temporary file
    and a rename, and an object with a single put, which the stores already make atomic
    (readers see the old object or the new one, never part of one);
  * there is no append: `LineLog` (metrics.jsonl) appends locally, and on an object store
    keeps the lines in memory and rewrites the whole object when it is flushed;
  * there is no lock: `engine.workdir_lock` leases a lock object instead of `flock`.

Cloud Storage through an emulator (tests): set `STORAGE_EMULATOR_HOST=http://HOST:PORT`
(gcsfs, google-cloud-storage, tensorboardX) and `TENSORSTORE_GCS_HTTP_URL=http://HOST:PORT`
(orbax's array data); see docs/cloud.md.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tempfile
import time
from typing import Union

from etils import epath

PathLike = Union[str, os.PathLike]


def is_local(path: PathLike) -> bool:
  """Whether `path` is on a local file system (no `scheme://`, or `file://`)."""
  text = os.fspath(path)
  return "://" not in text or text.startswith("file://")


def _local(path: PathLike) -> str:
  text = os.fspath(path)
  return text[len("file://"):] if text.startswith("file://") else text


def epath_of(path: PathLike) -> epath.Path:
  """`path` as an etils `epath.Path` (what orbax takes)."""
  return epath.Path(_local(path) if is_local(path) else os.fspath(path))


def join(path: PathLike, *parts: str) -> str:
  """`os.path.join` locally, `/`-joined for object stores."""
  if is_local(path):
    return os.path.join(os.fspath(path), *parts)
  return posixpath.join(os.fspath(path), *parts)


def absolute(path: PathLike) -> str:
  """A local path made absolute; an object store's URL as it is."""
  return os.path.abspath(_local(path)) if is_local(path) else os.fspath(path)


def dirname(path: PathLike) -> str:
  return os.path.dirname(_local(path)) if is_local(path) else posixpath.dirname(os.fspath(path).rstrip("/"))


def exists(path: PathLike) -> bool:
  return os.path.exists(_local(path)) if is_local(path) else epath_of(path).exists()


def isfile(path: PathLike) -> bool:
  return os.path.isfile(_local(path)) if is_local(path) else epath_of(path).is_file()


def isdir(path: PathLike) -> bool:
  """A folder; on an object store, a prefix that holds objects."""
  return os.path.isdir(_local(path)) if is_local(path) else epath_of(path).is_dir()


def makedirs(path: PathLike) -> None:
  """Creates a folder and its parents (object stores have none to create: nothing is written)."""
  if is_local(path):
    os.makedirs(_local(path), exist_ok=True)


def listdir(path: PathLike) -> list[str]:
  """Names of the entries of a folder (on an object store: of the objects and prefixes under it), sorted."""
  if is_local(path):
    return sorted(os.listdir(_local(path)))
  return sorted(p.name for p in epath_of(path).iterdir())


def list_files(path: PathLike) -> list[str]:
  """Names of the files (not folders) in a folder, sorted; on an object store one listing request, not one per file."""
  if is_local(path):
    with os.scandir(_local(path)) as entries:
      return sorted(e.name for e in entries if e.is_file())
  fs, root = _fs(path)
  return sorted(posixpath.basename(e["name"].rstrip("/")) for e in fs.ls(root, detail=True) if e["type"] == "file")


def read_text(path: PathLike) -> str:
  if is_local(path):
    with open(_local(path), encoding="utf-8") as f:
      return f.read()
  return epath_of(path).read_text(encoding="utf-8")


def read_bytes(path: PathLike) -> bytes:
  if is_local(path):
    with open(_local(path), "rb") as f:
      return f.read()
  return epath_of(path).read_bytes()


def open_file(path: PathLike, mode: str = "r", **kwargs):
  """`open` locally, `epath.Path.open` elsewhere (reading, or writing a whole object)."""
  return open(_local(path), mode, **kwargs) if is_local(path) else epath_of(path).open(mode, **kwargs)


def open_text(path: PathLike, encoding: str = "utf-8", newline: str | None = None):
  """A text file to read, as `open(path, encoding=..., newline=...)` gives it (`newline=""` for csv).

  Locally `open` itself; on an object store the object is read whole and decoded into an
  `io.StringIO` with the same newline handling (fsspec's text mode takes no `newline`).
  """
  if is_local(path):
    return open(_local(path), encoding=encoding, newline=newline)
  return io.StringIO(read_bytes(path).decode(encoding), newline=newline)


def write_bytes_atomically(path: PathLike, data: bytes) -> None:
  """Writes `data` to `path` so that readers never see it half-written.

  Locally: a temporary file in the same folder, then a rename. On an object store: one put,
  which is atomic there already (an object is replaced whole when the upload completes).
  """
  if not is_local(path):
    epath_of(path).write_bytes(data)
    return
  path = _local(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp's files are private; results and configs are for everyone to read
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text_atomically(path: PathLike, text: str) -> None:
  write_bytes_atomically(path, text.encode("utf-8"))


def remove(path: PathLike) -> None:
  """Removes one file or object (missing is fine)."""
  if is_local(path):
    try:
      os.remove(_local(path))
    except FileNotFoundError:
      pass
  else:
    epath_of(path).unlink(missing_ok=True)


def rmtree(path: PathLike) -> None:
  """Removes a folder and everything under it (missing is fine)."""
  if is_local(path):
    shutil.rmtree(_local(path), ignore_errors=True)
  elif epath_of(path).exists():
    epath_of(path).rmtree()


def _fs(path: PathLike):
  """(fsspec file system, path within it) of an object store's URL (gcsfs for gs://, s3fs for s3://)."""
  import fsspec  # an object store's path needs its fsspec file system in any case

  return fsspec.core.url_to_fs(os.fspath(path))


def copytree(source: PathLike, target: PathLike) -> None:
  """Copies a folder and everything under it, between any two of: local, object store."""
  if is_local(source) and is_local(target):
    shutil.copytree(_local(source), _local(target))
  elif is_local(source):
    fs, root = _fs(target)
    fs.put(_local(source).rstrip("/") + "/", root, recursive=True)
  elif is_local(target):
    fs, root = _fs(source)
    fs.get(root.rstrip("/") + "/", _local(target), recursive=True)
  else:
    fs, root = _fs(source)
    fs.copy(root.rstrip("/") + "/", _fs(target)[1], recursive=True)


def move(source: PathLike, target: PathLike) -> None:
  """Moves a file or folder. On an object store: copies every object, then deletes the source (not atomic)."""
  if is_local(source) and is_local(target):
    shutil.move(_local(source), _local(target))
  elif isdir(source):
    copytree(source, target)
    rmtree(source)
  else:
    write_bytes_atomically(target, read_bytes(source))
    remove(source)


def check_writable(path: PathLike, what: str = "--workdir") -> None:
  """Writes and removes a probe file in `path` (created if missing); a one-line error naming the path if it fails."""
  probe = join(path, f".write_probe.{os.getpid()}.{time.time_ns()}")
  try:
    makedirs(path)
    write_bytes_atomically(probe, b"")
    remove(probe)
  except Exception as error:  # noqa: BLE001 -- any failure means the run could not save its work
    hint = ("check the bucket name and that your credentials may write there (gcloud auth application-default "
            "login; $STORAGE_EMULATOR_HOST for an emulator), and that gcsfs is installed (pip install -e "
            "'.[cloud]')" if not is_local(path) else "check its permissions and free space")
    raise PermissionError(f"Cannot write to {what}={os.fspath(path)} ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}): {hint}, or pass another "
                          f"{what}.") from error


class LineLog:
  """A text file of lines that grows: appended to on disk, rewritten whole on an object store.

  An object cannot be appended to, so on an object store the lines are kept in memory and
  `flush` rewrites the object (one put) at most every `min_interval` seconds; `flush(force=True)`
  and `close` always rewrite it. Locally every line is appended and flushed at once, as before.
  """

  def __init__(self, path: PathLike, min_interval: float = 10.0):
    self.path = os.fspath(path)
    self.local = is_local(path)
    self.min_interval = min_interval
    if self.local:
      os.makedirs(os.path.dirname(os.path.abspath(_local(path))), exist_ok=True)
      self._file = open(_local(path), "a", encoding="utf-8")
    else:
      self._lines = [read_text(path)] if exists(path) else []
      self._dirty = False
      self._last_put = None  # the first line is put at once

  def write(self, line: str) -> None:
    if self.local:
      self._file.write(line)
      self._file.flush()
    else:
      self._lines.append(line)
      self._dirty = True
      self.flush()

  def flush(self, force: bool = False) -> None:
    if self.local or not self._dirty:
      return
    if force or self._last_put is None or time.monotonic() - self._last_put >= self.min_interval:
      write_text_atomically(self.path, "".join(self._lines))
      self._dirty, self._last_put = False, time.monotonic()

  def close(self) -> None:
    if self.local:
      self._file.close()
    else:
      self.flush(force=True)
