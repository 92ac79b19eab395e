"""The grain input pipeline: per-process slice, seeded shuffle, host augmentation, batches.

Training batches are dicts of numpy arrays for this process's share of the global batch:
  inputs: [b, H, W, C] float32 (one view) or `views`: [b, V, H, W, C] (several views);
  vectors are [b, F] (or [b, V, F]);
  coarse, fine, index: [b] int32 (fine is -1 where unknown; index is the example's
  position in the training split, which methods use to keep per-example state);
  dataset: [b] int32 with several taxonomies: which one the example's coarse label follows;
  neighbours: [b, m, ...] when the method asks for them (`NeighbourSampling`): m of each
  example's mined neighbours, drawn without replacement, in the last view's augmentation.
The order is a pure function of (seed, process index, process count, batch size): the
same seed gives the same batches with 0 or N workers, and the grain iterator state
restores the exact position.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Sequence

import grain
import ml_collections
import numpy as np

from coarse2fine.data import augment
from coarse2fine.data.splits import HierarchicalData, Split


class EpochBatches:
  """Index batches of an endless run of epochs (a grain source whose element i is batch i).

  Epoch e is the permutation `default_rng([seed, e]).permutation(range(start, stop))`, cut
  into `len // batch_size` batches (the remainder of each epoch is dropped, as
  `drop_last` does). Shuffling and batching indices here rather than with grain's
  per-element `shuffle().batch()` matters on small images: grain's per-element cost was
  about 150 us against 20-40 us for the augmentation itself.
  """

  MAX_EPOCHS = 1_000_000  # a finite length that no run reaches

  def __init__(self, start: int, stop: int, batch_size: int, seed: int):
    self.start, self.stop, self.batch_size, self.seed = start, stop, batch_size, seed
    self.batches_per_epoch = (stop - start) // batch_size
    self._cached_epoch, self._cached_permutation = -1, None

  def __len__(self) -> int:
    return self.batches_per_epoch * self.MAX_EPOCHS

  def __getitem__(self, index: int) -> np.ndarray:
    epoch, position = divmod(int(index), self.batches_per_epoch)
    if epoch != self._cached_epoch:
      rng = np.random.default_rng([self.seed, epoch])
      self._cached_permutation = rng.permutation(np.arange(self.start, self.stop))
      self._cached_epoch = epoch
    return self._cached_permutation[position * self.batch_size:(position + 1) * self.batch_size]


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

  def draw(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[b, m] neighbour positions: for each example, m distinct columns of its table row."""
    order = np.argsort(rng.random((len(indices), self.table.shape[1])), axis=1)[:, :self.per_example]
    return np.take_along_axis(self.table[indices], order, axis=1)


@dataclasses.dataclass
class BatchTransform:
  """Gathers a batch by example index, augments each example into its views, normalises.

  Working on whole batches keeps grain's per-element overhead out of the hot path: grain
  shuffles and batches plain indices, and one random generator per batch (grain's
  `random_map`, seeded by the dataset seed and the batch position) drives every draw of
  the batch in order, so the batches do not depend on the number of workers.
  Picklable, for grain's worker processes.
  """

  split: Split
  view_fns: Sequence  # one augmentation callable per view; empty for vectors
  mean: np.ndarray
  std: np.ndarray
  stack_views: bool
  neighbours: Optional[NeighbourSampling] = None

  def _augmented(self, x: np.ndarray, fn, rng: np.random.Generator) -> np.ndarray:
    x = np.stack([fn(image, rng) for image in x]) if fn is not None else x  # vectors: as they are
    return ((x - self.mean) / self.std).astype(np.float32)

  def __call__(self, indices: np.ndarray, rng: np.random.Generator) -> dict:
    indices = np.asarray(indices)
    x = self.split.inputs[indices]
    views = [self._augmented(x, fn, rng) for fn in (self.view_fns or [None])]
    out = {
        "coarse": self.split.coarse[indices],
        "fine": self.split.fine[indices],
        "index": indices.astype(np.int32),
    }
    if self.split.dataset is not None:
      out["dataset"] = self.split.dataset[indices]
    if self.stack_views:
      out["views"] = np.stack(views, axis=1)
    else:
      out["inputs"] = views[0]
    if self.neighbours is not None:
      drawn = self.neighbours.draw(indices, rng)  # [b, m]
      flat = self._augmented(self.split.inputs[drawn.reshape(-1)], self.view_fns[-1] if self.view_fns else None, rng)
      out["neighbours"] = flat.reshape(drawn.shape + flat.shape[1:])
    return out


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


def process_slice(num_examples: int, process_index: int, process_count: int) -> tuple[int, int]:
  """The contiguous [start, stop) range of examples this process reads."""
  per_process = num_examples // process_count
  return process_index * per_process, (process_index + 1) * per_process


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
  """An endless, shuffled, augmented, batched dataset of this process's batches.

  Each process reads a disjoint contiguous slice of the training split, reshuffled every
  epoch, and produces `global_batch_size // process_count` examples per step. With
  `neighbours`, each batch also carries the drawn neighbours' inputs.
  """
  if global_batch_size % process_count:
    raise ValueError(f"train.batch_size={global_batch_size} is not divisible by {process_count} processes.")
  local_batch = global_batch_size // process_count
  start, stop = process_slice(len(data.train), process_index, process_count)
  if stop - start < local_batch:
    raise ValueError(
        f"Each process holds {stop - start} training examples, fewer than its batch of {local_batch}; "
        f"lower train.batch_size.")
  dataset = (
      grain.MapDataset.source(EpochBatches(start, stop, local_batch, seed))
      .seed(seed)
      .random_map(make_transform(data, data_config, views, neighbours))
  )
  iter_dataset = dataset.to_iter_dataset()
  if data_config.num_workers > 0:
    iter_dataset = iter_dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=data_config.num_workers))
  return iter_dataset


def steps_per_epoch(data: HierarchicalData, global_batch_size: int, process_count: int = 1) -> int:
  start, stop = process_slice(len(data.train), 0, process_count)
  return (stop - start) // (global_batch_size // process_count)


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


