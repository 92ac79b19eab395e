"""SCGM's cross-granularity few-shot evaluation: episodes, logistic regression, 95% CIs.

Protocol (per setting, episodes e = 0 .. E-1, each with `np.random.RandomState(seed + e)`):
  * classes: n-way draws `rng.choice(classes, n_way, replace=False)` from the sorted fine
    classes (all of them when there are not more than n_way); all-way takes every fine
    class; intra draws one coarse class `rng.choice(coarse ids)` and takes all its fine
    classes, so the way varies by episode and arrays are padded to the largest;
  * per chosen class, in order: k support examples `rng.choice(members, k, replace=False)`,
    then n_query queries drawn the same way from the remaining members; labels are the
    positions 0 .. n_way - 1 of the classes in the chosen order;
  * the support set is tiled `num_augmented` times, each copy augmented independently
    (0 copies: the un-augmented support once); queries are never augmented;
  * L2-normalised embeddings, `LogisticRegression(C=1, lbfgs)` per episode (here the
    batched solver of `logistic.py`), query accuracy per episode;
  * summary: mean accuracy and the 95% t-interval half-width, both in percent.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np
import scipy.stats

from coarse2fine.evaluation import logistic
from coarse2fine.methods.common.normalize import l2_normalize_host

SETTINGS = ("nway", "allway", "intra")


class Episodes(NamedTuple):
  """Padded episodes; W the largest way, k shots, q queries per class (class-major rows)."""

  support_idx: np.ndarray  # [E, W*k] int64 pool indices, 0 where padded
  support_y: np.ndarray  # [E, W*k] int32 episode labels 0 .. n_way - 1, 0 where padded
  support_mask: np.ndarray  # [E, W*k] bool
  query_idx: np.ndarray  # [E, W*q] int64
  query_y: np.ndarray  # [E, W*q] int32
  query_mask: np.ndarray  # [E, W*q] bool
  n_way_per_episode: np.ndarray  # [E] int32
  classes: np.ndarray  # [E, W] int64 fine class of each episode label, -1 where padded

  @property
  def class_mask(self) -> np.ndarray:
    """[E, W] bool, the episode's real classes."""
    return self.classes >= 0


def _check_class_sizes(members: dict, need: int, k_shot: int, n_query: int) -> None:
  sizes = {c: len(m) for c, m in members.items()}
  small = sorted((size, c) for c, size in sizes.items() if size < need)
  if small:
    size, c = small[0]
    raise ValueError(
        f"Few-shot episodes need k_shot + n_query = {k_shot} + {n_query} = {need} examples per "
        f"class, but fine class {c} has only {size} ({len(small)} classes are too small); use a "
        f"smaller k_shot or n_query (the smallest class has {min(sizes.values())} examples).")


def sample_episodes(fine_labels, fine_to_coarse, setting: str, n_way: int | None = None, k_shot: int = 1,
                    n_query: int = 15, num_episodes: int = 1000, seed: int = 0) -> Episodes:
  """Draws `num_episodes` episodes of `setting` ("nway", "allway" or "intra") from a pool.

  fine_labels: [N] int fine label of each pool example; fine_to_coarse: [K] int coarse id
  of each fine class (indexed by fine label). Pool indices refer to positions in fine_labels.
  """
  if setting not in SETTINGS:
    raise ValueError(f"Unknown few-shot setting {setting!r}; expected one of {SETTINGS}.")
  if setting == "nway" and (n_way is None or n_way < 1):
    raise ValueError(f"The 'nway' setting needs a positive n_way, got {n_way!r}.")
  fine = np.asarray(fine_labels)
  fine_to_coarse = np.asarray(fine_to_coarse)
  classes = np.unique(fine)
  members = {int(c): np.flatnonzero(fine == c) for c in classes}
  _check_class_sizes(members, k_shot + n_query, k_shot, n_query)
  coarse_of = fine_to_coarse[classes]
  coarse_ids = np.unique(coarse_of)
  if setting == "nway":
    max_way = min(n_way, len(classes))
  elif setting == "allway":
    max_way = len(classes)
  else:
    max_way = int(np.max(np.bincount(np.searchsorted(coarse_ids, coarse_of))))

  shape = (num_episodes, max_way)
  support_idx = np.zeros(shape + (k_shot,), np.int64)
  query_idx = np.zeros(shape + (n_query,), np.int64)
  chosen_classes = np.full(shape, -1, np.int64)
  for e in range(num_episodes):
    rng = np.random.RandomState(seed + e)
    if setting == "nway":
      chosen = rng.choice(classes, n_way, replace=False) if len(classes) > n_way else classes
    elif setting == "allway":
      chosen = classes
    else:
      chosen = classes[coarse_of == rng.choice(coarse_ids)]
    chosen_classes[e, :len(chosen)] = chosen
    for i, c in enumerate(chosen):
      idx = members[int(c)]
      # rng.choice(a, k, replace=False) is a[rng.permutation(len(a))[:k]] (the same draws)
      # at a third of the cost; drawing positions makes "the rest" (in pool order, as
      # np.setdiff1d gives it) a cheap mask.
      pos = rng.permutation(len(idx))[:k_shot]
      support_idx[e, i] = idx[pos]
      keep = np.ones(len(idx), bool)
      keep[pos] = False
      rest = idx[keep]
      query_idx[e, i] = rest[rng.permutation(len(rest))[:n_query]]

  class_mask = chosen_classes >= 0
  labels = np.broadcast_to(np.arange(max_way, dtype=np.int32), shape)
  labels = np.where(class_mask, labels, 0)

  def flat(a):
    return a.reshape(num_episodes, -1)

  return Episodes(
      support_idx=flat(np.where(class_mask[..., None], support_idx, 0)),
      support_y=flat(np.repeat(labels[..., None], k_shot, axis=2)),
      support_mask=flat(np.repeat(class_mask[..., None], k_shot, axis=2)),
      query_idx=flat(np.where(class_mask[..., None], query_idx, 0)),
      query_y=flat(np.repeat(labels[..., None], n_query, axis=2)),
      query_mask=flat(np.repeat(class_mask[..., None], n_query, axis=2)),
      n_way_per_episode=class_mask.sum(axis=1).astype(np.int32),
      classes=chosen_classes)


def tile_support(episodes: Episodes, copies: int) -> tuple[np.ndarray, np.ndarray]:
  """(support_y, support_mask), each [E, copies * W*k]: copy-major, as the support rows."""
  return np.tile(episodes.support_y, (1, copies)), np.tile(episodes.support_mask, (1, copies))


def mean_confidence_interval(accuracies, confidence: float = 0.95) -> tuple[float, float]:
  """(mean, t-interval half-width), in percent, of per-episode accuracies in [0, 1]."""
  acc = np.asarray(accuracies, np.float64)
  n = len(acc)
  h = scipy.stats.sem(acc, ddof=1) * scipy.stats.t.ppf((1 + confidence) / 2, n - 1) if n > 1 else np.nan
  return 100.0 * float(acc.mean()), 100.0 * float(h)


def episode_accuracy(predictions, query_y, query_mask) -> np.ndarray:
  """[E] float64 fraction of an episode's valid queries predicted right."""
  correct = (np.asarray(predictions) == query_y) & query_mask
  return correct.sum(axis=1) / np.maximum(query_mask.sum(axis=1), 1)


def aligned_empty(shape, dtype=np.float32, alignment: int = 64) -> np.ndarray:
  """An empty host array whose data starts on an `alignment`-byte boundary.

  jax.device_put on CPU aliases such an array instead of copying it; the copy runs at
  about 0.5 GB/s here, ~3 ms per all-way episode (500 x 640 floats of support).
  """
  size = int(np.prod(shape)) * np.dtype(dtype).itemsize
  buffer = np.empty(size + alignment, np.uint8)
  offset = -buffer.ctypes.data % alignment
  return buffer[offset:offset + size].view(dtype).reshape(shape)


def _to_device(x: np.ndarray) -> jax.Array:
  """device_put of a float32 array, zero-copy when it is contiguous and aligned."""
  if not (x.dtype == np.float32 and x.flags.c_contiguous and x.ctypes.data % 64 == 0):
    aligned = aligned_empty(x.shape)
    np.copyto(aligned, x)
    x = aligned
  return jax.device_put(x)


@functools.partial(jax.jit, static_argnames=("num_classes", "step"))
def _solve(support_x, support_y, support_mask, class_mask, query_emb, query_idx, num_classes: int, step: int,
           C, tol):
  def fit_predict(x, y, m, cm, qi):
    # Queries are gathered per step, so only a step's [step, Q, d] copy exists at a time.
    return logistic.fit_predict_batch(x, y, m, query_emb[qi], cm, num_classes, C=C, tol=tol)

  return logistic.map_episodes(fit_predict, (support_x, support_y, support_mask, class_mask, query_idx), step)


def solve_episodes(support_x, support_y, support_mask, class_mask, query_emb, query_idx, C: float = 1.0,
                   tol: float = 1e-4, episodes_per_step: int | None = None) -> np.ndarray:
  """Query predictions [E, Q] int32 of the batched solver, in one jitted call.

  support_x: [E, S, d] float32 normalised support embeddings (host; best 64-byte aligned,
  see `aligned_empty`, so it reaches the device without a copy); support_y, support_mask:
  [E, S]; class_mask: [E, W]; query_emb: [N, d] normalised pool embeddings; query_idx:
  [E, Q]. Steps of `episodes_per_step` episodes run in an XLA loop, each gathering its
  support rows and queries, so device memory beyond the inputs is a step's worth.
  """
  num_e, num_s, dim = np.shape(support_x)
  num_classes = class_mask.shape[1]
  step = min(episodes_per_step or logistic.default_episodes_per_step(num_s, dim, num_classes), num_e)
  preds = _solve(_to_device(np.asarray(support_x)), support_y, support_mask, class_mask,
                 _to_device(np.asarray(query_emb, np.float32)), query_idx, num_classes=num_classes, step=step,
                 C=C, tol=tol)
  return np.asarray(preds)


def _embed(embed_fn, inputs, batch: int) -> np.ndarray:
  return np.concatenate([np.asarray(embed_fn(inputs[i:i + batch]), np.float32)
                         for i in range(0, len(inputs), batch)])


def support_embeddings(episodes: Episodes, pool_emb, copies: int, embed_fn=None, pool_inputs=None,
                       augment_fn=None, seed: int | Sequence[int] = 0, embed_batch: int = 8192,
                       episode_ids=None) -> np.ndarray:
  """[E, copies * W*k, d] normalised support embeddings, copy-major, zero where padded.

  Without augment_fn the copies are the pool's (normalised) embeddings pool_emb [N, d].
  With it, the copies of episode e's support inputs are augmented together by
  augment_fn(pool_inputs[...], np.random.default_rng([*seed, episode_ids[e]])) (ids
  default to 0 .. E-1) and embedded, many episodes per embed_fn call. The result is
  64-byte aligned (see `aligned_empty`).
  """
  idx = np.tile(episodes.support_idx, (1, copies))
  mask = np.tile(episodes.support_mask, (1, copies))
  out = aligned_empty(idx.shape + (np.shape(pool_emb)[1],))
  if augment_fn is None:
    np.multiply(np.asarray(pool_emb, np.float32)[idx], mask[..., None], out=out)
    return out
  out[...] = 0.0
  ids = np.arange(len(idx)) if episode_ids is None else np.asarray(episode_ids)
  entropy = [int(v) for v in np.atleast_1d(seed)]
  chunk = max(1, embed_batch // max(int(mask.sum(axis=1).max()), 1))
  for start in range(0, len(idx), chunk):
    rows = range(start, min(start + chunk, len(idx)))
    images = [augment_fn(pool_inputs[idx[e][mask[e]]], np.random.default_rng([*entropy, int(ids[e])]))
              for e in rows]
    emb = l2_normalize_host(_embed(embed_fn, np.concatenate(images), embed_batch))
    out[start:start + len(rows)][mask[start:start + len(rows)]] = emb
  return out


def parse_setting(name: str, n_way: int | None = None) -> tuple[str, int | None]:
  """(sample_episodes setting, n_way) of a setting name: "5way" (or any name with n_way
  given) is n-way, "allway..." all-way, "intra..." intra-class."""
  match = re.fullmatch(r"(\d+)way", name)
  if n_way is None and match:
    n_way = int(match.group(1))
  if n_way is not None:
    return "nway", n_way
  for kind in ("allway", "intra"):
    if name.startswith(kind):
      return kind, None
  raise ValueError(f"Few-shot setting {name!r}: expected 'Nway' (e.g. '5way'), 'allway' or 'intra', "
                   "or pass n_way.")


def evaluate_fewshot(embed_fn: Callable, pool_inputs, fine_labels, fine_to_coarse,
                     settings: Sequence[tuple[str, int | None, int]], num_augmented: int = 5,
                     augment_fn: Callable | None = None, num_episodes: int = 1000, seed: int = 0,
                     n_query: int = 15, C: float = 1.0, embed_batch: int = 8192,
                     max_support_floats: int = 1 << 27, pool_embeddings=None,
                     on_episodes: Callable[[int], object] | None = None) -> dict[str, float]:
  """Few-shot accuracy (percent) and 95% CI half-width of each setting.

  Args:
    embed_fn: np.ndarray [n, ...] -> [n, e] embeddings; called on pool_inputs slices and
      on augment_fn outputs, at most embed_batch rows at a time.
    pool_inputs: [N, ...] the labelled pool (e.g. uint8 test images).
    fine_labels: [N] int; fine_to_coarse: [K] int, the taxonomy.
    settings: (name, n_way or None, k_shot) triples, e.g. ("5way", 5, 1),
      ("allway", None, 1), ("intra", None, 5); see `parse_setting`.
    num_augmented: support copies (0: the un-augmented support once).
    augment_fn: (inputs [n, ...], np.random.Generator) -> augmented inputs, or None for
      identical copies of the un-augmented embeddings.
    num_episodes, seed: episodes e use np.random.RandomState(seed + e).
    n_query: queries per class; C: the logistic regression's inverse penalty.
    embed_batch: most rows per embed_fn call.
    max_support_floats: most support-embedding floats held at once (episodes are solved
      in chunks of that size).
    pool_embeddings: [N, e] embeddings of pool_inputs when the caller already has them
      (embed_fn is then only called on augmented supports).
    on_episodes: called with the number of episodes just solved (a progress bar's `update`).
  Returns:
    {"fewshot/{name}_{k}shot": mean, "fewshot/{name}_{k}shot_ci95": half-width}.
  """
  pool_emb = l2_normalize_host(_embed(embed_fn, pool_inputs, embed_batch) if pool_embeddings is None
                               else pool_embeddings)
  copies = max(num_augmented, 1)
  augment = augment_fn if num_augmented > 0 else None
  metrics = {}
  for name, n_way, k_shot in settings:
    key = f"fewshot/{name}_{k_shot}shot"
    setting, n_way = parse_setting(name, n_way)
    episodes = sample_episodes(fine_labels, fine_to_coarse, setting, n_way, k_shot, n_query, num_episodes,
                               seed)
    # A per-setting stream, so settings sharing episode indices augment independently.
    aug_seed = [seed, zlib.crc32(key.encode())]
    support_y, support_mask = tile_support(episodes, copies)
    # Episodes go to the solver in equal chunks (the last padded with repeats of the final
    # episode: one compile) bounding the support features held at once.
    rows = support_y.shape[1] * pool_emb.shape[1]
    calls = -(-num_episodes // max(1, max_support_floats // rows))
    chunk = -(-num_episodes // calls)
    preds = []
    for start in range(0, num_episodes, chunk):
      ids = np.minimum(np.arange(start, start + chunk), num_episodes - 1)
      part = Episodes(*(a[ids] for a in episodes))
      support_x = support_embeddings(part, pool_emb, copies, embed_fn, pool_inputs, augment, aug_seed,
                                     embed_batch, episode_ids=ids)
      preds.append(solve_episodes(support_x, support_y[ids], support_mask[ids], part.class_mask, pool_emb,
                                  part.query_idx, C=C)[: num_episodes - start])
      if on_episodes is not None:
        on_episodes(len(preds[-1]))
    preds = np.concatenate(preds)
    mean, h = mean_confidence_interval(episode_accuracy(preds, episodes.query_y, episodes.query_mask))
    metrics[key], metrics[key + "_ci95"] = mean, h
  return metrics
