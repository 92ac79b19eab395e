"""The grain input pipeline: per-process slice, seeded shuffle, host augmentation, batches.

Training batches are dicts of numpy arrays for this process's share of the global batch:
  inputs: [b, H, W, C] float32 (one view) or `views`: [b, V, H, W, C] (several views);
  vectors are [b, F] (or [b, V, F]);
  coarse, fine, index: [b] int32 (fine is -1 where unknown; index is the example's
  position in the training split, which methods use to keep per-example state);
  dataset: [b] int32 with several taxonomies: which one the example's coarse label follows;
  neighbours: [b, m, ...] when the method asks for them (`NeighbourSampling`): m of each
  example's mined neighbours, drawn without replacement, in the last view's augmentation.
The global batches are a pure function of (seed, batch size), whatever the number of
processes, workers or devices: epoch e is a seeded permutation of the training split cut
into global batches, process p reads the p-th of `process_count` equal parts of each, and
every example's augmentation draws come from its own generator, keyed by (seed, global
batch number, position in the global batch). So N processes together train on exactly the
batches one process would, and the grain iterator state restores the exact position.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Sequence

import grain
import ml_collections
import numpy as np

from coarse2fine.data import augment
from coarse2fine.data.splits import HierarchicalData, Split


class ExampleStreams:
  """The random streams of a batch's examples, one per key, served by one re-keyed Philox generator.

  keys: [b, 3] (seed, global batch number, position in the batch) or [b, 4] with a last
  0/1 tag that keeps other passes' streams apart from training's. `streams[i]` re-keys the
  shared generator to example i (Philox key (seed, batch * 2^24 + position), counter 0) and
  returns it: about 1.4 us against 7 us for a new generator per example. So take an
  example's draws in one go before selecting the next one.
  """

  def __init__(self, keys: np.ndarray):
    keys = np.asarray(keys, np.int64)
    if keys.ndim != 2 or keys.shape[1] not in (3, 4):
      raise ValueError(f"Example keys must be [b, 3] or [b, 4], got shape {keys.shape}.")
    if (keys[:, 1:3] < 0).any() or (keys[:, 2] >= 1 << 24).any() or (keys[:, 1] >= 1 << 39).any():
      raise ValueError("Example keys need 0 <= batch number < 2^39 and 0 <= position < 2^24.")
    tag = keys[:, 3].astype(np.uint64) << np.uint64(63) if keys.shape[1] == 4 else np.uint64(0)
    words = (keys[:, 1].astype(np.uint64) << np.uint64(24)) | keys[:, 2].astype(np.uint64) | tag
    self._keys = np.stack([keys[:, 0].astype(np.uint64), words], axis=1)  # seeds wrap modulo 2^64
    self._bits = np.random.Philox(key=0)
    self._generator = np.random.Generator(self._bits)

  def __len__(self) -> int:
    return len(self._keys)

  def __getitem__(self, i: int) -> np.random.Generator:
    self._bits.state = {"bit_generator": "Philox",
                        "state": {"counter": np.zeros(4, np.uint64), "key": self._keys[i]},
                        "buffer": np.zeros(4, np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
    return self._generator


class EpochBatches:
  """This process's part of every global batch of an endless run of epochs (grain source: element i = batch i).

  Epoch e is the permutation `default_rng([seed, e]).permutation(N)` of the training split, cut
  into `N // global_batch` global batches (the remainder of each epoch is dropped, as
  `drop_last` does); process p of P takes positions [p L, (p + 1) L) of each, L = global / P.
  Element i is {"indices": [L] training positions, "keys": [L, 3] (seed, i, position) that
  key each example's augmentation generator}. Shuffling and batching indices here rather
  than with grain's per-element `shuffle().batch()` matters on small images: grain's
  per-element cost was about 150 us against 20-40 us for the augmentation itself.
  """

  MAX_EPOCHS = 1_000_000  # a finite length that no run reaches

  def __init__(self, num_examples: int, global_batch: int, seed: int, process_index: int = 0, process_count: int = 1):
    self.num_examples, self.global_batch, self.seed = num_examples, global_batch, seed
    self.local_batch = global_batch // process_count
    self.offset = process_index * self.local_batch
    self.batches_per_epoch = num_examples // global_batch
    self._cache = (-1, None)  # (epoch, its permutation), replaced as one object: grain reads from several threads

  def __len__(self) -> int:
    return self.batches_per_epoch * self.MAX_EPOCHS

  def __getitem__(self, index: int) -> dict:
    epoch, position = divmod(int(index), self.batches_per_epoch)
    cached_epoch, permutation = self._cache
    if cached_epoch != epoch:
      permutation = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
      self._cache = (epoch, permutation)
    start = position * self.global_batch + self.offset
    positions = self.offset + np.arange(self.local_batch)
    keys = np.stack([np.full_like(positions, self.seed), np.full_like(positions, int(index)), positions], axis=1)
    return {"indices": permutation[start:start + self.local_batch], "keys": keys}


@dataclasses.dataclass(frozen=True)
class NeighbourSampling:
  """Neighbours a method wants loaded with every training example (FALCON, METHODS.md 3.2).

  table: [N_train, k] int32, training-split positions of each example's neighbours;
  per_example: m <= k of them drawn without replacement each time the example is loaded.
  """

  table: np.ndarray
  per_example: int

  def __post_init__(self):
    if self.table.ndim != 2 or not 0 < self.per_example <= self.table.shape[1]:
      raise ValueError(f"Neighbour table of shape {self.table.shape} cannot give {self.per_example} "
                       "neighbours per example; mine at least that many.")

  def draw_one(self, index: int, rng: np.random.Generator) -> np.ndarray:
    """[m] neighbour positions of example `index`: m distinct columns of its table row."""
    order = np.argsort(rng.random(self.table.shape[1]))[:self.per_example]
    return self.table[index, order]


@dataclasses.dataclass
class BatchTransform:
  """Gathers a batch by example index, augments each example into its views, normalises.

  Working on whole batches keeps grain's per-element overhead out of the hot path: grain
  shuffles and batches plain indices. Each example draws from its own generator (`rngs`),
  in a fixed order (its views in turn, then its neighbours' choice and their views), so a
  batch does not depend on the number of workers or on how processes split it.
  Picklable, for grain's worker processes.
  """

  split: Split
  view_fns: Sequence  # one augmentation callable per view; empty for vectors
  mean: np.ndarray
  std: np.ndarray
  stack_views: bool
  neighbours: Optional[NeighbourSampling] = None

  def _normalised(self, x: np.ndarray) -> np.ndarray:
    return ((x - self.mean) / self.std).astype(np.float32)

  def __call__(self, indices: np.ndarray, rngs: Sequence[np.random.Generator]) -> dict:
    """The batch of training positions `indices` [b], example i drawing from `rngs[i]`.

    Example-major: all of example i's draws (views, then neighbours) happen before example
    i + 1's, so `rngs` may be an `ExampleStreams`.
    """
    indices = np.asarray(indices)
    if len(rngs) != len(indices):
      raise ValueError(f"{len(indices)} examples need as many generators, got {len(rngs)}.")
    inputs = self.split.inputs
    fns = list(self.view_fns)
    views, neighbours = [], []
    if not fns and self.neighbours is None:  # vectors, nothing to draw: one gather
      views = self._normalised(inputs[indices][:, None])
    else:
      for i, index in enumerate(indices):
        rng = rngs[i]
        views.append([fn(inputs[index], rng) for fn in fns] or [inputs[index]])
        if self.neighbours is not None:
          chosen = self.neighbours.draw_one(index, rng)  # [m]
          neighbours.append([fns[-1](inputs[c], rng) for c in chosen] if fns else inputs[chosen])
      views = self._normalised(np.asarray(views))  # [b, V, ...]
    out = {
        "coarse": self.split.coarse[indices],
        "fine": self.split.fine[indices],
        "index": indices.astype(np.int32),
    }
    if self.split.dataset is not None:
      out["dataset"] = self.split.dataset[indices]
    if self.stack_views:
      out["views"] = views
    else:
      out["inputs"] = views[:, 0]
    if self.neighbours is not None:
      out["neighbours"] = self._normalised(np.asarray(neighbours))  # [b, m, ...]
    return out

  def keyed(self, element: dict) -> dict:
    """A batch from an `EpochBatches` element: generators keyed per example (grain `map`)."""
    return self(element["indices"], ExampleStreams(element["keys"]))


def make_transform(data: HierarchicalData, data_config: ml_collections.ConfigDict, views: Sequence[str],
                   neighbours: Optional[NeighbourSampling] = None) -> BatchTransform:
  """Builds the batch transform of the training split for the augmentation kinds in `views`."""
  if not views:
    raise ValueError("A method must ask for at least one view.")
  view_fns = []
  if data.is_image:
    for kind in views:
      spec = ml_collections.ConfigDict(data_config.augment.to_dict())
      spec.kind = kind
      view_fns.append(augment.make_augmentation(spec, data.input_shape))
  if neighbours is not None and len(neighbours.table) != len(data.train):
    raise ValueError(f"The neighbour table has {len(neighbours.table)} rows for {len(data.train)} training examples.")
  return BatchTransform(data.train, view_fns, data.mean, data.std, stack_views=len(views) > 1,
                        neighbours=neighbours)


def train_dataset(
    data: HierarchicalData,
    data_config: ml_collections.ConfigDict,
    *,
    views: Sequence[str],
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    neighbours: Optional[NeighbourSampling] = None,
) -> grain.IterDataset:
  """An endless, shuffled, augmented, batched dataset of this process's part of each global batch.

  Process p produces examples [p L, (p + 1) L) of every global batch (L = global_batch_size /
  process_count); see the module docstring. With `neighbours`, each batch also carries the
  drawn neighbours' inputs.
  """
  if global_batch_size % process_count:
    raise ValueError(f"train.batch_size={global_batch_size} is not divisible by {process_count} processes.")
  if len(data.train) < global_batch_size:
    raise ValueError(f"The training split holds {len(data.train)} examples, fewer than its batch of "
                     f"{global_batch_size}; lower train.batch_size.")
  batches = EpochBatches(len(data.train), global_batch_size, seed, process_index, process_count)
  transform = make_transform(data, data_config, views, neighbours)
  dataset = grain.MapDataset.source(batches).map(transform.keyed)
  iter_dataset = dataset.to_iter_dataset()
  if data_config.num_workers > 0:
    iter_dataset = iter_dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_config.num_workers))
  return iter_dataset


def steps_per_epoch(data: HierarchicalData, global_batch_size: int) -> int:
  """Global batches per epoch (every process steps through all of them)."""
  return len(data.train) // global_batch_size


def eval_batches(
    split: Split, data: HierarchicalData, batch_size: int, *, process_index: int = 0, process_count: int = 1
) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of every example of `split`, in order, without augmentation.

  The last batch is padded to `batch_size`; `mask` ([b] bool) marks real examples.
  Every process yields the same number of batches so collectives stay in step.
  """
  local_batch = batch_size // process_count
  num_batches = -(-len(split) // batch_size)
  for b in range(num_batches):
    idx = np.arange(b * batch_size + process_index * local_batch, b * batch_size + (process_index + 1) * local_batch)
    mask = idx < len(split)
    idx = np.where(mask, idx, 0)
    x = split.inputs[idx]
    x = x.astype(np.float32) / 255.0 if data.is_image else x
    x = (x - data.mean) / data.std
    yield {
        "inputs": x.astype(np.float32),
        "coarse": split.coarse[idx],
        "fine": split.fine[idx],
        "index": idx.astype(np.int32),
        "mask": mask,
    }


