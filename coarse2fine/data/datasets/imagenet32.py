"""ImageNet32 (Chrabaszcz et al. 2017, ImageNet-1k at 32 x 32) with MaskCon's 12 coarse groups.

See docs/datasets.md#imagenet32.

Images and labels come from tfds `imagenet_resized/32x32`: train = its 1,281,167 train images, test = its 50,000
validation images; `data.dir` is the tfds data folder. Held in memory as [N, 32, 32, 3] uint8, the train split
takes 3.9 GB (filled in place, chunk by chunk, so the peak is not much higher); reading it takes minutes.

Labels. tfds keeps the downsampled release's class order (its label k is the release's label k + 1, whose wnid
is line k of tfds's `image_classification/imagenet_resized_labels.txt`), which is not the standard ImageNet one.
The loader maps every label to the standard index, the position of its wnid among the 1000 sorted wnids, from
that file of the installed tfds package; this is what MaskCon's `imagenet32_to_fine.json` does (checked on
entries such as 0 -> 278, 1 -> 212, 448 -> 0, 999 -> 543). Fine ids are the standard indices 0..999 and fine
names the wnids.

Coarse labels. MaskCon's 12 groups are in its repository's `coarse_labels/imagenet32/imagenet_fine_to_coarse.json`
(github.com/MrChenFeng/MaskCon_CVPR2023), which is not shipped here: set `data.taxonomy` to a copy of it. That
file maps the standard index (a string) to the coarse id, `{"0": 4, "1": 4, ...}`; the coarse ids are named

  0 invertebrate (61 fine classes)   4 reptile/aquatic vertebrate (60)   8 instrument (105)
  1 domestic animal (123)            5 device (130)                      9 artifact (71)
  2 bird (59)                        6 vehicle (70)                      10 clothing (93)
  3 mammal (95)                      7 container (53)                    11 others (80)

(other numbers of coarse ids are named "coarse <id>"). Any taxonomy file `Taxonomy.from_file` reads works too
(.json groups or fine_to_coarse forms, .csv rows), its fine classes named by wnid; ImageNet classes it leaves out
are dropped. Inputs are normalised with ImageNet statistics (MaskCon's).
"""

from __future__ import annotations

import json
import logging
import posixpath
from typing import Optional

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data import dropped
from coarse2fine.data.datasets import resized, tfds_arrays
from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import BUILTIN_TAXONOMIES, Taxonomy, get_taxonomy

NAME = "imagenet32"
TFDS_NAME = "imagenet_resized/32x32"
SPLITS = {"train": "train", "test": "validation"}  # ours -> tfds
LABELS_FILE = "image_classification/imagenet_resized_labels.txt"  # inside the tensorflow_datasets package
NUM_CLASSES, IMAGE_SHAPE = 1000, (32, 32, 3)
COARSE_NAMES = ("invertebrate", "domestic animal", "bird", "mammal", "reptile/aquatic vertebrate", "device",
                "vehicle", "container", "instrument", "artifact", "clothing", "others")
# fine classes per coarse id (docs/datasets.md#imagenet32)
COARSE_COUNTS = (61, 123, 59, 95, 60, 130, 70, 53, 105, 71, 93, 80)
TAXONOMY_HINT = ("Download coarse_labels/imagenet32/imagenet_fine_to_coarse.json from the MaskCon repository "
                 "(https://github.com/MrChenFeng/MaskCon_CVPR2023) and pass it with "
                 "--config.data.taxonomy=/path/to/imagenet_fine_to_coarse.json.")


def tfds_wnids() -> list[str]:
  """[1000] wnid of each tfds `imagenet_resized` label, from the installed tensorflow_datasets package."""
  import tensorflow_datasets as tfds  # heavy import, only when this dataset is used

  path = tfds.core.tfds_path(LABELS_FILE)
  try:
    wnids = path.read_text().split()
  except OSError as error:
    raise RuntimeError(f"Could not read {path} ({error}); this tensorflow_datasets version does not ship the "
                       f"imagenet_resized label names where the loader expects them.") from error
  if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES:
    raise ValueError(f"{path} names {len(set(wnids))} distinct classes in {len(wnids)} lines, not {NUM_CLASSES}.")
  return wnids


def standard_indices(resized_wnids: list[str]) -> np.ndarray:
  """[1000] int64 standard ImageNet index (position among the sorted wnids) of each tfds label."""
  position = {w: i for i, w in enumerate(sorted(resized_wnids))}
  return np.array([position[w] for w in resized_wnids], np.int64)


def _index_form(raw) -> bool:
  """Whether parsed JSON is MaskCon's {"<fine index>": <coarse id>} mapping."""
  return (isinstance(raw, dict) and bool(raw) and all(isinstance(k, str) and k.strip().isdigit() for k in raw)
          and all(isinstance(v, int) and not isinstance(v, bool) for v in raw.values()))


def taxonomy_from_index_map(raw: dict, fine_names: list[str], where: str) -> Taxonomy:
  """The taxonomy of MaskCon's `imagenet_fine_to_coarse.json` form: standard index -> coarse id."""
  mapping = {int(k): v for k, v in raw.items()}
  missing = sorted(set(range(NUM_CLASSES)) - set(mapping))
  extra = sorted(set(mapping) - set(range(NUM_CLASSES)))
  if missing or extra:
    raise ValueError(f"{where} must map each ImageNet class index 0..{NUM_CLASSES - 1} to a coarse id; "
                     f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)}), "
                     f"outside the range {extra[:5]} ({len(extra)}). {TAXONOMY_HINT}")
  parents = np.array([mapping[i] for i in range(NUM_CLASSES)], np.int64)
  num_coarse = int(parents.max()) + 1
  unused = sorted(set(range(num_coarse)) - set(parents.tolist()))
  if parents.min() < 0 or unused:
    raise ValueError(f"{where}: coarse ids must be 0..C-1, each used; got min {int(parents.min())}, "
                     f"unused {unused[:5]}.")
  names = COARSE_NAMES if num_coarse == len(COARSE_NAMES) else tuple(f"coarse {c}" for c in range(num_coarse))
  counts = tuple(np.bincount(parents, minlength=num_coarse).tolist())
  if num_coarse == len(COARSE_NAMES) and counts != COARSE_COUNTS:
    logging.warning("%s: fine classes per coarse id %s differ from MaskCon's %s; are the ids in its order?", where,
                    counts, COARSE_COUNTS)
  return Taxonomy(posixpath.splitext(posixpath.basename(where))[0], fine_names, names, parents)


def read_taxonomy(spec: str, fine_names: list[str]) -> tuple[Taxonomy, np.ndarray]:
  """(taxonomy, index_map) for `data.taxonomy`; index_map[standard index] = fine id, or -1 (dropped)."""
  if not spec:
    raise ValueError(f"ImageNet32 needs its coarse labels in data.taxonomy (there is no built-in one). "
                     f"{TAXONOMY_HINT}")
  if spec not in BUILTIN_TAXONOMIES and not storage.isfile(spec):
    raise FileNotFoundError(f"data.taxonomy={spec!r}: no such file. {TAXONOMY_HINT}")
  if spec.lower().endswith(".json"):
    with storage.open_text(spec) as f:
      try:
        raw = json.load(f)
      except json.JSONDecodeError as error:
        raise ValueError(f"{spec} is not valid JSON (line {error.lineno}): {error.msg}.") from error
    if _index_form(raw):
      return taxonomy_from_index_map(raw, fine_names, spec), np.arange(NUM_CLASSES, dtype=np.int32)
  return get_taxonomy(spec, fine_names)


def read_split(split: str, data_dir: Optional[str], chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """([N, 32, 32, 3] uint8 images, [N] int64 tfds labels) of a tfds `imagenet_resized/32x32` split."""
  source = tfds_arrays.open_source(TFDS_NAME, split, data_dir, prepare_hint=(
      f"Prepare it with `tfds build {TFDS_NAME} --file_format=array_record` (it downloads "
      f"Imagenet32_{{train,val}}_npz.zip from image-net.org; on a machine without network access, build it "
      f"elsewhere and copy the tensorflow_datasets folder here) and set data.dir (or $TFDS_DATA_DIR) to that folder."))
  n = len(source)
  images, labels = np.empty((n, *IMAGE_SHAPE), np.uint8), np.empty(n, np.int64)
  for start in range(0, n, chunk):
    stop = min(start + chunk, n)
    for j, record in enumerate(source.__getitems__(list(range(start, stop))), start=start):
      image = np.asarray(record["image"])
      if image.shape != IMAGE_SHAPE:
        raise ValueError(f"tfds {TFDS_NAME}/{split} record {j}: image of shape {image.shape}, not {IMAGE_SHAPE}.")
      images[j], labels[j] = image, record["label"]
  return images, labels


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """ImageNet32 train/validation from tfds, relabelled to standard indices, coarse labels from data.taxonomy."""
  resized_wnids = tfds_wnids()
  to_standard = standard_indices(resized_wnids)
  wnids = sorted(resized_wnids)  # the fine names, in standard index order
  taxonomy, index_map = read_taxonomy(data_config.taxonomy, wnids)
  dropped.check_allowed(data_config, data_config.taxonomy, wnids, index_map)
  splits, labels_of = {}, {}
  for ours, theirs in SPLITS.items():
    images, labels = read_split(theirs, data_config.dir or None)
    where = f"{NAME}/{ours}"
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
      raise ValueError(f"{where}: {int(bad.sum())} labels are outside [0, {NUM_CLASSES}) "
                       f"(e.g. {np.unique(labels[bad])[:5].tolist()}).")
    labels_of[ours] = to_standard[labels]
    fine = index_map[labels_of[ours]]
    keep = fine >= 0
    if not keep.all():  # a taxonomy without some classes: drop their images (copies only then)
      images, fine = images[keep], fine[keep]
    splits[ours] = make_split(images, fine=fine, taxonomy=taxonomy, where=where)
  dropped.report(NAME, data_config.taxonomy, wnids, index_map, labels_of)
  return HierarchicalData(name=NAME, taxonomy=taxonomy, train=splits["train"], test=splits["test"],
                          mean=resized.IMAGENET_MEAN, std=resized.IMAGENET_STD)
