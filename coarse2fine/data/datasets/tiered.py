"""tieredImageNet (Ren et al. 2018): 84 x 84 ImageNet images, superclass (coarse) and class (fine) labels.

SCGM's setting (docs/datasets.md#few-shot-version-scgm): the few-shot split of Ren et al., 34
superclasses (`label_general`) partitioned into 20 / 6 / 8 for train / val / test, with 351 / 97 /
160 ImageNet classes (`label_specific`) and 448,695 / 124,261 / 206,209 images. Training uses the
train split's coarse labels; evaluation draws few-shot episodes on the fine classes of the *test*
split, whose superclasses training never sees (docs/evaluation.md#cross-granularity-few-shot-scgm).
`data.variant="val"` puts the val split in `test` instead, for model selection as the paper does; ""
(or "test") is the test split.

Label space. `HierarchicalData` has one taxonomy, and the evaluator looks the test split's fine
labels up in `taxonomy.fine_to_coarse`, so the taxonomy is the union of the two splits'
hierarchies, train first: coarse ids 0-19 are the train superclasses and 20-27 the test ones
(20-25 the val ones), fine ids 0-350 the train classes and 351-510 the test ones (351-447 val),
each block in the order of the file's own ids. Train and test classes are thus disjoint by id,
and `fewshot.sample_episodes` (which draws from the classes present in its pool) only ever picks
test classes from `data.test`, and, in the intra setting, one of the test superclasses. Names
shared by two classes (ImageNet has two "crane"s) get " (<split> <id>)" appended. What this means
for configs:
  * evaluate with `eval.protocols=("fewshot",)` (retrieval and kmeans also make sense): coarse and
    fine classification accuracy on test is meaningless, no test class or superclass is trained;
  * kmeans defaults to `taxonomy.num_fine` = 511 clusters; set `eval.kmeans_clusters=160` (97 for val);
  * coarse heads have 28 (26) outputs of which the last 8 (6) never see an example; they only
    learn to stay low, so a coarse-supervised method trains as on the 20 train superclasses;
  * `data.val_fraction` carves a validation split from train (train classes), as for every dataset.

Files, looked up in `data.dir` and `data.dir/tiered-imagenet` (and nowhere else when data.dir is set),
else in `$C2F_DATA_DIR/tiered_imagenet` and `$C2F_DATA_DIR/tiered_imagenet/tiered-imagenet` (learn2learn
extracts its archive into `<root>/tiered-imagenet/`), for the train split and the evaluated one:

  <split>_labels.pkl      dict: label_specific [N] int, label_general [N] int, label_specific_str
                          [K] and label_general_str [C] class names (ids index the name lists;
                          a dict id -> name or name -> id is read too); names that no example
                          uses are left out, with a warning
  <split>_images_png.pkl  list of N PNG-encoded 84 x 84 x 3 images (bytes, or cv2.imencode's
                          [L, 1] uint8 arrays); or, if absent,
  <split>_images.npz      `images` [N, 84, 84, 3] uint8 in BGR order (what Ren et al.'s
                          `decompress` writes next to the pickles; channels are flipped to RGB)

What was verified, in public sources (not on the real archive, which is not available here):
renmengye/few-shot-ssl-public `fewshot/data/compress_tiered_imagenet.py` (`compress` pickles the
list of `cv2.imencode('.png', im)[1]` arrays of the `images` array of `<split>_images.npz`;
`decompress` writes `images` back with `cv2.imdecode`, hence BGR) and `fewshot/data/
tiered_imagenet.py` (images read with `cv2.imread`, resized to 84 x 84; the label pickle holds the
four keys above and is read with `encoding='bytes'`, being a Python 2 pickle); learnables/learn2learn
`learn2learn/vision/datasets/tiered_imagenet.py` (`<root>/tiered-imagenet/<split>_images_png.pkl`,
images opened with `PIL.Image.open(io.BytesIO(images[i]))`, 'val' as the validation split's file
prefix); other public loaders of `<split>_images.npz` flip `[..., ::-1]` to RGB, read the label names
as bytes (`encoding='bytes'`, or bytes keys in re-pickled copies), and one treats label_general_str as
a dict (`.keys()`), hence the dict forms above. Pickles are read with `encoding="latin1"`, which Python 2 pickles holding numpy
arrays need and Python 3 pickles ignore.

Images are decoded when indexed (`lazy_images.LazyImages`; the train split decoded would take 9.5 GB).
So that grain workers do not each receive a pickled copy of the multi-GB list of PNGs, the first
load writes the PNGs back to back into `<split>_images_png.blob.npy` (about the pickle's size) with
their offsets in `<split>_images_png.offsets.npy`, next to the pickle, and later loads memory-map
them; delete both to rebuild (they are rebuilt when the pickle is newer). If the folder is not
writable the PNGs stay in memory, with a warning. An uncompressed `.npz` is memory-mapped in place;
a compressed one is read whole. On an object store (`data.dir=gs://...`, see `coarse2fine.storage`)
there is no cache and no mapping: the PNGs stay in memory and an `.npz` is read whole.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import struct
import tempfile
import zipfile
from collections import Counter
from typing import NamedTuple, Optional, Sequence

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.files.lazy_images import LazyImages
from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy

IMAGE_SIZE = 84
# SCGM's values (docs/datasets.md#image-sizes-and-the-evaluation-view)
MEAN = np.array([0.4783, 0.4564, 0.4102], np.float32)
STD = np.array([0.2795, 0.2736, 0.2859], np.float32)
VARIANTS = {"": "test", "test": "test", "val": "val"}  # data.variant -> the split that becomes `test`
LABEL_KEYS = ("label_specific", "label_general", "label_specific_str", "label_general_str")
SUBDIR = "tiered-imagenet"  # where learn2learn's archive puts the files below its root
SETUP_HINT = ("Get Ren et al.'s files with learn2learn (`l2l.vision.datasets.TieredImagenet(root=ROOT, "
              "mode='train', download=True)` fetches all three splits into ROOT/tiered-imagenet/) or from "
              "the link in github.com/renmengye/few-shot-ssl-public, and set data.dir to that folder.")


def _preview(items: Sequence, limit: int = 5) -> str:
  items = list(items)
  more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
  return ", ".join(str(i) for i in items[:limit]) + more


def _load_pickle(path: str):
  # Ren et al.'s pickles come from Python 2; latin1 is what their numpy arrays need.
  if not storage.is_local(path):
    return pickle.loads(storage.read_bytes(path), encoding="latin1")
  with open(path, "rb") as f:
    return pickle.load(f, encoding="latin1")


def _text(value) -> str:
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------------------------
# Finding the files.


def _missing(folder: str, split: str) -> list[str]:
  """The files `split` needs that `folder` lacks ([] when it has them all)."""
  missing = []
  if not storage.isfile(storage.join(folder, f"{split}_labels.pkl")):
    missing.append(f"{split}_labels.pkl")
  if not any(storage.isfile(storage.join(folder, f"{split}_images{s}")) for s in ("_png.pkl", ".npz")):
    missing.append(f"{split}_images_png.pkl (or {split}_images.npz)")
  return missing


def find_data_dir(data_dir: str, splits: Sequence[str]) -> str:
  """The first candidate folder (see the module docstring) that holds the files of `splits`."""
  roots = [data_dir] if data_dir else []  # a data.dir without the files is an error, not a fallback
  if not data_dir and os.environ.get("C2F_DATA_DIR"):
    roots.append(storage.join(os.environ["C2F_DATA_DIR"], "tiered_imagenet"))
  candidates = [folder for root in roots for folder in (root, storage.join(root, SUBDIR))]
  for candidate in candidates:
    if not any(_missing(candidate, split) for split in splits):
      return candidate
  looked = "; ".join(f"{c} lacks {[m for s in splits for m in _missing(c, s)]}" for c in candidates)
  raise FileNotFoundError(f"tieredImageNet needs the {' and '.join(splits)} files of Ren et al.: "
                          f"{looked or 'neither data.dir nor $C2F_DATA_DIR is set'}. {SETUP_HINT}")


# ------------------------------------------------------------------------------------
# Labels and the taxonomy.


class SplitLabels(NamedTuple):
  """The labels of one split file, in the file's own ids."""

  fine: np.ndarray  # [N] int32 ids into fine_names (label_specific)
  coarse: np.ndarray  # [N] int32 ids into coarse_names (label_general)
  fine_names: list[str]  # [K] label_specific_str
  coarse_names: list[str]  # [C] label_general_str
  parent: np.ndarray  # [K] int32 coarse id of each fine class


def _ids(raw, key: str, num_names: int, path: str) -> np.ndarray:
  ids = np.asarray(raw[key]).reshape(-1)
  if ids.size and not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"{path}: {key} must hold integer ids, got dtype {ids.dtype}.")
  bad = (ids < 0) | (ids >= num_names)
  if bad.any():
    raise ValueError(f"{path}: {int(bad.sum())} {key} ids are outside [0, {num_names}) (e.g. "
                     f"{_preview(np.unique(ids[bad]))}), but {key}_str names {num_names} classes.")
  return ids.astype(np.int32)


def _names(raw, key: str, path: str) -> list[str]:
  """Class names by id: a list, or a dict either way round (id -> name or name -> id)."""
  names = raw[key]
  if isinstance(names, dict):
    items = list(names.items())
    if all(isinstance(k, (int, np.integer)) for k, _ in items):
      by_id = {int(k): v for k, v in items}
    elif all(isinstance(v, (int, np.integer)) for _, v in items):
      by_id = {int(v): k for k, v in items}
    else:
      raise ValueError(f"{path}: {key} is a dict without integer ids as keys or values.")
    if sorted(by_id) != list(range(len(by_id))):
      raise ValueError(f"{path}: the ids of {key} are not 0 .. {len(by_id) - 1}.")
    names = [by_id[i] for i in range(len(by_id))]
  return [_text(n) for n in names]


def _compact(ids: np.ndarray, used: np.ndarray, names: list[str], key: str, path: str):
  """Drops the classes no example uses; ids are renumbered in order."""
  if used.all():
    return ids, names
  logging.warning("%s: %s names %d classes no example has (%s); they are left out.", path, key,
                  int((~used).sum()), _preview(n for n, u in zip(names, used) if not u))
  new_id = np.cumsum(used) - 1
  return new_id[ids].astype(np.int32), [n for n, u in zip(names, used) if u]


def read_labels(path: str) -> SplitLabels:
  """Parses and checks a `<split>_labels.pkl` (see the module docstring)."""
  raw = _load_pickle(path)
  if not isinstance(raw, dict):
    raise ValueError(f"{path}: expected a dict with keys {list(LABEL_KEYS)}, got a {type(raw).__name__}.")
  raw = {_text(key): value for key, value in raw.items()}  # keys are bytes if re-pickled after encoding='bytes'
  missing = [key for key in LABEL_KEYS if key not in raw]
  if missing:
    raise ValueError(f"{path} lacks {missing}; it has {sorted(raw)}. The superclass labels come with Ren et "
                     f"al.'s label files (as learn2learn ships them); repackagings with only 'labels' have "
                     f"none. {SETUP_HINT}")
  fine_names = _names(raw, "label_specific_str", path)
  coarse_names = _names(raw, "label_general_str", path)
  fine = _ids(raw, "label_specific", len(fine_names), path)
  coarse = _ids(raw, "label_general", len(coarse_names), path)
  if len(fine) != len(coarse):
    raise ValueError(f"{path}: label_specific has {len(fine)} entries but label_general {len(coarse)}; the "
                     f"label arrays are inconsistent.")
  # Every example of a class must lie under the same superclass.
  pairs = np.unique(fine.astype(np.int64) * len(coarse_names) + coarse)
  pair_fine, pair_coarse = pairs // len(coarse_names), pairs % len(coarse_names)
  counts = np.bincount(pair_fine, minlength=len(fine_names))
  if (counts > 1).any():
    k = int(np.flatnonzero(counts > 1)[0])
    raise ValueError(f"{path}: {int((counts > 1).sum())} classes have examples under several superclasses, "
                     f"e.g. {fine_names[k]!r} (label_specific {k}) under label_general "
                     f"{pair_coarse[pair_fine == k].tolist()}; the label arrays are inconsistent.")
  # Names without examples cannot be placed in the taxonomy (nor sampled); they are left out.
  fine, fine_names = _compact(fine, counts > 0, fine_names, "label_specific_str", path)
  used_coarse = np.bincount(pair_coarse, minlength=len(coarse_names)) > 0
  coarse_of_pair = np.cumsum(used_coarse)[pair_coarse] - 1
  coarse, coarse_names = _compact(coarse, used_coarse, coarse_names, "label_general_str", path)
  parent = np.empty(len(fine_names), np.int32)
  parent[np.cumsum(counts > 0)[pair_fine] - 1] = coarse_of_pair
  return SplitLabels(fine, coarse, fine_names, coarse_names, parent)


def _unique(names: list[tuple[str, str, int]]) -> list[str]:
  """Names of (name, split, id) triples, with " (split id)" appended where a name repeats."""
  counts = Counter(name for name, _, _ in names)
  return [name if counts[name] == 1 else f"{name} ({split} {i})" for name, split, i in names]


def union_taxonomy(name: str, train: SplitLabels, other: SplitLabels, other_split: str) -> Taxonomy:
  """Train's classes and superclasses first, then `other`'s (module docstring, "Label space")."""
  fine = [(n, s, i) for labels, s in ((train, "train"), (other, other_split)) for i, n in enumerate(labels.fine_names)]
  coarse = [(n, s, i) for labels, s in ((train, "train"), (other, other_split))
            for i, n in enumerate(labels.coarse_names)]
  parents = np.concatenate([train.parent, other.parent + len(train.coarse_names)])
  return Taxonomy(name, _unique(fine), _unique(coarse), parents)


# ------------------------------------------------------------------------------------
# Images.


class BlobReader:
  """PNGs stored back to back in a uint8 `.npy` (memory-mapped on first use in each process).

  offsets: [N + 1] int64, image i is blob[offsets[i]:offsets[i + 1]]. Pickles without the map.
  """

  def __init__(self, path: str, offsets: np.ndarray, source: str):
    self.path, self.offsets, self.source = path, offsets, source
    self._blob = None

  def __getstate__(self):
    return {**self.__dict__, "_blob": None}

  def describe(self, i: int) -> str:
    return f"image {i} of {self.source} (cached in {self.path})"

  def read(self, indices: np.ndarray) -> list[bytes]:
    if self._blob is None:
      self._blob = np.load(self.path, mmap_mode="r")
    return [self._blob[self.offsets[i]:self.offsets[i + 1]].tobytes() for i in indices]


class ListReader:
  """PNGs held in memory; the fallback when the blob cache cannot be written."""

  def __init__(self, items: list[bytes], source: str):
    self.items, self.source = items, source

  def describe(self, i: int) -> str:
    return f"image {i} of {self.source}"

  def read(self, indices: np.ndarray) -> list[bytes]:
    return [self.items[i] for i in indices]


def _encoded(item, i: int, path: str) -> np.ndarray:
  """[L] uint8 view of one pickled PNG: bytes, or cv2.imencode's [L, 1] uint8 array."""
  if isinstance(item, np.ndarray):
    if item.dtype != np.uint8:
      raise ValueError(f"{path}: image {i} is a {item.dtype} array; expected PNG bytes (uint8).")
    return np.ascontiguousarray(item).reshape(-1)
  if isinstance(item, (bytes, bytearray, memoryview)):
    return np.frombuffer(item, np.uint8)
  raise ValueError(f"{path}: image {i} is a {type(item).__name__}; expected PNG-encoded bytes.")


def _cached_offsets(png_path: str, blob_path: str, offsets_path: str) -> Optional[np.ndarray]:
  """The cache's offsets if it is complete and not older than the pickle, else None."""
  if not (os.path.isfile(blob_path) and os.path.isfile(offsets_path)):
    return None
  if os.path.getmtime(offsets_path) < os.path.getmtime(png_path):
    return None
  try:
    offsets = np.load(offsets_path)
    blob = np.load(blob_path, mmap_mode="r")
  except (OSError, ValueError):
    return None  # a damaged cache is rebuilt
  if offsets.ndim != 1 or len(offsets) < 2 or blob.ndim != 1 or offsets[-1] != len(blob):
    return None
  return offsets


def _write_cache(items: list, png_path: str, blob_path: str, offsets_path: str) -> np.ndarray:
  """Writes the PNGs of `items` into the blob cache; returns the [N + 1] offsets."""
  parts = [_encoded(item, i, png_path) for i, item in enumerate(items)]  # views, no copies
  offsets = np.zeros(len(parts) + 1, np.int64)
  np.cumsum([len(p) for p in parts], out=offsets[1:])
  folder = os.path.dirname(blob_path)
  # Temporary files in the same folder, renamed once complete; the offsets file last marks it done.
  fd, blob_tmp = tempfile.mkstemp(dir=folder, suffix=".npy")
  os.close(fd)
  fd, offsets_tmp = tempfile.mkstemp(dir=folder, suffix=".npy")
  os.close(fd)
  try:
    blob = np.lib.format.open_memmap(blob_tmp, mode="w+", dtype=np.uint8, shape=(int(offsets[-1]),))
    for start, part in zip(offsets, parts):
      blob[start:start + len(part)] = part
    blob.flush()
    del blob
    np.save(offsets_tmp, offsets)
    os.replace(blob_tmp, blob_path)
    os.replace(offsets_tmp, offsets_path)
  finally:
    for tmp in (blob_tmp, offsets_tmp):
      if os.path.exists(tmp):
        os.unlink(tmp)
  return offsets


def _png_list(items, png_path: str):
  if not isinstance(items, (list, tuple)) or not items:
    raise ValueError(f"{png_path}: expected a non-empty list of PNG-encoded images, got "
                     f"{type(items).__name__} of length {len(items) if hasattr(items, '__len__') else '?'}.")
  return items


def png_images(png_path: str) -> LazyImages:
  """[N, 84, 84, 3] lazy images of a `<split>_images_png.pkl`, through the blob cache."""
  if not storage.is_local(png_path):  # no cache beside an object store's pickle: its PNGs are kept in memory
    logging.info("Reading %s into memory (an object store's file; a local copy gets a memory-mapped cache).",
                 png_path)
    items = _png_list(_load_pickle(png_path), png_path)
    encoded = [_encoded(item, i, png_path).tobytes() for i, item in enumerate(items)]
    return LazyImages(ListReader(encoded, png_path), num=len(encoded), size=IMAGE_SIZE, resize=IMAGE_SIZE)
  stem = png_path[:-len(".pkl")]
  blob_path, offsets_path = stem + ".blob.npy", stem + ".offsets.npy"
  offsets = _cached_offsets(png_path, blob_path, offsets_path)
  if offsets is None:
    logging.info("Reading %s (once; its PNGs are then cached in %s).", png_path, blob_path)
    items = _png_list(_load_pickle(png_path), png_path)
    try:
      offsets = _write_cache(items, png_path, blob_path, offsets_path)
    except OSError as error:
      logging.warning("Could not write %s (%s); keeping the PNGs in memory, so every grain worker gets a copy.",
                      blob_path, error)
      encoded = [_encoded(item, i, png_path).tobytes() for i, item in enumerate(items)]
      return LazyImages(ListReader(encoded, png_path), num=len(encoded), size=IMAGE_SIZE, resize=IMAGE_SIZE)
  reader = BlobReader(blob_path, offsets, png_path)
  return LazyImages(reader, num=len(offsets) - 1, size=IMAGE_SIZE, resize=IMAGE_SIZE)


class NpyReader:
  """The `images` member of an uncompressed `.npz`, memory-mapped on first use in each process."""

  def __init__(self, path: str, offset: int, shape: tuple[int, ...]):
    self.path, self.offset, self.shape = path, offset, shape
    self._array = None

  def __getstate__(self):
    return {**self.__dict__, "_array": None}

  def describe(self, i: int) -> str:
    return f"image {i} of {self.path}"

  def read_array(self, positions: np.ndarray) -> np.ndarray:
    if self._array is None:
      self._array = np.memmap(self.path, np.uint8, mode="r", offset=self.offset, shape=self.shape)
    return np.ascontiguousarray(self._array[positions][..., ::-1])  # BGR (cv2) -> RGB


class MappedImages(LazyImages):
  """[N, 84, 84, 3] uint8 images of a decoded `.npz`, read (not decoded) when indexed."""

  def subset(self, indices) -> "MappedImages":
    return MappedImages(self.reader, self._positions(indices), size=self.size, resize=self.resize)

  def _decode(self, positions: np.ndarray) -> np.ndarray:
    return self.reader.read_array(positions)


def _stored_array(path: str, member: str = "images.npy") -> Optional[tuple[int, tuple, np.dtype]]:
  """(file offset, shape, dtype) of an uncompressed C-order `member` of an `.npz`, else None."""
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
      if member not in names:
        raise ValueError(f"{path} holds {names}, not the 'images' array of Ren et al.'s decompressed images.")
      info = archive.getinfo(member)
  except zipfile.BadZipFile as error:
    raise ValueError(f"{path} is not an .npz archive: {error}") from error
  if info.compress_type != zipfile.ZIP_STORED:
    return None  # np.savez_compressed
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    header = f.read(30)  # the zip local file header; name and extra field follow it
    if header[:4] != b"PK\x03\x04":
      return None
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    f.seek(info.header_offset + 30 + name_length + extra_length)
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
      return None
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(f)
    if fortran_order:
      return None
    return f.tell(), shape, dtype


def npz_images(path: str) -> np.ndarray | MappedImages:
  """[N, 84, 84, 3] RGB images of a `<split>_images.npz` (BGR `images`): mapped, or read if compressed."""
  local = storage.is_local(path)
  stored = _stored_array(path) if local else None  # an object store's file cannot be memory-mapped: read whole
  if stored is None:
    with np.load(path if local else io.BytesIO(storage.read_bytes(path))) as npz:
      images = npz["images"]
    shape, dtype = images.shape, images.dtype
  else:
    _, shape, dtype = stored
  if len(shape) != 4 or shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or dtype != np.uint8:
    raise ValueError(f"{path}: 'images' must be [N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3] uint8, got {list(shape)} {dtype}.")
  if stored is None and not local:
    logging.info("%s is on an object store, so its %d images are read into memory.", path, shape[0])
    return np.ascontiguousarray(images[..., ::-1])
  if stored is None:
    logging.warning("%s is compressed, so its %d images are read into memory; np.savez (uncompressed) "
                    "lets them be memory-mapped.", path, shape[0])
    return np.ascontiguousarray(images[..., ::-1])
  return MappedImages(NpyReader(path, stored[0], shape), num=shape[0], size=IMAGE_SIZE, resize=IMAGE_SIZE)


def split_images(folder: str, split: str):
  """The images of `split` in `folder`: the PNG pickle if present, else the `.npz`."""
  png_path = storage.join(folder, f"{split}_images_png.pkl")
  if storage.isfile(png_path):
    return png_images(png_path)
  return npz_images(storage.join(folder, f"{split}_images.npz"))


# ------------------------------------------------------------------------------------
# The loader.


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """tieredImageNet: train = the train split, test = the test (or `data.variant="val"`: val) split."""
  if data_config.variant not in VARIANTS:
    raise ValueError(f"Unknown tieredImageNet variant data.variant={data_config.variant!r}; choose one of "
                     f"{sorted(VARIANTS)} (\"\" and \"test\": evaluate on the test split, \"val\": on the val split).")
  if data_config.taxonomy:
    raise ValueError(f"tieredImageNet defines its own hierarchy (label_general -> label_specific); leave "
                     f"data.taxonomy empty (got {data_config.taxonomy!r}).")
  other = VARIANTS[data_config.variant]
  folder = find_data_dir(data_config.dir, ("train", other))
  labels = {split: read_labels(storage.join(folder, f"{split}_labels.pkl")) for split in ("train", other)}
  taxonomy = union_taxonomy("tiered_imagenet" if other == "test" else "tiered_imagenet_val",
                            labels["train"], labels[other], other)
  logging.info("tieredImageNet: train %d superclasses / %d classes, %s %d / %d (the standard split: 20 / 351, "
               "val 6 / 97, test 8 / 160).", len(labels["train"].coarse_names), len(labels["train"].fine_names),
               other, len(labels[other].coarse_names), len(labels[other].fine_names))
  splits = {}
  for split, fine_shift, coarse_shift in (("train", 0, 0),
                                          (other, len(labels["train"].fine_names),
                                           len(labels["train"].coarse_names))):
    images = split_images(folder, split)
    if len(images) != len(labels[split].fine):
      raise ValueError(f"{folder}: {split} has {len(images)} images but {len(labels[split].fine)} labels in "
                       f"{split}_labels.pkl; the files do not belong together.")
    splits[split] = make_split(images, fine=labels[split].fine + fine_shift,
                               coarse=labels[split].coarse + coarse_shift, taxonomy=taxonomy,
                               where=f"tiered_imagenet/{split} ({folder})")
  return HierarchicalData(name="tiered_imagenet", taxonomy=taxonomy, train=splits["train"], test=splits[other],
                          mean=MEAN, std=STD)
