"""Your own images with coarse (and maybe fine) labels, in folders or listed in a file: `data.name="image_folder"`.

Layouts (docs/datasets.md#image-folders):

  data.dir=ROOT     ROOT/train/<coarse>/[<fine>/]<image> and optionally ROOT/test/... likewise. A coarse folder holds
                    either images (their fine class unknown) or fine folders of images, not both.
  data.list=FILE    a .csv or .tsv file with a header row and the columns path, coarse[, fine][, split]: paths
                    relative to the file's folder (or absolute), an empty fine cell = unknown, split train or test.

Images are .jpg, .jpeg, .png or .webp (any case); hidden entries and other files are ignored. Without test images a
stratified `data.test_fraction` of the examples is held out (by fine class where known, else by coarse class),
seeded by `data.split_seed`.

Taxonomy: `data.taxonomy` "folders" (or "") builds it from the names, ids in sorted name order; a coarse class
without any known fine class gets one placeholder fine class "<coarse>/unknown" and its examples fine label -1
(as the Python API's `fit` without fine labels). Any other value is a built-in taxonomy or a taxonomy file whose
names the folders (columns) must use; ids follow it.

Every image's header is read when loading (an unreadable file is named then); pixels are decoded only when needed
(`lazy_images.LazyImages`): the evaluation view is the whole image squashed to `data.image_size` squared (0: the
images' own size, which they must share), grey (1 channel) when every image is grey, else RGB. Inputs are normalised
with the mean and std of up to 1000 training images (or ImageNet's, as `data.normalization` resolves).

`folder_export` writes Fashion-MNIST as such a folder.
"""

from __future__ import annotations

import concurrent.futures
import csv
import logging
import os
from typing import NamedTuple, Sequence

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.datasets.arrays import input_statistics
from coarse2fine.data.files.lazy_images import IMAGE_SUFFIXES, FolderReader, LazyImages
from coarse2fine.data.splits import UNKNOWN_FINE, HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy

NAME = "image_folder"
SPLITS = ("train", "test")
FROM_FOLDERS = ("folders", "")  # data.taxonomy values that build the taxonomy from the names
COLUMNS, OPTIONAL_COLUMNS = ("path", "coarse"), ("fine", "split")
DELIMITERS = {".csv": ",", ".tsv": "\t"}
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # Pillow modes decoded as one channel
STATS_IMAGES = 1000  # training images the mean and std are computed from
READERS = 16  # threads reading headers (I/O-bound, object stores especially)
ACCEPTED = "/".join(s.lstrip(".") for s in IMAGE_SUFFIXES)


def _preview(items: Sequence, limit: int = 5) -> str:
  items = list(items)
  more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
  return ", ".join(str(i) for i in items[:limit]) + more


def is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_SUFFIXES)


def _hidden(name: str) -> bool:
  return name.startswith(".")


class Listing(NamedTuple):
  """The examples found, [N] str each: path (relative to the reader's root), coarse and fine names ("" =
  unknown), split ("train" or "test")."""

  path: np.ndarray
  coarse: np.ndarray
  fine: np.ndarray
  split: np.ndarray

  def take(self, mask) -> "Listing":
    return Listing(*(column[mask] for column in self))


def _listing(rows: list[tuple[str, str, str, str]]) -> Listing:
  return Listing(*(np.array(column, dtype=str) for column in zip(*rows)))


# ------------------------------------------------------------------------------------
# The two layouts.


def _subfolders(folder: str) -> tuple[list[str], list[str]]:
  """(images, folders) names in `folder`, sorted, hidden ones and other files left out."""
  files = set(storage.list_files(folder))
  images = [n for n in sorted(files) if is_image(n) and not _hidden(n)]
  folders = [n for n in storage.listdir(folder) if n not in files and not _hidden(n)]
  return images, folders


def scan_folders(root: str) -> Listing:
  """ROOT/{train,test}/<coarse>/[<fine>/]<image>; paths relative to ROOT, test rows only if ROOT/test exists."""
  if not storage.isdir(root):
    raise FileNotFoundError(f"data.dir={root!r} is not a folder; expected ROOT/train/<coarse>/[<fine>/]<image>.")
  if not storage.isdir(storage.join(root, "train")):
    raise FileNotFoundError(f"{root} has no train/ folder; expected {root}/train/<coarse>/[<fine>/]<image> "
                            "(and optionally test/ likewise), or give a list with data.list.")
  rows = []
  for split in SPLITS:
    split_dir = storage.join(root, split)
    if split == "test" and not storage.isdir(split_dir):
      continue
    loose, coarse_names = _subfolders(split_dir)
    if loose:
      raise ValueError(f"{split_dir} holds images outside coarse folders ({_preview(loose)}); move them into "
                       f"{split_dir}/<coarse>/.")
    for coarse in coarse_names:
      coarse_dir = storage.join(split_dir, coarse)
      images, fine_names = _subfolders(coarse_dir)
      if images and fine_names:
        raise ValueError(f"{coarse_dir} holds both images ({_preview(images, 2)}) and fine folders "
                         f"({_preview(fine_names, 2)}); put every image of a coarse folder in a fine folder, or none.")
      rows += [(f"{split}/{coarse}/{n}", coarse, "", split) for n in images]
      for fine in fine_names:
        fine_dir = storage.join(coarse_dir, fine)
        fine_images, deeper = _subfolders(fine_dir)
        if deeper:
          raise ValueError(f"{fine_dir} holds folders ({_preview(deeper, 2)}); the layout is "
                           f"{split}/<coarse>/<fine>/<image>, one fine level at most.")
        if not fine_images:
          raise ValueError(f"{fine_dir} holds no {ACCEPTED} images; remove the empty fine folder.")
        rows += [(f"{split}/{coarse}/{fine}/{n}", coarse, fine, split) for n in fine_images]
      if not images and not fine_names:
        raise ValueError(f"{coarse_dir} holds no {ACCEPTED} images (nor fine folders of them); remove it.")
  if not any(split == "train" for *_, split in rows):
    raise ValueError(f"{root}/train holds no coarse folders of {ACCEPTED} images; expected "
                     f"{root}/train/<coarse>/[<fine>/]<image>.")
  return _listing(rows)


def read_list(path: str) -> Listing:
  """The rows of a .csv/.tsv list; paths resolved against the list's folder (absolute paths and URLs kept)."""
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in DELIMITERS:
    raise ValueError(f"data.list={path!r} must be a .csv or .tsv file with the columns "
                     f"{', '.join(COLUMNS)}[, {', '.join(OPTIONAL_COLUMNS)}].")
  if not storage.isfile(path):
    raise FileNotFoundError(f"data.list={path!r} does not exist.")
  folder = storage.dirname(path)
  rows, header = [], None
  with storage.open_text(path, newline="") as f:
    for number, cells in enumerate(csv.reader(f, delimiter=DELIMITERS[suffix]), start=1):
      cells = [c.strip() for c in cells]
      if not any(cells):
        continue
      if header is None:
        header = [c.lower() for c in cells]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
          raise ValueError(f"{path} lacks the columns {missing} (its header row: {cells}); the first row must name "
                           f"the columns {', '.join(COLUMNS)}[, {', '.join(OPTIONAL_COLUMNS)}].")
        continue
      if len(cells) != len(header):
        raise ValueError(f"{path}, line {number}: {len(cells)} cells for the {len(header)} columns {header}.")
      row = dict(zip(header, cells))
      if not row["path"] or not row["coarse"]:
        raise ValueError(f"{path}, line {number}: every row needs a path and a coarse class, got {cells}.")
      if not is_image(row["path"]):
        raise ValueError(f"{path}, line {number}: {row['path']!r} is not a {ACCEPTED} image.")
      split = row.get("split", "").lower() or "train"
      if split not in SPLITS:
        raise ValueError(f"{path}, line {number}: split {row['split']!r}; use train or test (or leave it empty).")
      absolute = not storage.is_local(row["path"]) or os.path.isabs(row["path"])
      rows.append((row["path"] if absolute else storage.join(folder, row["path"]), row["coarse"],
                   row.get("fine", ""), split))
  if not rows:
    raise ValueError(f"{path} lists no images; expected a header row {', '.join(COLUMNS)}[, ...] and a row per image.")
  if not any(split == "train" for *_, split in rows):
    raise ValueError(f"{path} lists no train images (every row's split is test).")
  return _listing(rows)


# ------------------------------------------------------------------------------------
# Splits and the taxonomy.


def check_test_classes(listing: Listing) -> None:
  """Test classes must be trained on: coarse classes, and fine classes of coarse classes that train has fine of."""
  train, test = listing.split == "train", listing.split == "test"
  absent = sorted(set(listing.coarse[test]) - set(listing.coarse[train]))
  if absent:
    raise ValueError(f"The test images have coarse classes that no train image has: {_preview(absent)}.")
  known = listing.fine != ""
  train_fine = set(listing.fine[train & known])
  coarse_with_fine = set(listing.coarse[train & known])
  absent = sorted({f for f, c in zip(listing.fine[test & known], listing.coarse[test & known])
                   if c in coarse_with_fine and f not in train_fine})
  if absent:
    raise ValueError(f"The test images have fine classes that no train image of their coarse class has: "
                     f"{_preview(absent)}.")


def hold_out(strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """[N] bool, True for the held-out examples: round(fraction * n) of each stratum's n, at most n - 1, seeded."""
  rng = np.random.default_rng(seed)
  held = np.zeros(len(strata), bool)
  for stratum in np.unique(strata):
    members = np.flatnonzero(strata == stratum)
    rng.shuffle(members)
    held[members[:min(int(round(fraction * len(members))), len(members) - 1)]] = True
  return held


def folder_taxonomy(listing: Listing) -> Taxonomy:
  """Coarse and fine classes from the names, ids in sorted order; "<coarse>/unknown" for coarse without fine."""
  known = listing.fine != ""
  pairs = sorted(set(zip(listing.fine[known].tolist(), listing.coarse[known].tolist())))
  parents = {}
  for fine, coarse in pairs:
    parents.setdefault(fine, []).append(coarse)
  shared = {f: c for f, c in parents.items() if len(c) > 1}
  if shared:
    fine, coarse = next(iter(shared.items()))
    raise ValueError(f"The fine class {fine!r} lies under several coarse classes {coarse} ({len(shared)} such); "
                     "fine names must be unique: rename the folders (or the fine cells).")
  coarse_names = sorted(set(listing.coarse.tolist()))
  without = [c for c in coarse_names if c not in {p[0] for p in parents.values()}]
  mapping = {f: p[0] for f, p in parents.items()} | {f"{c}/unknown": c for c in without}
  return Taxonomy.from_mapping(NAME, mapping, fine_order=sorted(mapping), coarse_order=coarse_names)


def check_against(taxonomy: Taxonomy, listing: Listing, spec: str) -> None:
  """The names of `listing` must be those of the taxonomy `spec`, fine classes under their parent there."""
  unknown_coarse = sorted(set(listing.coarse.tolist()) - set(taxonomy.coarse_names))
  known = listing.fine != ""
  unknown_fine = sorted(set(listing.fine[known].tolist()) - set(taxonomy.fine_names))
  if unknown_coarse or unknown_fine:
    raise ValueError(f"data.taxonomy={spec!r} lacks class names the data uses: coarse [{_preview(unknown_coarse)}], "
                     f"fine [{_preview(unknown_fine)}]; its coarse classes are {_preview(taxonomy.coarse_names)}.")
  parent = {f: taxonomy.coarse_names[c] for f, c in zip(taxonomy.fine_names, taxonomy.fine_to_coarse)}
  moved = sorted({f"{c}/{f} (taxonomy: {parent[f]})" for f, c in zip(listing.fine[known], listing.coarse[known])
                  if parent[f] != c})
  if moved:
    raise ValueError(f"Fine classes lie under another coarse class than in data.taxonomy={spec!r}: {_preview(moved)}.")
  untrained = sorted(set(taxonomy.coarse_names) - set(listing.coarse[listing.split == "train"].tolist()))
  if untrained:
    raise ValueError(f"data.taxonomy={spec!r} has coarse classes without train images: {_preview(untrained)}.")


def label_ids(taxonomy: Taxonomy, listing: Listing) -> tuple[np.ndarray, np.ndarray]:
  """[N] int32 coarse ids and fine ids (-1 unknown) of the listing under the taxonomy."""
  coarse_id = {name: k for k, name in enumerate(taxonomy.coarse_names)}
  fine_id = {name: k for k, name in enumerate(taxonomy.fine_names)}
  coarse = np.array([coarse_id[c] for c in listing.coarse], np.int32)
  fine = np.array([fine_id[f] if f else UNKNOWN_FINE for f in listing.fine], np.int32)
  return coarse, fine


# ------------------------------------------------------------------------------------
# Images.


def _header(path: str) -> tuple[int, int, str]:
  from PIL import Image

  with storage.open_file(path, "rb") as f, Image.open(f) as image:
    return image.height, image.width, image.mode


def read_headers(reader: FolderReader) -> tuple[np.ndarray, list[str]]:
  """[N, 2] int (height, width) and the Pillow mode of every image; an unreadable one is an error naming it."""
  paths = [reader.describe(i) for i in range(len(reader.paths))]

  def header(path):
    try:
      return _header(path)
    except Exception as error:  # missing, not an image, truncated header: Pillow and fsspec raise many types
      return f"{path} ({type(error).__name__}: {error})"

  with concurrent.futures.ThreadPoolExecutor(READERS) as pool:
    found = list(pool.map(header, paths))
  failed = [f for f in found if isinstance(f, str)]
  if failed:
    raise ValueError(f"{len(failed)} images cannot be read: {_preview(failed, 3)}; replace or remove them.")
  return np.array([f[:2] for f in found], np.int64).reshape(-1, 2), [f[2] for f in found]


def image_side(data_config: ml_collections.ConfigDict, sizes: np.ndarray) -> int:
  """`data.image_size`, or with 0 the images' own side (they must all be one square size)."""
  size = data_config.get("image_size", 0)
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
    raise ValueError(f"data.image_size must be a positive integer (the side images are resized to) or 0 (the "
                     f"images' own size), got {size!r}.")
  if size:
    largest = int(sizes.max())
    if size >= 4 * largest:  # e.g. 28-px PNGs under the 224 default: 64x the pixels, minutes become an hour
      logging.warning("image_folder: the images are at most %d px on a side, and data.image_size=%d upsamples them "
                      "%.0fx; --config.data.image_size=0 keeps their own size.", largest, size, size / largest)
    return int(size)
  shapes = np.unique(sizes, axis=0)
  if len(shapes) > 1 or shapes[0, 0] != shapes[0, 1]:
    raise ValueError(f"data.image_size=0 keeps the images' own size, but they are not all one square size (e.g. "
                     f"{_preview([f'{h}x{w}' for h, w in shapes[:3]])}); set data.image_size.")
  return int(shapes[0, 0])


def statistics(images: LazyImages, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std ([C] float32, [0, 1] units) of up to STATS_IMAGES evaluation views, seeded."""
  n = len(images)
  chosen = np.sort(np.random.default_rng(seed).choice(n, min(n, STATS_IMAGES), replace=False))
  return input_statistics(images[chosen])


# ------------------------------------------------------------------------------------
# The loader.


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """The images of `data.dir` or `data.list` (module docstring) as lazily decoded splits."""
  root, list_file = data_config.dir, data_config.get("list", "")
  if bool(root) == bool(list_file):
    raise ValueError("data.name='image_folder' needs one of data.dir (ROOT/{train,test}/<coarse>/[<fine>/]<image>) "
                     f"or data.list (a .csv or .tsv file), got data.dir={root!r} and data.list={list_file!r}.")
  listing = scan_folders(root) if root else read_list(list_file)
  spec = data_config.taxonomy
  taxonomy = folder_taxonomy(listing) if spec in FROM_FOLDERS else get_taxonomy(spec)
  if spec not in FROM_FOLDERS:
    check_against(taxonomy, listing, spec)
  coarse, fine = label_ids(taxonomy, listing)
  if (listing.split == "test").any():
    check_test_classes(listing)
    test = listing.split == "test"
  else:
    fraction = data_config.test_fraction
    if not 0 < fraction < 1:
      raise ValueError(f"There are no test images; set data.test_fraction in (0, 1) to hold out that share of the "
                       f"train images (got {fraction}), or add {'ROOT/test/' if root else 'rows with split test'}.")
    test = hold_out(np.where(fine >= 0, fine, taxonomy.num_fine + coarse), fraction, data_config.split_seed)
  reader = FolderReader(root, np.array([os.fsencode(p) for p in listing.path], dtype=np.bytes_))
  sizes, modes = read_headers(reader)
  size = image_side(data_config, sizes)
  channels = 1 if all(m in GREY_MODES for m in modes) else 3
  images = LazyImages(reader, num=len(listing.path), size=size, resize=0, channels=channels)
  splits = {}
  for split, mask in (("train", ~test), ("test", test)):
    chosen = np.flatnonzero(mask)
    splits[split] = make_split(images.subset(chosen), fine=fine[chosen], coarse=coarse[chosen], taxonomy=taxonomy,
                               where=f"{NAME}/{split}")
  logging.info("image_folder %s: %d train and %d test images, %d coarse and %d fine classes, %dx%dx%d.",
               root or list_file, len(splits["train"]), len(splits["test"]), taxonomy.num_coarse, taxonomy.num_fine,
               size, size, channels)
  mean, std = statistics(splits["train"].inputs, data_config.split_seed)
  return HierarchicalData(name=NAME, taxonomy=taxonomy, train=splits["train"], test=splits["test"], mean=mean, std=std)
