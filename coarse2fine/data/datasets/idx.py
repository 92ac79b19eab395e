"""Reader and writer for the IDX format of (Fashion-)MNIST.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of
dimensions -- then one uint32 size per dimension, then the data in C order.
Files may be gzip-compressed (the usual `.gz` distribution).
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile

import numpy as np

from coarse2fine import storage

# IDX type code -> numpy dtype (big-endian where it matters).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {dtype: code for code, dtype in _IDX_DTYPES.items()}


def _open(path: str, mode: str):
  return gzip.open(path, mode) if path.endswith(".gz") else open(path, mode)


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (optionally `.gz`; local or on an object store, see `coarse2fine.storage`) into numpy."""
  if storage.is_local(path):
    with _open(path, "rb") as f:
      raw = f.read()
  else:
    raw = storage.read_bytes(path)
    if path.endswith(".gz"):
      raw = gzip.decompress(raw)
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes.")
  code, ndim = raw[2], raw[3]
  if code not in _IDX_DTYPES:
    raise ValueError(f"{path}: unknown IDX type code {code:#04x}.")
  header_end = 4 + 4 * ndim
  shape = struct.unpack(f">{ndim}I", raw[4:header_end])
  dtype = _IDX_DTYPES[code]
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(raw) - header_end != expected:
    raise ValueError(
        f"{path}: header promises shape {shape} ({expected} bytes) but the file holds "
        f"{len(raw) - header_end} bytes of data; the file is truncated or corrupt."
    )
  data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
  return data.astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes `array` as an IDX file (gzip if `path` ends in `.gz`), atomically."""
  array = np.asarray(array)
  big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
  if big_endian not in _DTYPE_CODES:
    raise ValueError(f"IDX cannot store dtype {array.dtype}.")
  header = bytes([0, 0, _DTYPE_CODES[big_endian], array.ndim])
  header += struct.pack(f">{array.ndim}I", *array.shape)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  os.close(fd)
  try:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(tmp, "wb") as f:
      f.write(header + array.astype(big_endian).tobytes())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
