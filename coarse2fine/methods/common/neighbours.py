"""Exact k-nearest-neighbour mining within groups (FALCON's neighbours, SCAN's without groups).

docs/methods/falcon.md#views-and-neighbours: before training, each example gets the 20 examples of its own coarse
class whose L2-normalised features have the highest inner product (FAISS `IndexFlatIP` in
the reference code, which retrieves 21 and drops the first as "self"). Here self is
excluded by index, so exact duplicates are kept as neighbours of each other.

How it runs: on the host, `make_plan` lays the examples out grouped (stably, so within a
group in index order), cut into query blocks of `block_size` rows; a large group starts on
a block boundary (padding rows fill the gap), small groups share blocks. Each block is
compared with one window of `window` consecutive keys covering every group it touches (all
keys without groups), masked to -inf where the group differs or the key is the query
itself (by index), then `jax.lax.top_k`, which puts the lower index first on ties. One
`jit` (replicated features in, replicated [N, k] out) runs a `shard_map` over the mesh's
`data` axis in which each device `lax.scan`s over its share of the blocks, so the top-k
stays on the device that computed the scores and every block is the same computation on
1 or 8 devices (the same result bit for bit). Device memory: the features twice ([N, D]
as passed, and the layout copy, normalised), a key window [window, D] unless the window is
all keys, and the block scores [block_size, window] float32. Every process of a
multi-process run passes the same features and groups and gets the whole table.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from coarse2fine.engine import sharding
from coarse2fine.methods.common.normalize import l2_normalize

# Default budget for one block's scores [block_size, window] float32: N = 1M without groups
# gets 256-row blocks (1 GiB); small N gets the largest block, MAX_BLOCK.
# workdir of another run -> its eval-mode `features` [N_train, D] on this run's unaugmented training split
RunFeatures = Callable[[str], np.ndarray]

SCORES_BUDGET_BYTES = 2 ** 30
MAX_BLOCK = 1024
MIN_BLOCK = 64
WINDOW_MULTIPLE = 128  # windows are rounded up so that nearby sizes share a compilation


class Plan(NamedTuple):
  """Host-side layout of one mining run.

  The layout lists the examples grouped (stably, so within a group in index order), with
  padding rows where a group is moved to the next block boundary, then up to whole steps.

  Attributes:
    source: [L] int32, the example at each layout position; -1 on padding rows.
    group_ids: [L] int32, dense group id at each layout position; -1 on padding rows.
    query_starts: [S, devices] int32, layout position of the block run on each device at each step.
    key_starts: [S, devices] int32, first layout position of that block's key window.
    block_size: query rows per block.
    window: keys per block.
  """

  source: np.ndarray
  group_ids: np.ndarray
  query_starts: np.ndarray
  key_starts: np.ndarray
  block_size: int
  window: int


def check_group_sizes(groups: np.ndarray, k: int, field: Optional[str] = None) -> None:
  """Raises ValueError naming the groups with fewer than k + 1 members (self is excluded), and `field` to lower."""
  labels, counts = np.unique(groups, return_counts=True)
  small = counts < k + 1
  if np.any(small):
    listed = ", ".join(f"group {g} has {c}" for g, c in zip(labels[small][:10], counts[small][:10]))
    more = f" (and {int(small.sum()) - 10} more)" if small.sum() > 10 else ""
    raise ValueError(
        f"k={k} neighbours need at least {k + 1} examples per group (the example itself is excluded), "
        f"but {listed} member(s){more}. "
        + (f"Lower {field} (at most {int(counts.min()) - 1})." if field else
           f"Lower k (at most {int(counts.min()) - 1}), or pass allow_fewer=True to pad the missing neighbours "
           "with -1."))


def _group_starts(sizes: np.ndarray, block_size: int) -> tuple[np.ndarray, int]:
  """Layout start of each group, and the layout length before padding to whole steps.

  Groups are placed one after another; one that would make the key span of the block it
  starts in (from the first group with rows in that block to its own end) longer than
  max(largest group, block_size) starts at the next block boundary instead. So large
  groups get blocks of their own and small ones share blocks.
  """
  limit = max(int(sizes.max()), block_size)
  starts = np.empty(len(sizes), np.int64)
  pos = first = 0  # next free position; start of the first group with rows in pos's block
  for g, size in enumerate(sizes):
    if pos % block_size == 0:
      first = pos
    elif pos + size - first > limit:
      pos = first = -(-pos // block_size) * block_size
    starts[g] = pos
    if (pos + size) // block_size != pos // block_size:  # the group's end lies in a later block
      first = pos
    pos += int(size)
  return starts, pos


def make_plan(groups: Optional[np.ndarray], n: int, devices: int, block_size: Optional[int] = None,
              budget_bytes: int = SCORES_BUDGET_BYTES) -> Plan:
  """Lays out groups, query blocks and key windows for a mesh of `devices` devices.

  `block_size=None` picks the largest power of two in [MIN_BLOCK, MAX_BLOCK] whose scores
  [block_size, window] float32 fit in `budget_bytes` (MIN_BLOCK if none does).
  """
  if block_size is None:
    candidates = [MAX_BLOCK >> i for i in range(MAX_BLOCK.bit_length()) if MAX_BLOCK >> i >= MIN_BLOCK]
    plans = (make_plan(groups, n, devices, b) for b in candidates)
    return next((p for p in plans if p.block_size * p.window * 4 <= budget_bytes),
                make_plan(groups, n, devices, MIN_BLOCK))
  if block_size < 1:
    raise ValueError(f"block_size must be positive, got {block_size}.")
  group_ids = np.zeros(n, np.int64) if groups is None else np.unique(groups, return_inverse=True)[1].reshape(n)
  order = np.argsort(group_ids, kind="stable")
  sizes = np.bincount(group_ids)
  starts, length = _group_starts(sizes, block_size)
  steps = -(-length // (block_size * devices))
  num_blocks = steps * devices
  size = num_blocks * block_size
  rank = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # rank of each sorted example in its group
  position = starts[group_ids[order]] + rank
  source = np.full(size, -1, np.int32)
  source[position] = order
  layout_ids = np.full(size, -1, np.int32)
  layout_ids[position] = group_ids[order]
  # Each block's real rows come first; its keys run from the start of the group of its first
  # row to the end of the group of its last real row.
  firsts = np.arange(num_blocks) * block_size
  real = np.add.reduceat((source >= 0).astype(np.int64), firsts)
  lasts = firsts + np.maximum(real, 1) - 1
  lo = np.where(real > 0, starts[np.maximum(layout_ids[firsts], 0)], 0)
  hi = np.where(real > 0, (starts + sizes)[np.maximum(layout_ids[lasts], 0)], 0)
  window = min(-(-int(np.max(hi - lo)) // WINDOW_MULTIPLE) * WINDOW_MULTIPLE, size)
  if not np.any(lo):  # one window for all blocks (e.g. one group): all keys, so no copy of them
    window = size
  return Plan(source, layout_ids, firsts.reshape(steps, devices).astype(np.int32),
              np.minimum(lo, size - window).reshape(steps, devices).astype(np.int32), block_size, window)


def top_k_in_chunks(scores: jax.Array, k: int, chunk: int) -> tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k` over the last axis in two stages: within chunks of `chunk`, then across.

  Exact, with the same order (ties to the lower index: the winners of a lower chunk come
  first, and a chunk's equal winners are in index order). It bounds each top-k to `chunk` or
  (width / chunk) * k entries; XLA's GPU TopK kernel covers k <= 16 only, and a larger k
  becomes a sort of whole rows. scores: [..., W] -> ([..., k] values, [..., k] int32 indices).
  """
  width = scores.shape[-1]
  pad = -width % chunk
  scores = jnp.pad(scores, [(0, 0)] * (scores.ndim - 1) + [(0, pad)], constant_values=-jnp.inf)
  values, local = jax.lax.top_k(scores.reshape(*scores.shape[:-1], -1, chunk), min(k, chunk))
  index = local + (jnp.arange(values.shape[-2]) * chunk)[:, None]
  values, pick = jax.lax.top_k(values.reshape(*values.shape[:-2], -1), k)
  return values, jnp.take_along_axis(index.reshape(*index.shape[:-2], -1), pick, axis=-1)


@functools.lru_cache(maxsize=32)
def _miner(mesh: Mesh, k: int, block_size: int, window: int, normalize: bool, precision: str,
           top_k_chunk: Optional[int]):
  """The jitted search for one layout: (x [N, D], source [L], group_ids [L], query_starts,
  key_starts [S, devices]) -> idx [N, k] int32 example indices, replicated."""
  top = min(k, window)

  def rows(x, starts, size):  # [devices] starts -> [devices, size, D], one contiguous slice each
    return jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(x, s, size))(starts)

  def search(x, group_ids, query_starts, key_starts):
    """Per device: its blocks ([S, 1] starts) against the replicated layout x [L, D] -> [S, 1, B, top]."""

    def step(_, starts):
      q_start, k_start = starts  # [1] each
      q_pos = q_start[:, None] + jnp.arange(block_size)  # [1, B]
      k_pos = k_start[:, None] + jnp.arange(window)  # [1, W]
      queries = rows(x, q_start, block_size)
      if window == x.shape[0]:  # all keys: no copy of the features
        scores = jnp.einsum("dbf,wf->dbw", queries, x, precision=precision)
      else:
        scores = jnp.einsum("dbf,dwf->dbw", queries, rows(x, k_start, window), precision=precision)
      keep = ((group_ids[q_pos][:, :, None] == group_ids[k_pos][:, None, :])
              & (q_pos[:, :, None] != k_pos[:, None, :]))
      scores = jnp.where(keep, scores, -jnp.inf)
      if top_k_chunk and top_k_chunk < window:
        values, local = top_k_in_chunks(scores, top, top_k_chunk)
      else:
        values, local = jax.lax.top_k(scores, top)  # ties: lower index first
      return None, jnp.where(values > -jnp.inf, k_start[:, None, None] + local, -1)

    return jax.lax.scan(step, None, (query_starts, key_starts))[1]

  blocks = P(None, sharding.DATA_AXIS)
  search = jax.shard_map(search, mesh=mesh, in_specs=(P(), P(), blocks, blocks), out_specs=blocks)

  def mine(x, source, group_ids, query_starts, key_starts):
    n = x.shape[0]
    x = x.astype(jnp.float32)[jnp.maximum(source, 0)]
    if normalize:
      x = l2_normalize(x, axis=1)
    found = search(x, group_ids, query_starts, key_starts)  # [S, devices, B, top] layout positions
    found = found.reshape(-1, top)
    found = jnp.where(found >= 0, source[jnp.maximum(found, 0)], -1)  # layout positions -> examples
    if top < k:
      found = jnp.pad(found, ((0, 0), (0, k - top)), constant_values=-1)
    rows = jnp.where(source >= 0, source, n)  # padding rows are dropped
    return jnp.full((n, k), -1, jnp.int32).at[rows].set(found, mode="drop")

  replicated, split = sharding.replicated(mesh), NamedSharding(mesh, blocks)
  return jax.jit(mine, in_shardings=(replicated, replicated, replicated, split, split),
                 out_shardings=replicated)


def mine_neighbours(features, groups=None, k: int = 20, *, normalize: bool = True,
                    block_size: Optional[int] = None, mesh: Optional[Mesh] = None, allow_fewer: bool = False,
                    precision: str = "highest", top_k_chunk: Optional[int] = None) -> np.ndarray:
  """The k most similar examples of the same group for every example, on the device.

  Args:
    features: [N, D] float32 (numpy or jax.Array; cast to float32).
    groups: [N] integer group of each example (the coarse class, or a combined id over
      several datasets); None puts all examples in one group (SCAN).
    k: neighbours per example.
    normalize: L2-normalise the rows first, so the inner product is the cosine.
    block_size: query rows per block; None picks one whose [block_size, window] float32
      scores fit in SCORES_BUDGET_BYTES (1 GiB).
    mesh: a `Mesh` with a `data` axis to split the query blocks over; None runs on one device.
    allow_fewer: if a group has fewer than k + 1 members, pad its rows with -1 instead of
      raising ValueError.
    precision: matmul precision; "highest" keeps float32 products exact on GPU/TPU.
    top_k_chunk: if set, select the top k in two stages (`top_k_in_chunks`), same result.
      Not measured on a GPU yet; on CPU the one-stage `top_k` is several times faster.

  Returns:
    [N, k] int32 numpy: row i holds the indices j != i with groups[j] == groups[i] in
    decreasing inner product, ties by lower index; -1 only with `allow_fewer`.
  """
  if len(features.shape) != 2:
    raise ValueError(f"features must be [N, D], got shape {features.shape}.")
  n = features.shape[0]
  if k < 1:
    raise ValueError(f"k must be at least 1, got {k}.")
  if groups is not None:
    groups = np.asarray(groups)
    if groups.shape != (n,) or not np.issubdtype(groups.dtype, np.integer):
      raise ValueError(f"groups must be [N] = [{n}] integers, got {groups.shape} {groups.dtype}.")
  if not allow_fewer:
    check_group_sizes(np.zeros(n, np.int32) if groups is None else groups, k)
  if mesh is None:
    mesh = Mesh(np.asarray(jax.devices()[:1]), (sharding.DATA_AXIS,))
  plan = make_plan(groups, n, mesh.devices.size, block_size)
  fn = _miner(mesh, k, plan.block_size, plan.window, normalize, precision, top_k_chunk)
  return np.asarray(fn(features, plan.source, plan.group_ids, plan.query_starts, plan.key_starts))


def within_coarse_count(data, at_most: int = 20) -> int:
  """How many neighbours every training example has within its coarse class (itself excluded), capped."""
  return max(1, min(at_most, int(np.bincount(data.train.coarse).min()) - 1))


def training_features(data, source: str, run_features: Optional[RunFeatures] = None,
                      what: str = "Features") -> np.ndarray:
  """[N_train, D] float32 features of `data.train` from `source` (see `training_neighbours`); `what` names them in errors."""
  n = len(data.train)
  if source == "inputs":
    return np.asarray(data.train.inputs, np.float32).reshape(n, -1)
  if source.startswith("checkpoint:"):
    if run_features is None:
      raise ValueError(f"{what} {source!r} need a reader of another run's features; "
                       "pass run_features (the training loop passes engine.runs.features_from_checkpoint).")
    return np.asarray(run_features(source[len("checkpoint:"):]), np.float32).reshape(n, -1)
  if source.endswith(".npy") and os.path.isfile(source):
    features = np.load(source)
    if features.shape[0] != n:
      raise ValueError(f"{what} {source!r} have {features.shape[0]} rows for {n} training examples; "
                       "save features of the training split, in order.")
    return np.asarray(features, np.float32).reshape(n, -1)
  raise ValueError(f"{what} {source!r}: use 'inputs', 'checkpoint:<workdir>' or an existing .npy "
                   "file of training-split features.")


def training_neighbours(data, source: str, k: int, *, within_coarse: bool,
                        run_features: Optional[RunFeatures] = None, field: str = "k") -> np.ndarray:
  """[N_train, k] neighbours of every training example of `data` (FALCON, SCAN), mined on the device.

  source: "inputs" (the raw inputs, flattened; the official PBMC pipeline), "checkpoint:<workdir>"
  (the `features` of another run of this project, e.g. `coarse` or a self-supervised backbone,
  in eval mode on the unaugmented training inputs, read by `run_features`, which the loop
  passes in), or a `.npy` file of [N_train, D] features in
  training-split order. Rows are L2-normalised and compared by inner product, within the coarse
  class (of the example's own taxonomy) when `within_coarse` (FALCON, SCAN-C), or over all
  examples (SCAN). `field` names the config field of k in errors.
  """
  n = len(data.train)
  # With several taxonomies a group is a (taxonomy, coarse class) pair (docs/methods/falcon.md#several-taxonomies).
  groups = (data.train.dataset_ids.astype(np.int64) * (int(data.train.coarse.max()) + 1) + data.train.coarse
            if within_coarse else None)
  check_group_sizes(np.zeros(n, np.int32) if groups is None else groups, k, field)  # before computing features
  features = training_features(data, source, run_features, "Neighbour features")
  # Every process mines the whole (deterministic) table on its own devices: the features are
  # host arrays, the same on every process, and the table stays on the host.
  return mine_neighbours(features.reshape(n, -1), groups, k, mesh=sharding.local_mesh())
