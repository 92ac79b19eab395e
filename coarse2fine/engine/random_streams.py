"""Named random streams: each use of randomness derives from the config's seed through its own constant.

  key = stream_key(seed, SUB_CENTRES_STREAM)        # fold_in(PRNGKey(seed), constant), for JAX
  rng = stream_generator(seed, QUEUE_FILL_STREAM)   # numpy default_rng([seed, constant]), for the host

A purpose never shares a stream with another, and a seed never shares one with another seed
(`PRNGKey(seed + 1)`, which the queues once used, is the next seed's own key). The constants are
part of what a seed means: changing one changes every result that depends on it. The data's
streams are here; each method names its own as `*_STREAM` constants in its package (all are
checked to be distinct); a method defined outside the library can take `stream_id("name")`.
"""

from __future__ import annotations

import zlib

import numpy as np

# Augmentation on the device (data.augmentation.device): training views, dataset passes, evaluation.
TRAIN_AUGMENT_STREAM, PASS_AUGMENT_STREAM, EVAL_AUGMENT_STREAM = 0, 1, 2
TRAIN_SUBSET_STREAM = 0x5B5  # data.train_examples: the fixed subset of the training split (with data.split_seed)
# A method's own streams are constants named *_STREAM in its package (e.g. methods/scgm/method.py).


def stream_id(name: str) -> int:
  """A constant for a new stream, from its name (31 bits, so that it fits every API)."""
  return zlib.crc32(name.encode()) & 0x7FFFFFFF


def stream_key(seed_or_key, stream: int):
  """The JAX key (a jax.Array) of `stream` under an integer seed, or under a key (e.g. a step's key)."""
  import jax  # here, so that the host-side users (data splits, grain workers) do not load JAX

  key = jax.random.PRNGKey(seed_or_key) if isinstance(seed_or_key, (int, np.integer)) else seed_or_key
  return jax.random.fold_in(key, stream)


def stream_generator(seed: int, stream: int, *more: int) -> np.random.Generator:
  """A numpy generator of `stream` under `seed` (and `more` integers, e.g. a step), for host-side draws."""
  return np.random.default_rng([seed, stream, *more])
