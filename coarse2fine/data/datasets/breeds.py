"""BREEDS (Santurkar et al. 2021): ImageNet subsets grouped by a calibrated WordNet hierarchy.

`data.variant` picks the dataset (docs/datasets.md#breeds); coarse = superclass, fine = ImageNet class:

  living17     17 x 4   superclasses at level 5 below "living thing" (n00004258)
  nonliving26  26 x 4   superclasses at level 5 below "non-living thing" (n00021939)
  entity13     13 x 20  superclasses at level 3
  entity30     30 x 8   superclasses at level 4

The classes are those of `robustness.tools.breeds_helpers.make_<variant>(info_dir, split=None)`
(see `select_classes`). Coarse ids follow the superclass order and fine ids the flattened
subclass lists, so each superclass's children are contiguous. train = every ImageNet-train
image of the selected classes, test = their ImageNet-val images; `data.val_fraction` carves
the validation split from train as for every dataset.

Files are looked up in `data.dir`, else in `$C2F_DATA_DIR/breeds`:

  class_hierarchy.txt       the BREEDS release files ("parent child" wnid lines, the
  dataset_class_info.json   [index, wnid, name] of the 1000 ImageNet classes, and
  node_names.txt            "wnid<TAB>name"): robustness's `setup_breeds(dir)` fetches them
  train/<wnid>/*.JPEG       optional: ImageNet-1k in the standard layout (symlinks are fine);
  val/<wnid>/*.JPEG         without train/ and val/, tfds `imagenet2012` is read instead

Images stay files (`lazy_images.LazyImages`; the whole of Living17 decoded would take 13 GB).
Indexed, they decode to the `Resize(256) + CenterCrop(224)` view of BREEDS evaluation (and
FALCON's deterministic view), so `inputs` are [N, 224, 224, 3] uint8; training views
(RandomResizedCrop and the like) are cut from the full stored image, as the official code does,
each decoded at the DCT scale its box needs (`image_codec.decode_box`).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
from typing import NamedTuple, Optional, Sequence

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.files.lazy_images import IMAGE_SUFFIXES, FolderReader, LazyImages, TfdsReader
from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy

REQUIRED_FILES = ("class_hierarchy.txt", "dataset_class_info.json", "node_names.txt")
ROOT_WNID = "n00001740"  # "entity", the root of the BREEDS hierarchy
SELECTION_SEED = 2  # breeds_helpers draws the subclasses with np.random.RandomState(2)
ANCESTOR_DEPTH = 20  # breeds_helpers only looks this many edges below `ancestor`
RESIZE, IMAGE_SIZE = 256, 224  # evaluation view: shorter side resized to 256, centre 224 x 224 crop
# SCGM's values (docs/datasets.md#image-sizes-and-the-evaluation-view)
MEAN = np.array([0.4717, 0.4499, 0.3837], np.float32)
STD = np.array([0.2600, 0.2516, 0.2575], np.float32)
TFDS_HINT = ("Either put ImageNet's train/<wnid>/ and val/<wnid>/ folders (or symlinks to them) in data.dir, next "
             "to the hierarchy files, or prepare the dataset with `tfds build imagenet2012 "
             "--file_format=array_record` (the ILSVRC2012 tars go in <tfds data dir>/downloads/manual) and set "
             "$TFDS_DATA_DIR.")
SETUP_HINT = ("Get them from the BREEDS release with `python -c \"from robustness.tools.breeds_helpers "
              "import setup_breeds; setup_breeds('DIR')\"` (or copy imagenet_class_hierarchy/modified/ "
              "of MadryLab/BREEDS-Benchmarks) and set data.dir=DIR.")


class Variant(NamedTuple):
  level: int  # depth of the superclasses below the root (longest path)
  ancestor: Optional[str]  # superclasses must lie below this node; None = anywhere
  subclasses: int  # ImageNet classes per superclass; superclasses with fewer are dropped


VARIANTS = {
    "living17": Variant(5, "n00004258", 4),
    "nonliving26": Variant(5, "n00021939", 4),
    "entity13": Variant(3, None, 20),
    "entity30": Variant(4, None, 8),
}


def _preview(items: Sequence, limit: int = 5) -> str:
  items = list(items)
  more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
  return ", ".join(str(i) for i in items[:limit]) + more


# ------------------------------------------------------------------------------------
# The hierarchy and the class selection.


@dataclasses.dataclass(frozen=True)
class Hierarchy:
  """The BREEDS hierarchy restricted to ImageNet classes and their ancestors.

  Attributes:
    class_index: ImageNet wnid -> class index (dataset_class_info.json).
    class_names: ImageNet wnid -> class name (dataset_class_info.json).
    node_names: wnid -> name of any node (node_names.txt).
    children: parent wnid -> child wnids, only edges into ImageNet classes or their ancestors.
    levels: wnid -> depth below the root along the longest path, for nodes the root reaches.
  """

  class_index: dict[str, int]
  class_names: dict[str, str]
  node_names: dict[str, str]
  children: dict[str, tuple[str, ...]]
  levels: dict[str, int]

  def leaves_under(self, node: str) -> set[str]:
    """The ImageNet classes below `node` (itself if it is one); the descent stops at classes."""
    found, seen, todo = set(), set(), [node]
    while todo:
      for child in self.children.get(todo.pop(), ()):
        if child in self.class_index:
          found.add(child)
        elif child not in seen:
          seen.add(child)
          todo.append(child)
    if node in self.class_index:
      found.add(node)
    return found

  def within(self, ancestor: str, depth: int = ANCESTOR_DEPTH) -> set[str]:
    """`ancestor` and the nodes at most `depth` edges below it."""
    reached, frontier = {ancestor}, [ancestor]
    for _ in range(depth):
      frontier = [c for n in frontier for c in self.children.get(n, ()) if c not in reached]
      reached.update(frontier)
    return reached

  def name(self, wnid: str) -> str:
    return self.node_names.get(wnid) or self.class_names.get(wnid) or wnid


def _read_lines(path: str) -> list[str]:
  return [line for line in storage.read_text(path).splitlines() if line.strip()]


def read_hierarchy(info_dir: str, root: str = ROOT_WNID) -> Hierarchy:
  """Parses the three BREEDS files of `info_dir` (see the module docstring)."""
  paths = {name: storage.join(info_dir, name) for name in REQUIRED_FILES}
  missing = [name for name, path in paths.items() if not storage.isfile(path)]
  if missing:
    raise FileNotFoundError(f"{info_dir} lacks the BREEDS hierarchy files {missing}. {SETUP_HINT}")
  info = json.loads(storage.read_text(paths["dataset_class_info.json"]))
  if not isinstance(info, list) or not all(isinstance(c, list) and len(c) >= 3 for c in info):
    raise ValueError(f"{paths['dataset_class_info.json']}: expected a list of [index, wnid, name, ...] entries.")
  class_index = {c[1]: int(c[0]) for c in info}
  class_names = {c[1]: str(c[2]) for c in info}
  edges = []
  for number, line in enumerate(_read_lines(paths["class_hierarchy.txt"]), start=1):
    fields = line.split()
    if len(fields) != 2:
      raise ValueError(f"{paths['class_hierarchy.txt']}, line {number}: expected 'parent_wnid child_wnid', "
                       f"got {line!r}.")
    edges.append((fields[0], fields[1]))
  node_names = dict(line.split("\t", 1) for line in _read_lines(paths["node_names.txt"]) if "\t" in line)

  # Keep only the ImageNet classes and their ancestors (edges into other nodes are dropped).
  parents = collections.defaultdict(list)
  for parent, child in edges:
    parents[child].append(parent)
  kept = {w for w in class_index if w in parents}
  todo = list(kept)
  while todo:
    for parent in parents[todo.pop()]:
      if parent not in kept:
        kept.add(parent)
        todo.append(parent)
  children: dict[str, dict[str, None]] = collections.defaultdict(dict)  # dict = ordered set
  for parent, child in edges:
    if child in kept:
      children[parent][child] = None
  children = {p: tuple(c) for p, c in children.items()}
  if root not in children:
    raise ValueError(f"{paths['class_hierarchy.txt']}: the root {root} has no descendant among the ImageNet classes.")
  return Hierarchy(class_index, class_names, node_names, children, _longest_path_levels(children, root))


def _longest_path_levels(children: dict[str, tuple[str, ...]], root: str) -> dict[str, int]:
  """Depth of every node reachable from `root` along its longest path (the hierarchy is a DAG).

  Nodes with several parents take the deepest one, as breeds_helpers' level BFS does.
  """
  reach, todo = {root}, [root]
  while todo:
    for child in children.get(todo.pop(), ()):
      if child not in reach:
        reach.add(child)
        todo.append(child)
  pending = collections.Counter(c for n in reach for c in children.get(n, ()))
  levels, ready = {root: 0}, [root]
  while ready:  # Kahn's order: a node's level is final once all its parents are done
    node = ready.pop()
    for child in children.get(node, ()):
      levels[child] = max(levels.get(child, 0), levels[node] + 1)
      pending[child] -= 1
      if pending[child] == 0:
        ready.append(child)
  if len(levels) != len(reach):
    raise ValueError(f"class_hierarchy.txt has a cycle among {_preview(sorted(reach - set(levels)))}.")
  return levels


def select_classes(hierarchy: Hierarchy, variant: Variant) -> tuple[list[str], list[list[str]]]:
  """Superclass wnids and, for each, its subclass (ImageNet class) wnids, as `make_<variant>`.

  BREEDS' `get_superclasses(level, Nsubclasses, ancestor, balanced=True, split=None)`:
  the candidates are the nodes at `level` (longest-path depth) within ANCESTOR_DEPTH edges
  below `ancestor`, sorted by wnid; each one's ImageNet descendants are sorted; candidates
  with fewer than `subclasses` of them are dropped; the others, in order, each draw
  `subclasses` of them with one `RandomState(2).choice(..., replace=False)`.
  """
  level_nodes = {n for n, depth in hierarchy.levels.items() if depth == variant.level}
  if variant.ancestor is not None:
    if variant.ancestor not in hierarchy.levels:
      raise ValueError(f"The BREEDS hierarchy has no node {variant.ancestor} (the ancestor of this variant).")
    level_nodes &= hierarchy.within(variant.ancestor)
  rng = np.random.RandomState(SELECTION_SEED)  # the legacy generator keeps breeds_helpers' draws
  superclasses, subclasses = [], []
  for node in sorted(level_nodes):
    leaves = sorted(hierarchy.leaves_under(node))
    if len(leaves) < variant.subclasses:
      continue  # balancing: too few ImageNet classes
    superclasses.append(node)
    subclasses.append([leaves[i] for i in rng.choice(len(leaves), variant.subclasses, replace=False)])
  if not superclasses:
    raise ValueError(f"No node at level {variant.level} below {variant.ancestor or ROOT_WNID} has "
                     f"{variant.subclasses} ImageNet classes; is class_hierarchy.txt the BREEDS one?")
  return superclasses, subclasses


def _unique_names(wnids: Sequence[str], hierarchy: Hierarchy) -> list[str]:
  """Node names, with the wnid appended where two nodes share a name (e.g. the two 'crane's)."""
  names = [hierarchy.name(w) for w in wnids]
  counts = collections.Counter(names)
  return [f"{n} ({w})" if counts[n] > 1 else n for n, w in zip(names, wnids)]


class BreedsClasses(NamedTuple):
  superclasses: list[str]  # [C] wnids, coarse id order
  subclasses: list[list[str]]  # [C][n] ImageNet wnids; flattened, the fine id order
  taxonomy: Taxonomy  # with the names of node_names.txt


def breeds_classes(info_dir: str, variant: str) -> BreedsClasses:
  """The classes and taxonomy of BREEDS `variant` from the hierarchy files in `info_dir`."""
  return make_classes(read_hierarchy(info_dir), variant)


def make_classes(hierarchy: Hierarchy, variant: str) -> BreedsClasses:
  """The classes and taxonomy of BREEDS `variant` in `hierarchy`."""
  superclasses, subclasses = select_classes(hierarchy, VARIANTS[_check_variant(variant)])
  coarse_names = _unique_names(superclasses, hierarchy)
  fine_names = iter(_unique_names([w for group in subclasses for w in group], hierarchy))
  groups = {c: [next(fine_names) for _ in group] for c, group in zip(coarse_names, subclasses)}
  return BreedsClasses(superclasses, subclasses, Taxonomy.from_groups(variant, groups))


def _check_variant(variant: str) -> str:
  if variant not in VARIANTS:
    raise ValueError(f"Unknown BREEDS variant data.variant={variant!r}; choose one of {sorted(VARIANTS)}.")
  return variant


# ------------------------------------------------------------------------------------
# Lazy images.


# ------------------------------------------------------------------------------------
# The loader.


def find_info_dir(data_dir: str) -> str:
  """The first of `data.dir`, `$C2F_DATA_DIR/breeds` that holds the three BREEDS files."""
  candidates = [data_dir] if data_dir else []  # a data.dir without the files is an error, not a fallback
  if not data_dir and os.environ.get("C2F_DATA_DIR"):
    candidates.append(storage.join(os.environ["C2F_DATA_DIR"], "breeds"))
  for candidate in candidates:
    if all(storage.isfile(storage.join(candidate, f)) for f in REQUIRED_FILES):
      return candidate
  looked = "; ".join(
      f"{c} lacks {[f for f in REQUIRED_FILES if not storage.isfile(storage.join(c, f))]}" for c in candidates)
  raise FileNotFoundError(
      f"BREEDS needs the hierarchy files {list(REQUIRED_FILES)}: "
      f"{looked or 'neither data.dir nor $C2F_DATA_DIR is set'}. {SETUP_HINT}")


def load_folder_split(root: str, split_dir: str, wnids: Sequence[str]) -> tuple[LazyImages, np.ndarray]:
  """Images of `root/split_dir/<wnid>/` for each wnid; fine label = position in `wnids`."""
  folder = storage.join(root, split_dir)
  missing = [w for w in wnids if not storage.isdir(storage.join(folder, w))]
  if missing:
    raise FileNotFoundError(
        f"{folder} lacks the class folders of {len(missing)} of the {len(wnids)} selected ImageNet classes: "
        f"{_preview(missing)}. Expected the standard layout {split_dir}/<wnid>/*.JPEG (ImageNet's val "
        f"images sorted into wnid folders too); or remove train/ and val/ from {root} to read tfds "
        f"imagenet2012 instead.")
  paths, fine = [], []
  for k, wnid in enumerate(wnids):
    names = [n for n in storage.list_files(storage.join(folder, wnid)) if n.lower().endswith(IMAGE_SUFFIXES)]
    if not names:
      raise FileNotFoundError(f"{storage.join(folder, wnid)} holds no {'/'.join(IMAGE_SUFFIXES)} images.")
    paths += [os.fsencode(os.path.join(split_dir, wnid, n)) for n in names]
    fine += [k] * len(names)
  reader = FolderReader(root, np.array(paths, dtype=np.bytes_))
  return LazyImages(reader, num=len(paths)), np.array(fine, np.int32)


def load_tfds_split(split: str, wnids: Sequence[str], class_index: dict[str, int],
                cache_dir: str) -> tuple[LazyImages, np.ndarray]:
  """Records of tfds imagenet2012 `split` whose class is in `wnids`; fine label = position.

  Finding them parses every record once, so the labels are cached in
  `cache_dir/imagenet2012_<split>_labels.npy` when that folder is writable.
  """
  reader = TfdsReader("imagenet2012", split, setup_hint=TFDS_HINT)
  cache = storage.join(cache_dir, f"imagenet2012_{split}_labels.npy")
  labels = np.load(io.BytesIO(storage.read_bytes(cache))) if storage.isfile(cache) else None
  if labels is None or len(labels) != len(reader.source()):
    labels = reader.labels()
    try:
      buffer = io.BytesIO()
      np.save(buffer, labels)
      storage.write_bytes_atomically(cache, buffer.getvalue())
    except OSError:
      pass  # a read-only folder only costs the scan next time
  if labels.size and labels.min() < 0:
    raise ValueError(f"tfds imagenet2012/{split} has negative labels; delete {cache} if it is stale.")
  fine_of_label = np.full(max(max(class_index.values()) + 1, int(labels.max(initial=0)) + 1), -1, np.int32)
  for k, wnid in enumerate(wnids):
    fine_of_label[class_index[wnid]] = k  # tfds labels are the ImageNet class indices
  fine = fine_of_label[labels]
  counts = np.bincount(fine[fine >= 0], minlength=len(wnids))
  empty = [w for w, count in zip(wnids, counts) if count == 0]
  if empty:
    raise ValueError(f"tfds imagenet2012/{split} has no image of {len(empty)} selected classes: {_preview(empty)}.")
  keep = np.flatnonzero(fine >= 0)
  return LazyImages(reader, keep), fine[keep]


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """BREEDS `data.variant` from the hierarchy files (and maybe ImageNet folders) in data.dir."""
  variant = _check_variant(data_config.variant)
  if data_config.taxonomy:
    raise ValueError(f"BREEDS defines its own hierarchy; leave data.taxonomy empty "
                     f"(got {data_config.taxonomy!r}) and pick it with data.variant.")
  info_dir = find_info_dir(data_config.dir)
  hierarchy = read_hierarchy(info_dir)
  classes = make_classes(hierarchy, variant)
  wnids = [w for group in classes.subclasses for w in group]
  has_train, has_val = (storage.isdir(storage.join(info_dir, d)) for d in ("train", "val"))
  if has_train != has_val:
    raise FileNotFoundError(f"{info_dir} has {'train/' if has_train else 'val/'} but not "
                            f"{'val/' if has_train else 'train/'}; BREEDS needs both ImageNet splits.")
  splits = {}
  for split, folder, tfds_split in (("train", "train", "train"), ("test", "val", "validation")):
    if has_train:
      images, fine = load_folder_split(info_dir, folder, wnids)
    else:
      images, fine = load_tfds_split(tfds_split, wnids, hierarchy.class_index, info_dir)
    splits[split] = make_split(images, fine=fine, taxonomy=classes.taxonomy, where=f"breeds/{variant}/{split}")
  return HierarchicalData(name="breeds", taxonomy=classes.taxonomy, train=splits["train"], test=splits["test"],
                          mean=MEAN, std=STD)
