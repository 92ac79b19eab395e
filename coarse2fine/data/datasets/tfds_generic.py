"""Any tensorflow-datasets classification dataset, `data.name="tfds"` (docs/datasets.md#any-tfds-dataset).

`data.tfds_name` is the builder ("cifar100", "imagenet_resized/64x64", "iris", ...), `data.label_key` its ClassLabel
feature (the fine labels) and `data.input_key` the inputs: an Image feature, or a Tensor of [F] numbers (vectors).
The coarse labels come from one of

  * `data.coarse_key`: a second ClassLabel feature of the same examples (cifar100's `coarse_label`); the hierarchy
    is read off the examples of both splits, so each fine class must appear under a single coarse class;
  * `data.taxonomy`: a built-in or a taxonomy file whose fine names are the label's class names (the ClassLabel's
    `names`); it must place every one of them.

Splits: `data.tfds_splits` = (train, test) tfds split names, slices included ("train[:90%]"); an empty test name
holds out a stratified `data.test_fraction` of train. Images of a fixed size (every side known to tfds) are held in
memory as stored, [N, H, W, C] uint8, normalised by the training split's statistics; images whose size varies are
decoded when indexed and squashed to `data.image_size` squared (`resized.ResizedImages`, as for cars196), normalised
with ImageNet's statistics. Vectors are float32 [N, F], normalised per feature.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Optional

import ml_collections
import numpy as np

from coarse2fine.data.datasets import arrays, resized, tfds_arrays
from coarse2fine.data.splits import HierarchicalData, carve_validation, make_split
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy

NAME = "tfds"
MAX_LISTED = 10  # names quoted in an error message


@dataclasses.dataclass(frozen=True)
class Features:
  """What the config names, checked against the builder's features.

  label_names: [K] the label's class names; coarse_names: [C] the coarse_key's, or None;
  input_shape: tfds's shape of one input (None for a side that varies); is_image: an Image feature.
  """

  label_names: tuple[str, ...]
  coarse_names: Optional[tuple[str, ...]]
  input_shape: tuple
  is_image: bool

  @property
  def lazy(self) -> bool:
    """Images whose size varies: decoded when indexed rather than held in memory."""
    return self.is_image and None in self.input_shape


def _listed(names) -> str:
  names = list(names)
  more = f" ... ({len(names)} in all)" if len(names) > MAX_LISTED else ""
  return ", ".join(repr(n) for n in names[:MAX_LISTED]) + more


def check_config(data_config: ml_collections.ConfigDict) -> None:
  """The fields this loader needs, before anything is opened."""
  if not data_config.tfds_name:
    raise ValueError("data.name='tfds' needs data.tfds_name, the tfds builder (e.g. 'cifar100' or "
                     "'imagenet_resized/64x64').")
  if data_config.coarse_key and data_config.taxonomy:
    raise ValueError(f"data.coarse_key={data_config.coarse_key!r} and data.taxonomy={data_config.taxonomy!r} both "
                     "give the coarse labels; set only one of them.")
  if not data_config.coarse_key and not data_config.taxonomy:
    raise ValueError("data.name='tfds' needs the coarse labels: data.coarse_key (a second ClassLabel feature) or "
                     "data.taxonomy (a file mapping the label's class names to coarse classes).")
  splits = tuple(data_config.tfds_splits)
  if len(splits) != 2 or not splits[0]:
    raise ValueError(f"data.tfds_splits must be (train, test) tfds split names (test may be ''), got {splits!r}.")
  if not splits[1] and not 0 < data_config.test_fraction < 1:
    raise ValueError(f"data.tfds_splits={splits!r} has no test split, so data.test_fraction (now "
                     f"{data_config.test_fraction}) must be in (0, 1): the share of train held out as the test split.")


def read_features(features, data_config: ml_collections.ConfigDict) -> Features:
  """Checks the label, coarse and input features the config names against the builder's `features`."""
  import tensorflow_datasets as tfds  # heavy import, only when a tfds dataset is used

  name, available = data_config.tfds_name, sorted(features.keys())

  def feature(field: str):
    key = data_config[field]
    if key not in features:
      raise ValueError(f"tfds {name!r} has no feature {key!r} (data.{field}); its features are {available}.")
    return features[key]

  def class_names(field: str) -> tuple[str, ...]:
    found = feature(field)
    if not isinstance(found, tfds.features.ClassLabel):
      raise ValueError(f"data.{field}={data_config[field]!r} of tfds {name!r} is a {type(found).__name__}, not a "
                       f"ClassLabel; name a ClassLabel feature among {available}.")
    return tuple(found.names)

  label_names = class_names("label_key")
  coarse_names = class_names("coarse_key") if data_config.coarse_key else None
  inputs = feature("input_key")
  shape = tuple(inputs.shape) if hasattr(inputs, "shape") else ()
  if isinstance(inputs, tfds.features.Image):
    return Features(label_names, coarse_names, shape, True)
  if (isinstance(inputs, tfds.features.Tensor) and not isinstance(inputs, tfds.features.ClassLabel)
      and len(shape) == 1 and shape[0] is not None and np.issubdtype(inputs.np_dtype, np.number)):
    return Features(label_names, coarse_names, shape, False)
  raise ValueError(f"data.input_key={data_config.input_key!r} of tfds {name!r} is a {type(inputs).__name__} of "
                   f"shape {shape}; the inputs must be an Image or a Tensor of [F] numbers.")


def taxonomy_from_file(spec: str, label_names: tuple[str, ...]) -> tuple[Taxonomy, np.ndarray]:
  """(taxonomy, index_map) of `data.taxonomy`, which must place every class name of the label."""
  taxonomy, index_map = get_taxonomy(spec, label_names)  # names the dataset lacks fail here, by name
  uncovered = [n for n, i in zip(label_names, index_map) if i < 0]
  if uncovered:
    raise ValueError(f"data.taxonomy={spec!r} leaves {len(uncovered)} of the label's {len(label_names)} classes "
                     f"without a coarse class: {_listed(uncovered)}; map each of them to one in the file.")
  return taxonomy, index_map


def taxonomy_from_examples(fine: np.ndarray, coarse: np.ndarray, features: Features,
                           name: str) -> tuple[Taxonomy, np.ndarray]:
  """(taxonomy, index_map) read off [N] fine and coarse ClassLabel ids; classes without examples are left out."""
  pairs = collections.defaultdict(set)
  for f, c in set(zip(fine.tolist(), coarse.tolist())):
    pairs[f].add(c)
  label_names, coarse_names = features.label_names, features.coarse_names
  torn = {f: cs for f, cs in pairs.items() if len(cs) > 1}
  if torn:
    described = [f"{label_names[f]!r} under {sorted(coarse_names[c] for c in cs)}" for f, cs in sorted(torn.items())]
    raise ValueError(f"{name}: {len(torn)} fine classes appear under several coarse classes, so the coarse key is "
                     f"no hierarchy: {'; '.join(described[:MAX_LISTED])}. Give data.taxonomy instead.")
  mapping = [(label_names[f], coarse_names[next(iter(pairs[f]))]) for f in sorted(pairs)]
  used = {c for _, c in mapping}
  taxonomy = Taxonomy.from_mapping(name, mapping, coarse_order=[c for c in coarse_names if c in used])
  return taxonomy.align(label_names)


def class_ids(values: np.ndarray, names: tuple[str, ...], where: str, field: str) -> np.ndarray:
  """[N] int64 ClassLabel ids, checked to be in [0, len(names))."""
  values = np.asarray(values).astype(np.int64).reshape(-1)
  bad = (values < 0) | (values >= len(names))
  if bad.any():
    raise ValueError(f"{where}: {int(bad.sum())} values of data.{field} are outside [0, {len(names)}) "
                     f"(e.g. {np.unique(values[bad])[:5].tolist()}); unlabelled examples cannot be used.")
  return values


def read_split(data_config: ml_collections.ConfigDict, split: str, features: Features):
  """(inputs, [N] label ids, [N] coarse ids or None) of a tfds split; lazy images stay undecoded."""
  name, data_dir = data_config.tfds_name, data_config.dir or None
  keys = [data_config.label_key] + ([data_config.coarse_key] if data_config.coarse_key else [])
  where = f"tfds {name}/{split}"
  if features.lazy:
    reader = resized.tfds_reader(name, split, data_dir, image_key=data_config.input_key)
    columns = {key: reader.labels(key=key) for key in keys}
    channels = features.input_shape[-1] or 3
    inputs = resized.ResizedImages(reader, num=len(columns[keys[0]]), size=resized.image_size(data_config),
                                   channels=channels)
  else:
    columns = tfds_arrays.read_columns(tfds_arrays.open_source(name, split, data_dir), keys + [data_config.input_key])
    inputs = columns[data_config.input_key]
  fine = class_ids(columns[data_config.label_key], features.label_names, where, "label_key")
  coarse = (class_ids(columns[data_config.coarse_key], features.coarse_names, where, "coarse_key")
            if data_config.coarse_key else None)
  return inputs, fine, coarse


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """The train and test splits of `data.tfds_name`, fine labels from `data.label_key`, coarse as described above."""
  check_config(data_config)
  name, (train_name, test_name) = data_config.tfds_name, tuple(data_config.tfds_splits)
  source = tfds_arrays.open_source(name, train_name, data_config.dir or None)
  features = read_features(source.dataset_info.features, data_config)
  if data_config.taxonomy:  # checked before any split is read
    taxonomy, index_map = taxonomy_from_file(data_config.taxonomy, features.label_names)
  read = {ours: read_split(data_config, theirs, features)
          for ours, theirs in (("train", train_name), ("test", test_name)) if theirs}
  if data_config.coarse_key:
    fine = np.concatenate([f for _, f, _ in read.values()])
    coarse = np.concatenate([c for _, _, c in read.values()])
    taxonomy, index_map = taxonomy_from_examples(fine, coarse, features, data_config.coarse_key)
  make = make_split if features.lazy else arrays.split_from_arrays  # the latter checks arrays in memory
  splits = {ours: make(inputs, fine=index_map[fine], coarse=None, taxonomy=taxonomy,
                       where=f"tfds {name}/{train_name if ours == 'train' else test_name}")
            for ours, (inputs, fine, _) in read.items()}
  train, test = splits["train"], splits.get("test")
  if test is None:  # held out of train, stratified by coarse class (check_config: 0 < test_fraction < 1)
    train, test = carve_validation(train, data_config.test_fraction, data_config.split_seed)
  if features.lazy:
    mean, std = resized.IMAGENET_MEAN, resized.IMAGENET_STD
  else:
    mean, std = arrays.input_statistics(train.inputs)
  return HierarchicalData(NAME, taxonomy, train, test, mean=mean, std=std)
