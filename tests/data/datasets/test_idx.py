"""The IDX reader against files the tests write byte by byte."""

import gzip
import struct

import numpy as np
import pytest

from coarse2fine.data.datasets import idx


def _write_raw(path, header_code, shape, payload: bytes, compress: bool):
  raw = bytes([0, 0, header_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload
  opener = gzip.open if compress else open
  with opener(path, "wb") as f:
    f.write(raw)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_uint8_images_written_by_hand(tmp_path, compress):
  images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
  path = str(tmp_path / ("imgs.gz" if compress else "imgs"))
  _write_raw(path, 0x08, images.shape, images.tobytes(), compress)
  np.testing.assert_array_equal(idx.read_idx(path), images)


def test_reads_big_endian_int32(tmp_path):
  values = np.array([[1, -2, 3], [70000, 5, -6]], dtype=np.int32)
  path = str(tmp_path / "ints.gz")
  _write_raw(path, 0x0C, values.shape, values.astype(">i4").tobytes(), True)
  out = idx.read_idx(path)
  np.testing.assert_array_equal(out, values)
  assert out.dtype.byteorder in ("=", "<", "|")


def test_write_then_read_roundtrip(tmp_path):
  labels = np.arange(10, dtype=np.uint8)
  path = str(tmp_path / "labels.gz")
  idx.write_idx(path, labels)
  np.testing.assert_array_equal(idx.read_idx(path), labels)
  assert list(tmp_path.iterdir()) == [tmp_path / "labels.gz"]  # no temp file left behind


def test_truncated_file_is_reported(tmp_path):
  path = str(tmp_path / "short")
  _write_raw(path, 0x08, (4, 2), bytes(5), False)
  with pytest.raises(ValueError, match="truncated"):
    idx.read_idx(path)


def test_not_idx(tmp_path):
  path = tmp_path / "junk"
  path.write_bytes(b"\x01\x02\x03\x04")
  with pytest.raises(ValueError, match="not an IDX file"):
    idx.read_idx(str(path))
