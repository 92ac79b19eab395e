"""FALCON's tieredImageNet: the union of the three tieredImageNet hierarchies on full-size ImageNet-1k.

docs/datasets.md#union-hierarchy-falcon. The class split of Ren et al. (2018) comes as three files
`{train,val,test}.csv` of `wnid,parent_wnid` rows; FALCON joins them into one two-level hierarchy of
34 coarse and 608 fine classes (no class is held out). Fine ids follow the sorted wnids, coarse ids
the sorted parent wnids (FALCON's `list(set(...))` order is arbitrary). train = every ImageNet-train
image of the 608 classes (~779K), test = their ImageNet-val images (~30.4K), which FALCON also uses
as its validation set; `data.val_fraction` carves a validation split from train as for every
dataset. The classes are imbalanced.

Files are looked up in `data.dir`, else in `$C2F_DATA_DIR/tiered_union`:

  hierarchies/{train,val,test}.csv   the three hierarchies (or {train,val,test}.csv directly in the
                                     folder); one `wnid,parent_wnid` row per class, an optional header
  words.txt or node_names.txt        optional: "wnid<TAB>name" lines (ImageNet's words.txt, BREEDS'
                                     node_names.txt); the first synonym names the class, else the wnid
  train/<wnid>/*.JPEG, val/<wnid>/*  optional: ImageNet-1k in the standard layout (symlinks are fine);
                                     without train/ and val/, tfds `imagenet2012` is read instead
  LOC_synset_mapping.txt or          optional, for tfds: the wnid of each ImageNet class index (Kaggle's
  imagenet_class_index.json          "wnid names" lines in index order; Keras' {"index": [wnid, name]});
                                     without them, tfds imagenet2012's own label names (the wnids in
                                     class-index order) are used

Images are read as in `breeds`: decoded when indexed (`lazy_images.LazyImages`), shorter side resized
to 256, centre 224 x 224 kept, so `inputs` are [N, 224, 224, 3] uint8.
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import os
import re
from typing import Optional, Sequence

import ml_collections

from coarse2fine import storage
from coarse2fine.data.datasets import breeds
from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy

NAME = "tiered_union"
HIERARCHY_FILES = ("train.csv", "val.csv", "test.csv")
NAME_FILES = ("words.txt", "node_names.txt")  # "wnid<TAB>name" lines
WNID = re.compile(r"n\d{8}")
SETUP_HINT = ("Put the three tieredImageNet hierarchy files (FALCON's hierarchies/ folder, i.e. the class split "
              "of Ren et al.'s few-shot-ssl-public fewshot/data/tiered_imagenet_split/{train,val,test}.csv, rows "
              "'wnid,parent_wnid') in DIR/hierarchies/ or DIR/, and set data.dir=DIR (or put DIR at "
              "$C2F_DATA_DIR/tiered_union).")


def _preview(items: Sequence[str], limit: int = 5) -> str:
  more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
  return ", ".join(items[:limit]) + more


def _read_lines(path: str) -> list[str]:
  with storage.open_text(path) as f:
    return [line.rstrip("\n") for line in f if line.strip()]


def find_dirs(data_dir: str) -> tuple[str, str]:
  """(root, csv_dir): the first of `data.dir`, `$C2F_DATA_DIR/tiered_union` with the three CSVs.

  The CSVs are read from `root/hierarchies/` or, failing that, `root/`; ImageNet folders and the
  optional name and class-index files are looked up in `root` (and in `csv_dir`).
  """
  candidates = [data_dir] if data_dir else []  # a data.dir without the files is an error, not a fallback
  if not data_dir and os.environ.get("C2F_DATA_DIR"):
    candidates.append(storage.join(os.environ["C2F_DATA_DIR"], NAME))
  looked = []
  for root in candidates:
    layouts = [storage.join(root, "hierarchies"), root]
    missing = [[f for f in HIERARCHY_FILES if not storage.isfile(storage.join(d, f))] for d in layouts]
    for folder, lacks in zip(layouts, missing):
      if not lacks:
        return root, folder
    best = min(range(2), key=lambda i: len(missing[i]))
    looked.append(f"{layouts[best]} lacks {missing[best]}")
  raise FileNotFoundError(f"tieredImageNet (union) needs the hierarchy files {list(HIERARCHY_FILES)}: "
                          f"{'; '.join(looked) or 'neither data.dir nor $C2F_DATA_DIR is set'}. {SETUP_HINT}")


def read_hierarchies(csv_dir: str) -> dict[str, str]:
  """fine wnid -> parent wnid over the three CSVs of `csv_dir` (rows `wnid,parent_wnid`).

  A first row with no wnid in it is a header and skipped; blank and '#' lines are skipped; a row
  repeated in several files counts once. A wnid under two parents, or a wnid that is both a
  class and a parent, is a ValueError.
  """
  parent, where = {}, {}
  for name in HIERARCHY_FILES:
    path = storage.join(csv_dir, name)
    with storage.open_text(path, encoding="utf-8-sig", newline="") as f:  # -sig: a BOM is not part of the wnid
      rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), start=1)]
    rows = [(n, cells) for n, cells in rows if any(cells) and not cells[0].startswith("#")]
    if rows and not any(WNID.fullmatch(c) for c in rows[0][1]):
      rows = rows[1:]  # a header such as "wnid,parent_wnid"
    if not rows:
      raise ValueError(f"{path} has no 'wnid,parent_wnid' rows. {SETUP_HINT}")
    for number, cells in rows:
      if len(cells) != 2 or not all(cells):
        raise ValueError(f"{path}, line {number}: expected 'wnid,parent_wnid', got {','.join(cells)!r}.")
      wnid, up = cells
      if wnid in parent and parent[wnid] != up:
        raise ValueError(f"{path}, line {number}: {wnid} has the parent {up}, but {where[wnid]} gives it "
                         f"{parent[wnid]}; each class needs exactly one parent across the three files.")
      parent.setdefault(wnid, up)
      where.setdefault(wnid, f"{path}, line {number}")
  both = sorted(set(parent) & set(parent.values()))
  if both:
    raise ValueError(f"{csv_dir}: {_preview(both)} are both classes and parents in the hierarchy "
                     f"files; the hierarchy must have two levels (class wnid, parent wnid).")
  return parent


def _search_folders(root: str, csv_dir: str) -> list[str]:
  return list(dict.fromkeys([root, csv_dir]))


def read_names(folders: Sequence[str]) -> dict[str, str]:
  """wnid -> readable name from the optional name and class-index files in `folders`.

  The first comma-separated synonym is kept ("tench, Tinca tinca" -> "tench"); earlier files win.
  """
  names = {}

  def add(wnid: str, text: str) -> None:
    name = text.split(",")[0].strip()
    if name:
      names.setdefault(wnid.strip(), name)

  for folder in folders:
    for file in NAME_FILES:
      path = storage.join(folder, file)
      if storage.isfile(path):
        for line in _read_lines(path):
          if "\t" in line:
            add(*line.split("\t", 1))
  for wnid, (_, name) in _class_index_file(folders).items():
    add(wnid, name)
  return names


def _class_index_file(folders: Sequence[str]) -> dict[str, tuple[int, str]]:
  """wnid -> (ImageNet class index, name) from the first class-index file in `folders`, or {}."""
  for folder in folders:
    path = storage.join(folder, "LOC_synset_mapping.txt")
    if storage.isfile(path):
      lines = [line.split(None, 1) + [""] for line in _read_lines(path)]
      return {fields[0]: (i, fields[1]) for i, fields in enumerate(lines)}
    path = storage.join(folder, "imagenet_class_index.json")
    if storage.isfile(path):
      with storage.open_text(path) as f:
        entries = json.load(f)
      if not isinstance(entries, dict) or not all(isinstance(v, list) and len(v) == 2 for v in entries.values()):
        raise ValueError(f"{path}: expected {{\"index\": [wnid, name], ...}}.")
      return {wnid: (int(i), name) for i, (wnid, name) in entries.items()}
  return {}


def imagenet_class_index(folders: Sequence[str] = ()) -> dict[str, int]:
  """wnid -> ImageNet-1k class index (the label of tfds imagenet2012).

  From a LOC_synset_mapping.txt or imagenet_class_index.json in `folders`, else from tfds
  imagenet2012's label names, which are the wnids in class-index order.
  """
  from_file = _class_index_file(folders)
  if from_file:
    return {wnid: index for wnid, (index, _) in from_file.items()}
  import tensorflow_datasets as tfds  # heavy import, only on this path

  names = tfds.builder("imagenet2012").info.features["label"].names
  return {wnid: i for i, wnid in enumerate(names)}


def _unique(wnids: Sequence[str], names: dict[str, str]) -> list[str]:
  """Names of `wnids`, with the wnid appended where two share a name (ImageNet has two 'crane's)."""
  shown = [names.get(w, w) for w in wnids]
  counts = collections.Counter(shown)
  return [f"{n} ({w})" if counts[n] > 1 else n for n, w in zip(shown, wnids)]


def make_taxonomy(parent: dict[str, str], names: Optional[dict[str, str]] = None) -> Taxonomy:
  """Fine ids = sorted class wnids, coarse ids = sorted parent wnids; named by `names` (else wnids)."""
  names = names or {}
  fine = sorted(parent)
  coarse = sorted(set(parent.values()))
  fine_names, coarse_names = _unique(fine, names), _unique(coarse, names)
  coarse_name = dict(zip(coarse, coarse_names))
  return Taxonomy.from_mapping(NAME, [(n, coarse_name[parent[w]]) for n, w in zip(fine_names, fine)],
                               fine_order=fine_names, coarse_order=coarse_names)


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """The 34 x 608 union hierarchy with ImageNet-train as train and ImageNet-val as test."""
  if data_config.taxonomy or data_config.variant:
    raise ValueError(f"{NAME} defines its own hierarchy and has no variants; leave data.taxonomy and "
                     f"data.variant empty (got {data_config.taxonomy!r}, {data_config.variant!r}).")
  root, csv_dir = find_dirs(data_config.dir)
  folders = _search_folders(root, csv_dir)
  parent = read_hierarchies(csv_dir)
  taxonomy = make_taxonomy(parent, read_names(folders))
  wnids = sorted(parent)
  logging.info("tieredImageNet union from %s: %d coarse, %d fine classes.", csv_dir, taxonomy.num_coarse,
               taxonomy.num_fine)
  has_train, has_val = (storage.isdir(storage.join(root, d)) for d in ("train", "val"))
  if has_train != has_val:
    raise FileNotFoundError(f"{root} has {'train/' if has_train else 'val/'} but not "
                            f"{'val/' if has_train else 'train/'}; both ImageNet splits are needed.")
  class_index = None
  if not has_train:
    class_index = imagenet_class_index(folders)
    unknown = [w for w in wnids if w not in class_index]
    if unknown:
      raise ValueError(f"{len(unknown)} wnids of the hierarchy files are not ImageNet-1k classes: "
                       f"{_preview(unknown)}. Check the hierarchy files (or the class-index file "
                       f"in {root}), or provide ImageNet as {root}/train/<wnid>/ and {root}/val/<wnid>/ folders.")
  splits = {}
  for split, folder, tfds_split in (("train", "train", "train"), ("test", "val", "validation")):
    if has_train:
      images, fine = breeds.load_folder_split(root, folder, wnids)
    else:
      images, fine = breeds.load_tfds_split(tfds_split, wnids, class_index, root)
    splits[split] = make_split(images, fine=fine, taxonomy=taxonomy, where=f"{NAME}/{split}")
  return HierarchicalData(name=NAME, taxonomy=taxonomy, train=splits["train"], test=splits["test"],
                          mean=breeds.MEAN, std=breeds.STD)
