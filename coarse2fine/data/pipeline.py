"""The grain input pipeline: per-process slice, seeded shuffle, host stage of the views, batches, device prefetch.

Training batches are `batch.Batch`es of numpy arrays for this process's share of the global
batch: views [b, V, H, W, C] uint8 (vectors [b, V, F] float32), cut, resized and flipped on
the host (`augmentation.presets`, `augmentation.host`); colour, blur and normalisation follow on the device
inside the jitted step (`augmentation.device`). `device_batches` places each global batch on the
mesh from a background thread, a few steps ahead, so host work, transfer and the step overlap.
The global batches are a pure function of (seed, batch size), whatever the number of
processes, workers or devices: epoch e is a seeded permutation of the training split cut
into global batches, process p reads the p-th of `process_count` equal parts of each, and
every example's host draws come from its own generator, keyed by (seed, global batch
number, position in the global batch); its device draws from a JAX key of the same triple.
So N processes together train on exactly the batches one process would, and the data
position of a run is its step alone: a resumed run (on any number of processes) starts the
dataset at global batch `step` (`train_dataset(start_batch=...)`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import multiprocessing.util
import signal
import threading
import weakref
from typing import Iterator, Optional, Sequence

import grain
import ml_collections
import numpy as np

from coarse2fine.data.augmentation import device as device_augment
from coarse2fine.data.augmentation import presets as augment
from coarse2fine.data.augmentation.host import HostView
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData, Split
from coarse2fine.engine import random_streams


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
  """Neighbours a method wants loaded with every training example (FALCON, docs/methods/falcon.md#views-and-neighbours).

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


def stored_example(inputs, index: int):
  """What a view's host stage reads for training example `index`: its file, or its array."""
  if getattr(inputs, "stores_files", False):
    return inputs.stored_file(index)
  return inputs[index]


@dataclasses.dataclass
class BatchTransform:
  """Gathers a batch by example index and runs the host stage of each example's views: a `Batch`.

  Working on whole batches keeps grain's per-element overhead out of the hot path: grain
  shuffles and batches plain indices. Each example draws from its own generator (`rngs`),
  in a fixed order (its views in turn, then its neighbours' choice and their views), so a
  batch does not depend on the number of workers or on how processes split it. A stored
  file is read once per example for all of its views. Picklable, for grain's worker processes.
  """

  split: Split
  views: Sequence[Optional[HostView]]  # host stage per view; None for vectors
  neighbours: Optional[NeighbourSampling] = None

  def __call__(self, indices: np.ndarray, rngs: Sequence[np.random.Generator], example: np.ndarray) -> Batch:
    """The batch of training positions `indices` [b], example i drawing from `rngs[i]`; `example` [b, 2].

    Example-major: all of example i's draws (views, then neighbours) happen before example
    i + 1's, so `rngs` may be an `ExampleStreams`.
    """
    indices = np.asarray(indices)
    if len(rngs) != len(indices):
      raise ValueError(f"{len(indices)} examples need as many generators, got {len(rngs)}.")
    inputs = self.split.inputs
    hosts = list(self.views)
    if hosts[0] is None:  # vectors: no draws but the neighbours', one gather
      views = np.repeat(np.asarray(inputs[indices], np.float32)[:, None], len(hosts), axis=1)
      neighbours = None
      if self.neighbours is not None:
        chosen = np.stack([self.neighbours.draw_one(index, rngs[i]) for i, index in enumerate(indices)])
        neighbours = np.asarray(inputs[chosen], np.float32)  # [b, m, F]
    else:
      shapes = {view.out_shape for view in hosts}
      if len(shapes) > 1:
        raise ValueError(f"The views of a batch must share one output size, got {sorted(shapes)}; set "
                         "data.augment.size for all of them.")
      (shape,) = shapes
      views = np.empty((len(indices), len(hosts), *shape), np.uint8)  # each view is written here once
      neighbours = None
      if self.neighbours is not None:
        neighbours = np.empty((len(indices), self.neighbours.per_example, *shape), np.uint8)
      for i, index in enumerate(indices):
        rng, stored = rngs[i], stored_example(inputs, index)
        for v, view in enumerate(hosts):
          view.into(views[i, v], stored, rng)
        if neighbours is not None:
          for j, c in enumerate(self.neighbours.draw_one(index, rng)):
            hosts[-1].into(neighbours[i, j], stored_example(inputs, c), rng)
    return Batch(
        views=views,
        coarse=self.split.coarse[indices],
        fine=self.split.fine[indices],
        index=indices.astype(np.int32),
        dataset=self.split.dataset_ids[indices],
        example=np.asarray(example, np.int32),
        neighbours=neighbours,
    )

  def keyed(self, element: dict) -> Batch:
    """A batch from an `EpochBatches` element: generators keyed per example (grain `map`)."""
    keys = element["keys"]
    return self(element["indices"], ExampleStreams(keys), keys[:, 1:3])


def make_transform(data: HierarchicalData, data_config: ml_collections.ConfigDict, views: Sequence[str],
                   neighbours: Optional[NeighbourSampling] = None) -> BatchTransform:
  """Builds the host stage of the training split's batches for the augmentation kinds in `views`."""
  if not views:
    raise ValueError("A method must ask for at least one view.")
  if neighbours is not None and len(neighbours.table) != len(data.train):
    raise ValueError(f"The neighbour table has {len(neighbours.table)} rows for {len(data.train)} training examples.")
  made = augment.make_views(data_config.augment, views, data.input_shape if data.is_image else None)
  return BatchTransform(data.train, [view.host for view in made], neighbours=neighbours)


def make_device_augment(data: HierarchicalData, data_config: ml_collections.ConfigDict, views: Sequence[str],
                        seed: int, with_neighbours: bool = False, stream: int = random_streams.TRAIN_AUGMENT_STREAM
                        ) -> device_augment.DeviceAugment:
  """The device stage of the batches `make_transform` builds for the same `views`."""
  made = augment.make_views(data_config.augment, views, data.input_shape if data.is_image else None)
  return augment.device_augment(made, data.mean, data.std, seed, neighbours=made[-1] if with_neighbours else None,
                                stream=stream)


def read_options(data_config: ml_collections.ConfigDict) -> grain.ReadOptions:
  """Threads building batches in each process, and how many finished batches each may hold.

  Elements here are whole batches (at 224 px, hundreds of MB each), so the buffer is a few
  batches, not grain's default of 500 elements.
  """
  threads = data_config.num_threads
  if threads < 0:
    raise ValueError(f"data.num_threads must be >= 0, got {threads}.")
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(2 * threads, 1))


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
    start_batch: int = 0,
) -> grain.IterDataset:
  """An endless, shuffled, batched dataset of this process's part of each global batch (host stage done).

  Process p produces examples [p L, (p + 1) L) of every global batch (L = global_batch_size /
  process_count); see the module docstring. With `neighbours`, each batch also carries the
  drawn neighbours' views. The first batch is global batch `start_batch` (a resumed run's step).
  """
  if global_batch_size % process_count:
    raise ValueError(f"train.batch_size={global_batch_size} is not divisible by {process_count} processes.")
  if len(data.train) < global_batch_size:
    raise ValueError(f"The training split holds {len(data.train)} examples, fewer than its batch of "
                     f"{global_batch_size}; lower train.batch_size.")
  if start_batch < 0:
    raise ValueError(f"start_batch must be >= 0, got {start_batch}.")
  batches = EpochBatches(len(data.train), global_batch_size, seed, process_index, process_count)
  transform = make_transform(data, data_config, views, neighbours)
  # Element i of the slice is global batch start_batch + i: its keys carry the global number.
  dataset = grain.MapDataset.source(batches)[start_batch:].map(transform.keyed)
  iter_dataset = dataset.to_iter_dataset(read_options(data_config))
  if data_config.num_workers > 0:
    iter_dataset = ClosedAtExit(iter_dataset.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=data_config.num_workers), worker_init_fn=ignore_interrupts))
  return iter_dataset


def ignore_interrupts(worker_index: int, worker_count: int) -> None:
  """A grain worker ignores Ctrl-C, which the terminal sends to the whole process group: the main process
  stops the workers and unlinks their shared memory (`ClosedAtExit`), where a worker interrupted between
  filling a block and queueing it would leave that block behind."""
  del worker_index, worker_count
  signal.signal(signal.SIGINT, signal.SIG_IGN)


def device_batches(dataset: grain.IterDataset, mesh, prefetch: int) -> grain.IterDataset:
  """`dataset`'s batches as global arrays on `mesh`, placed `prefetch` batches ahead by a background thread.

  Each batch is transferred (as uint8 for images) while earlier steps run; the iterator's
  state counts the batches the loop took, not those in flight, so checkpoints resume exactly.
  """
  from coarse2fine.engine import sharding  # the data layer needs jax only from here on

  if prefetch < 0:
    raise ValueError(f"data.device_prefetch must be >= 0, got {prefetch}.")
  # Only CPU devices alias host memory; an accelerator's device_put copies the block out by itself.
  on_cpu = mesh.devices.flat[0].platform == "cpu"
  placed = dataset.map(lambda batch: sharding.global_batch(own_memory(batch) if on_cpu else batch, mesh))
  return ClosedAtExit(grain.experimental.ThreadPrefetchIterDataset(placed, prefetch_buffer_size=prefetch)
                      if prefetch else placed)


class ClosedAtExit(grain.IterDataset):
  """`parent`, whose iterators are closed when the interpreter exits, before multiprocessing's own clean-up.

  A run that ends with an exception (Ctrl-C, a NaN check) keeps the loop's frame, and so its iterator,
  alive in the traceback until the interpreter is torn down: grain's workers are stopped at exit, but
  the batches their buffers in this process already hold are shared memory blocks nobody unlinks, and
  resource_tracker reports them as leaked. Closing the iterator first releases them while the threads
  that unlink blocks still run (`multiprocessing.util.Finalize`, run at exit in decreasing priority:
  above the thread pools' 15 and grain's own 1).
  """

  _live: "weakref.WeakValueDictionary[int, grain.DatasetIterator]" = weakref.WeakValueDictionary()
  _made = itertools.count()  # creation order, the key of `_live`
  _lock = threading.Lock()
  _registered = False

  def __iter__(self):
    iterator = self._parent.__iter__()
    with ClosedAtExit._lock:
      ClosedAtExit._live[next(ClosedAtExit._made)] = iterator
      if not ClosedAtExit._registered:
        multiprocessing.util.Finalize(None, ClosedAtExit.close_all, exitpriority=20)
        ClosedAtExit._registered = True
    return iterator

  @staticmethod
  def close_all() -> None:
    """Closes every live iterator, the newest (outermost) first."""
    with ClosedAtExit._lock:
      iterators = sorted(ClosedAtExit._live.items(), reverse=True)
    for _, iterator in iterators:
      with contextlib.suppress(Exception):  # at exit, the error that ended the run is the one to show
        iterator.close()


def own_memory(batch):
  """`batch` with each array that lives in grain's shared memory copied into this process's own memory.

  Worker processes (`data.num_workers` > 0) hand their batches over in shared memory blocks, each
  unlinked when the array mapping it is deleted. On CPU, JAX places a page-aligned numpy array on the
  device without a copy, so the global array would keep its block mapped for as long as it lives; the
  batches still prefetched when the process exits are never deleted, their blocks never unlinked, and
  Python's resource_tracker reports them ("There appear to be N leaked shared_memory objects"). The copy
  (one memcpy per batch, on the prefetch thread) frees each block as soon as its batch is placed.
  """
  import jax

  shared = grain.multiprocessing.SharedMemoryArray
  return jax.tree.map(lambda leaf: np.array(leaf) if isinstance(leaf, shared) else leaf, batch)


def steps_per_epoch(data: HierarchicalData, global_batch_size: int) -> int:
  """Global batches per epoch (every process steps through all of them)."""
  return len(data.train) // global_batch_size


def eval_batches(
    split: Split, batch_size: int, *, process_index: int = 0, process_count: int = 1
) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of every example of `split`, in order, as stored (uint8 images, float vectors).

  The last batch is padded to `batch_size`; `mask` ([b] bool) marks real examples.
  Every process yields the same number of batches so collectives stay in step.
  Normalisation happens on the device (`augmentation.device.normalise`).
  """
  local_batch = batch_size // process_count
  num_batches = -(-len(split) // batch_size)
  for b in range(num_batches):
    idx = np.arange(b * batch_size + process_index * local_batch, b * batch_size + (process_index + 1) * local_batch)
    mask = idx < len(split)
    idx = np.where(mask, idx, 0)
    yield {
        "inputs": np.asarray(split.inputs[idx]),
        "coarse": split.coarse[idx],
        "fine": split.fine[idx],
        "index": idx.astype(np.int32),
        "mask": mask,
    }
