"""Named random streams: each use of randomness derives from the config's seed through its own constant.

  key = stream_key(seed, SCGM_ESTEP)              # fold_in(PRNGKey(seed), constant), for JAX
  rng = stream_generator(seed, MASKCON_QUEUE_FILL)  # numpy default_rng([seed, constant]), for the host

A purpose never shares a stream with another, and a seed never shares one with another seed
(`PRNGKey(seed + 1)`, which the queues once used, is the next seed's own key). The constants are
part of what a seed means: changing one changes every result that depends on it. Streams folded
into a step's key (`TrainState.step_rng`) rather than into the seed say so in their names.
A method defined outside the library picks constants of its own (`stream_id("name")` gives one).
"""

from __future__ import annotations

import zlib

import numpy as np

# Augmentation on the device (data.augmentation.device): training views, dataset passes, evaluation.
TRAIN_AUGMENT, PASS_AUGMENT, EVAL_AUGMENT = 0, 1, 2
TRAIN_SUBSET = 0x5B5  # data.train_examples: the fixed subset of the training split (with data.split_seed)
QUEUE_INIT = 0x9E0E  # the random keys a momentum queue starts with (SCGM-A, ANCOR, MaskCon)
SCGM_ESTEP_IN_STEP = 0x5C6E  # SCGM's E-step forward, folded into the key of the step it runs after
SCGM_ESTEP_PASS = 0x5C6F  # SCGM's E-step pass over the training split: its augmentation draws, with the step
FSC_CENTRES = 0xF5C  # F-SC's fixed sub-centres
FALCON_INITIAL_RELATION = 0xFA1C  # FALCON's random relation before the first solve
MASKCON_QUEUE_FILL = 0x3A5C  # the examples MaskCon fills its queue with before the first step


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
