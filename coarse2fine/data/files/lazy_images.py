"""Image datasets that stay files: readers of encoded images, and `LazyImages`, decoded only when needed.

A file-backed `Split.inputs` is a `LazyImages`: indexing it decodes the deterministic
evaluation view ([N, size, size, C] uint8: `Resize(resize) + CenterCrop(size)` for BREEDS and
tieredImageNet, the whole image squashed to size x size for Cars196, SOP and CUB), while
training views are cut from the stored file itself: `stored_file(i)` hands the host stage of the
input pipeline the encoded bytes and their header, and the view's own crop box is decoded at
the DCT scale it needs (`image_codec.decode_box`, `data.augmentation.host.HostView`).

Readers give encoded bytes: `FolderReader` (files under a root), `TfdsReader` (a tfds split,
read without decoding), `ConcatReader` (several readers end to end, e.g. a tfds dataset's train and
test splits pooled and re-split by class). They are picklable, for grain's worker processes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional

import numpy as np

from coarse2fine import storage
from coarse2fine.data.augmentation.crop_boxes import EvalView
from coarse2fine.data.files import image_codec

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp")


class FolderReader:
  """Encoded images stored as files; `paths` ([N] bytes) are relative to `root`."""

  def __init__(self, root: str, paths: np.ndarray):
    self.root, self.paths = root, paths

  def describe(self, i: int) -> str:
    return storage.join(self.root, os.fsdecode(self.paths[i]))

  def read(self, indices: np.ndarray) -> list[bytes]:
    return [storage.read_bytes(self.describe(i)) for i in indices]  # a local file, or an object (gs://...)


class TfdsReader:
  """Encoded images of a tfds split, read through `tfds.data_source` without decoding.

  The data source is opened on first use in each process (grain workers get a pickled
  reader without it). `setup_hint` ends the error raised when the split cannot be read;
  `image_key` names the image feature.
  """

  def __init__(self, name: str, split: str, data_dir: Optional[str] = None, download: bool = False,
               setup_hint: str = "", image_key: str = "image"):
    self.name, self.split, self.data_dir = name, split, data_dir
    self.download, self.setup_hint, self.image_key = download, setup_hint, image_key
    self._source = None

  def __getstate__(self):
    return {**self.__dict__, "_source": None}

  def source(self):
    if self._source is None:
      import tensorflow_datasets as tfds  # heavy import, only on this path

      try:
        self._source = tfds.data_source(self.name, split=self.split, data_dir=self.data_dir,
                                        download=self.download, decoders={self.image_key: tfds.decode.SkipDecoding()})
      except Exception as error:  # tfds raises many types: missing files, bad format, network, ...
        raise RuntimeError(
            f"Could not read tfds {self.name!r} (split {self.split!r}, data_dir={self.data_dir!r}): "
            f"{type(error).__name__}: {error}\n{self.setup_hint}".rstrip()) from error
    return self._source

  def describe(self, i: int) -> str:
    return f"tfds {self.name}/{self.split} record {i}"

  def read(self, indices: np.ndarray) -> list[bytes]:
    return [record[self.image_key] for record in self.source().__getitems__([int(i) for i in indices])]

  def labels(self, chunk: int = 4096, key: str = "label") -> np.ndarray:
    """[N] int64 values of the `key` feature of every record (parses the whole split once)."""
    source = self.source()
    logging.info("Reading the labels of %d records of tfds %s/%s.", len(source), self.name, self.split)
    labels = np.empty(len(source), np.int64)
    for start in range(0, len(source), chunk):
      stop = min(start + chunk, len(source))
      labels[start:stop] = [r[key] for r in source.__getitems__(list(range(start, stop)))]
    return labels


class ConcatReader:
  """The records of `parts` (readers) end to end: record i of part p is record `offsets[p] + i` here.

  sizes: the number of records of each part, [P] ints.
  """

  def __init__(self, parts, sizes):
    if len(parts) != len(sizes) or not parts:
      raise ValueError(f"ConcatReader needs one size per part, got {len(parts)} parts and {len(sizes)} sizes.")
    self.parts = tuple(parts)
    self.offsets = np.concatenate([[0], np.cumsum(np.asarray(sizes, np.int64))])

  def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([n] part, [n] record within it) of concatenated record numbers."""
    indices = np.asarray(indices, np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= self.offsets[-1]):
      raise IndexError(f"ConcatReader has {self.offsets[-1]} records; asked for {indices.min()}..{indices.max()}.")
    part = np.searchsorted(self.offsets, indices, side="right") - 1
    return part, indices - self.offsets[part]

  def describe(self, i: int) -> str:
    part, local = self._locate(np.array([i]))
    return self.parts[part[0]].describe(int(local[0]))

  def read(self, indices: np.ndarray) -> list[bytes]:
    part, local = self._locate(indices)
    out: list = [None] * len(part)
    for p in np.unique(part):  # one read per part, results put back in the order asked
      where = np.flatnonzero(part == p)
      for j, encoded in zip(where, self.parts[p].read(local[where])):
        out[j] = encoded
    return out


@dataclasses.dataclass(frozen=True)
class StoredFile:
  """One example's stored file, as the host stage of a training view receives it.

  image: the encoded bytes and their header; view: the dataset's evaluation view (what
  'none' and 'crop_flip' start from); channels: 3 (RGB) or 1 (grey) decoded.
  """

  image: image_codec.EncodedImage
  view: EvalView
  channels: int


def decode_view(encoded: bytes, view: EvalView, channels: int = 3) -> np.ndarray:
  """Encoded image -> its evaluation view, uint8 [view.size, view.size, channels]."""
  image = image_codec.open_encoded(encoded)
  return image_codec.decode_box(image, view.box(image.height, image.width), (view.size, view.size), channels)


class LazyImages:
  """[N, size, size, C] uint8 evaluation views of encoded images, decoded only when indexed.

  `images[i]` is one view; an integer or boolean array or a slice gives [..., size, size, C].
  `subset(indices)` selects without decoding (`Split.take` uses it); `stored_file(i)` gives the
  stored file of example i for the training views. `resize` > 0: `Resize(resize) +
  CenterCrop(size)`; 0: the whole image squashed to size x size (`crop_boxes.EvalView`).
  Picklable; `np.asarray(images)` decodes everything.
  """

  dtype = np.dtype(np.uint8)
  ndim = 4
  stores_files = True  # training views are cut from `stored_file(i)`

  def __init__(self, reader, index: Optional[np.ndarray] = None, num: int = 0, size: int = 224,
               resize: int = 256, channels: int = 3):
    self.reader, self.channels = reader, channels
    self.view = EvalView(size, resize)
    self.index = np.arange(num, dtype=np.int64) if index is None else np.asarray(index, np.int64)

  @property
  def size(self) -> int:
    return self.view.size

  @property
  def resize(self) -> int:
    return self.view.resize

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.index), self.size, self.size, self.channels)

  def __len__(self) -> int:
    return len(self.index)

  def __repr__(self) -> str:
    return f"{type(self).__name__}(shape={self.shape}, reader={type(self.reader).__name__})"

  def _positions(self, key) -> np.ndarray:
    if isinstance(key, slice):
      return self.index[key]
    key = np.asarray(key)
    if key.dtype == bool:
      if key.shape != (len(self),):
        raise IndexError(f"boolean index of shape {key.shape} for {len(self)} images.")
      return self.index[key]
    if not np.issubdtype(key.dtype, np.integer):
      raise IndexError(f"{type(self).__name__} takes integer or boolean indices or slices, got {key.dtype}.")
    return self.index[key]  # numpy checks the bounds

  def subset(self, indices) -> "LazyImages":
    out = object.__new__(type(self))
    out.__dict__.update(self.__dict__)
    out.index = self._positions(indices)
    return out

  def __getitem__(self, key) -> np.ndarray:
    if isinstance(key, (int, np.integer)):
      return self._decode(np.array([self.index[key]]))[0]
    positions = self._positions(key)
    flat = positions.reshape(-1)
    return self._decode(flat).reshape(*positions.shape, *self.shape[1:])

  def _failed(self, position: int, error: Exception) -> ValueError:
    return ValueError(f"Could not decode {self.reader.describe(position)}: {type(error).__name__}: {error}")

  def _decode(self, positions: np.ndarray) -> np.ndarray:
    out = np.empty((len(positions), *self.shape[1:]), np.uint8)
    for j, (i, encoded) in enumerate(zip(positions, self.reader.read(positions))):
      try:
        out[j] = decode_view(encoded, self.view, self.channels)
      except Exception as error:  # Pillow and simplejpeg raise several types for bad files
        raise self._failed(i, error) from error
    return out

  def stored_file(self, i: int) -> StoredFile:
    """The stored file of example i (its header read, nothing decoded)."""
    position = self.index[i]
    try:
      image = image_codec.open_encoded(self.reader.read(np.array([position]))[0])
    except Exception as error:  # a file Pillow cannot even open
      raise self._failed(position, error) from error
    return StoredFile(image, self.view, self.channels)

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    images = self[np.arange(len(self))]
    return images if dtype is None else images.astype(dtype)
