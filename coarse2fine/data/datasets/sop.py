"""Stanford Online Products (Oh Song et al. 2016) with its 12 super-classes as coarse labels (MaskCon).

See docs/datasets.md#stanford-online-products-sop.

Read from the official archive's folder `Stanford_Online_Products/` (data.dir is that folder or its parent; without data.dir,
`$C2F_DATA_DIR/sop`, with or without the `Stanford_Online_Products/` level): `Ebay_train.txt` and `Ebay_test.txt`,
a header line then `image_id class_id super_class_id path` rows (1-based ids; `path` such as
`bicycle_final/111085122871_0.JPG` is relative to the folder, its first component names the super-class).
Fine class = product (`class_id`), coarse class = super-class (`super_class_id`; coarse id = its rank among the
super-classes present, i.e. super_class_id - 1 on the full data, named by the folder, e.g. `bicycle_final`).

`data.variant` picks MaskCon's split, reconstructed by rule from the official files:

  split1  products with 8 or more images: the Ebay_train.txt ones form train, the Ebay_test.txt ones test, so
          train and test classes are disjoint (the paper: 2,517 classes / 25,368 images and 2,518 / 25,278)
  split2  products with exactly 12 images in the two files together (the paper: 1,498), by ascending image_id
          the first 10 of each in train and the last 2 in test (14,980 / 2,996), so the classes are shared

MaskCon built its splits with its own script and ships the result (`coarse_labels/sop_split{1,2}/` of
github.com/MrChenFeng/MaskCon_CVPR2023); the counts above could not be checked against the real files here, so
the rule may differ from it at the edges. `data.split_file` overrides the rule: a JSON `{"train": [paths],
"test": [paths]}` with paths as in the Ebay files, or a folder holding MaskCon's `train_path.json` and
`test_path.json` (examples keep the file's order; labels still come from the Ebay files).

Label space: as in `tiered`, one taxonomy covers both splits. Fine ids are the train products by ascending
class_id, then the products only in test (split1: all of them) after them, so split1's test fine ids start at
the number of train products (MaskCon's files number each split from 0). Evaluate split1 with retrieval or
few-shot protocols; fine classification on its test split is meaningless.

Images are decoded when indexed and resized whole to `data.image_size` squared (default 224; `resized`), so
`inputs` are [N, S, S, 3] uint8; inputs are normalised with ImageNet statistics.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import posixpath
from typing import NamedTuple, Sequence

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.datasets import resized
from coarse2fine.data.files.lazy_images import FolderReader
from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy

NAME = "sop"
FOLDER = "Stanford_Online_Products"
FILES = ("Ebay_train.txt", "Ebay_test.txt")
VARIANTS = ("split1", "split2")
SPLIT1_MIN_IMAGES = 8  # split1: products with at least this many images
SPLIT2_IMAGES, SPLIT2_TRAIN = 12, 10  # split2: products with exactly 12 images, 10 of them in train
MASKCON_SPLIT_FILES = ("train_path.json", "test_path.json")
SETUP_HINT = (f"Download Stanford_Online_Products.zip (https://cvgl.stanford.edu/projects/lifted_struct/), unzip "
              f"it and set data.dir to the {FOLDER} folder (or its parent).")


def _preview(items: Sequence, limit: int = 5) -> str:
  items = list(items)
  more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
  return ", ".join(str(i) for i in items[:limit]) + more


class Listing(NamedTuple):
  """The rows of Ebay_train.txt and/or Ebay_test.txt, [N] each."""

  image_id: np.ndarray  # int64
  class_id: np.ndarray  # int64, the product
  super_id: np.ndarray  # int64, the super-class
  path: np.ndarray  # str, relative to the Stanford_Online_Products folder
  official: np.ndarray  # int8: 0 = Ebay_train.txt, 1 = Ebay_test.txt

  def take(self, indices) -> "Listing":
    return Listing(*(column[indices] for column in self))


# ------------------------------------------------------------------------------------
# Files.


def find_root(data_dir: str) -> str:
  """The first candidate folder (module docstring) with Ebay_train.txt and Ebay_test.txt."""
  roots = [data_dir] if data_dir else []  # a data.dir without the files is an error, not a fallback
  if not data_dir and os.environ.get("C2F_DATA_DIR"):
    roots.append(storage.join(os.environ["C2F_DATA_DIR"], NAME))
  candidates = [folder for root in roots for folder in (root, storage.join(root, FOLDER))]
  for candidate in candidates:
    if all(storage.isfile(storage.join(candidate, f)) for f in FILES):
      return candidate
  looked = "; ".join(f"{c} lacks {[f for f in FILES if not storage.isfile(storage.join(c, f))]}"
                     for c in candidates)
  raise FileNotFoundError(f"Stanford Online Products needs the folder {FOLDER}/ with {list(FILES)}: "
                          f"{looked or 'neither data.dir nor $C2F_DATA_DIR is set'}. {SETUP_HINT}")


def missing_images(root: str, paths) -> list[str]:
  """The `paths` (relative to `root`) that are not files; on an object store one listing per folder."""
  if storage.is_local(root):
    return [p for p in paths if not os.path.isfile(os.path.join(root, p))]
  listed = {}
  for folder in dict.fromkeys(posixpath.dirname(p) for p in paths):
    where = storage.join(root, folder) if folder else root
    listed[folder] = set(storage.list_files(where)) if storage.isdir(where) else set()
  return [p for p in paths if posixpath.basename(p) not in listed[posixpath.dirname(p)]]


def read_listing(path: str, official: int) -> Listing:
  """Parses one Ebay_*.txt (a header line, then `image_id class_id super_class_id path` rows)."""
  ids, paths = [], []
  with storage.open_text(path) as f:
    for number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields or (number == 1 and not fields[0].isdigit()):
        continue  # blank lines, the header
      if len(fields) != 4 or not all(x.isdigit() for x in fields[:3]):
        raise ValueError(f"{path}, line {number}: expected 'image_id class_id super_class_id path', got "
                         f"{line.strip()!r}.")
      ids.append([int(x) for x in fields[:3]])
      paths.append(fields[3])
  if not ids:
    raise ValueError(f"{path} has no 'image_id class_id super_class_id path' rows.")
  ids = np.array(ids, np.int64)
  return Listing(ids[:, 0], ids[:, 1], ids[:, 2], np.array(paths, dtype=str), np.full(len(ids), official, np.int8))


def read_listings(root: str) -> Listing:
  """Both official files, train rows first; checks ids and that each product has one super-class."""
  parts = [read_listing(storage.join(root, name), k) for k, name in enumerate(FILES)]
  rows = Listing(*(np.concatenate(columns) for columns in zip(*parts)))
  # image_ids are checked within each file only (they need not continue from one file to the next).
  for column, what in ((rows.image_id * 2 + rows.official, "image_id"), (rows.path, "path")):
    values, counts = np.unique(column, return_counts=True)
    if (counts > 1).any():
      repeated = values[counts > 1] // 2 if what == "image_id" else values[counts > 1]
      raise ValueError(f"{root}: {what}s repeated in {list(FILES)}: {_preview(repeated)}.")
  pairs = np.unique(np.stack([rows.class_id, rows.super_id], 1), axis=0)
  products, counts = np.unique(pairs[:, 0], return_counts=True)
  if (counts > 1).any():
    raise ValueError(f"{root}: products with several super_class_ids: {_preview(products[counts > 1])}.")
  return rows


# ------------------------------------------------------------------------------------
# Splits.


def split_by_rule(rows: Listing, variant: str) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) row indices of MaskCon's `variant` (module docstring), by official file then image_id."""
  order = np.lexsort((rows.image_id, rows.official))
  if variant == "split1":
    # Images per product within its official file (a product lies in one file).
    keys = rows.class_id * 2 + rows.official
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    kept = counts[inverse] >= SPLIT1_MIN_IMAGES
    return (order[(kept & (rows.official == 0))[order]], order[(kept & (rows.official == 1))[order]])
  _, inverse, counts = np.unique(rows.class_id, return_inverse=True, return_counts=True)
  kept = order[(counts[inverse] == SPLIT2_IMAGES)[order]]
  # Rank of each kept image within its product, by image_id (`kept` is in that order within each file).
  rank = np.empty(len(kept), np.int64)
  seen = collections.Counter()
  for j, product in enumerate(rows.class_id[kept]):
    rank[j] = seen[product]
    seen[product] += 1
  return kept[rank < SPLIT2_TRAIN], kept[rank >= SPLIT2_TRAIN]


def read_split_file(split_file: str) -> dict[str, list[str]]:
  """{"train": [paths], "test": [paths]} from a JSON file or a folder of MaskCon's *_path.json."""
  if storage.isdir(split_file):
    missing = [f for f in MASKCON_SPLIT_FILES if not storage.isfile(storage.join(split_file, f))]
    if missing:
      raise FileNotFoundError(f"data.split_file={split_file!r} is a folder without {missing}; give a JSON "
                              f"{{\"train\": [paths], \"test\": [paths]}} or MaskCon's coarse_labels/sop_split1 "
                              f"(or sop_split2) folder.")
    lists = {}
    for split, name in zip(("train", "test"), MASKCON_SPLIT_FILES):
      with storage.open_text(storage.join(split_file, name)) as f:
        lists[split] = json.load(f)
  elif storage.isfile(split_file):
    with storage.open_text(split_file) as f:
      try:
        lists = json.load(f)
      except json.JSONDecodeError as error:
        raise ValueError(f"{split_file} is not valid JSON (line {error.lineno}): {error.msg}.") from error
  else:
    raise FileNotFoundError(f"data.split_file={split_file!r}: no such file or folder.")
  if not isinstance(lists, dict) or sorted(lists) != ["test", "train"]:
    raise ValueError(f"{split_file}: expected {{\"train\": [paths], \"test\": [paths]}}, got "
                     f"{type(lists).__name__}{' with keys ' + str(sorted(lists)) if isinstance(lists, dict) else ''}.")
  for split, paths in lists.items():
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
      raise ValueError(f"{split_file}: {split!r} must be a list of image paths (strings).")
  return lists


def split_from_file(rows: Listing, split_file: str) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) row indices of the paths `data.split_file` lists, in its order."""
  lists = read_split_file(split_file)
  row_of = {os.path.normpath(p): i for i, p in enumerate(rows.path)}
  found = {}
  for split, paths in lists.items():
    normed = [os.path.normpath(p) for p in paths]
    unknown = [p for p in normed if p not in row_of]
    if unknown:
      raise ValueError(f"{split_file}: {len(unknown)} {split} paths are in neither {FILES[0]} nor {FILES[1]}: "
                       f"{_preview(unknown)}; paths are relative to {FOLDER}/, e.g. {rows.path[0]}.")
    found[split] = np.array([row_of[p] for p in normed], np.int64)
  both = np.intersect1d(found["train"], found["test"])
  if both.size:
    raise ValueError(f"{split_file}: {both.size} images are in both train and test: {_preview(rows.path[both])}.")
  return found["train"], found["test"]


# ------------------------------------------------------------------------------------
# The taxonomy and the loader.


def make_taxonomy(rows: Listing, train: np.ndarray, test: np.ndarray, name: str) -> tuple[Taxonomy, dict[int, int]]:
  """The taxonomy of the selected products and {class_id: fine id} (module docstring, "Label space")."""
  train_products = np.unique(rows.class_id[train])
  test_only = np.setdiff1d(np.unique(rows.class_id[test]), train_products)
  products = np.concatenate([train_products, test_only])
  used = np.concatenate([train, test])
  folders = {}  # super_class_id -> folder name
  for super_id, path in zip(rows.super_id[used], rows.path[used]):
    folder = path.replace("\\", "/").split("/")[0]
    if folders.setdefault(int(super_id), folder) != folder:
      raise ValueError(f"super_class_id {super_id} has images in both {folders[int(super_id)]}/ and {folder}/.")
  coarse_of_super = {s: c for c, s in enumerate(sorted(folders))}
  super_of = dict(zip(rows.class_id[used].tolist(), rows.super_id[used].tolist()))
  parents = np.array([coarse_of_super[super_of[p]] for p in products.tolist()], np.int32)
  coarse_names = [folders[s] for s in sorted(folders)]
  fine_names = [f"{coarse_names[c]}/{p}" for p, c in zip(products.tolist(), parents)]
  return Taxonomy(name, fine_names, coarse_names, parents), {p: k for k, p in enumerate(products.tolist())}


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """SOP split `data.variant` (or `data.split_file`) from the official folder."""
  variant, split_file = data_config.variant, data_config.get("split_file", "")
  if variant not in VARIANTS and not (split_file and not variant):
    raise ValueError(f"Unknown SOP variant data.variant={variant!r}; choose one of {list(VARIANTS)} "
                     f"(or leave it empty and give data.split_file).")
  if data_config.taxonomy:
    raise ValueError(f"SOP's coarse labels are its 12 super-classes; leave data.taxonomy empty "
                     f"(got {data_config.taxonomy!r}).")
  root = find_root(data_config.dir)
  rows = read_listings(root)
  if split_file:
    if variant:
      logging.info("SOP: data.split_file=%s overrides the %s rule.", split_file, variant)
    train, test = split_from_file(rows, split_file)
  else:
    train, test = split_by_rule(rows, variant)
  if not len(train) or not len(test):
    raise ValueError(f"SOP {variant or split_file}: the split has {len(train)} train and {len(test)} test images; "
                     f"are {list(FILES)} in {root} the official files?")
  missing = missing_images(root, rows.path[np.concatenate([train, test])])
  if missing:
    raise FileNotFoundError(f"{root} lacks {len(missing)} of the split's images: {_preview(missing)}. {SETUP_HINT}")
  taxonomy, fine_of = make_taxonomy(rows, train, test, "sop_split_file" if split_file else f"sop_{variant}")
  size = resized.image_size(data_config)
  splits = {}
  for split, selected in (("train", train), ("test", test)):
    chosen = rows.take(selected)
    reader = FolderReader(root, np.array([os.fsencode(p) for p in chosen.path], dtype=np.bytes_))
    fine = np.array([fine_of[p] for p in chosen.class_id.tolist()], np.int32)
    splits[split] = make_split(resized.ResizedImages(reader, num=len(chosen.path), size=size), fine=fine,
                               taxonomy=taxonomy, where=f"{NAME}/{split}")
  return HierarchicalData(name=NAME, taxonomy=taxonomy, train=splits["train"], test=splits["test"],
                          mean=resized.IMAGENET_MEAN, std=resized.IMAGENET_STD)
