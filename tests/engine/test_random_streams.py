"""Named random streams: distinct per purpose, and keyed as documented (against jax.random and numpy directly)."""

import jax
import numpy as np

from coarse2fine.engine import random_streams


def _streams():
  return {name: value for name, value in vars(random_streams).items() if name.isupper() and isinstance(value, int)}


def test_every_purpose_has_its_own_stream():
  streams = _streams()
  assert len(streams) >= 9
  assert len(set(streams.values())) == len(streams), streams


def test_keys_and_generators_follow_their_definitions():
  seed, stream = 7, random_streams.QUEUE_INIT
  expected = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  np.testing.assert_array_equal(random_streams.stream_key(seed, stream), expected)
  step_key = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(random_streams.stream_key(step_key, stream), jax.random.fold_in(step_key, stream))
  drawn = random_streams.stream_generator(seed, stream, 12).integers(1 << 30, size=4)
  np.testing.assert_array_equal(drawn, np.random.default_rng([seed, stream, 12]).integers(1 << 30, size=4))


def test_a_stream_is_not_the_next_seeds_key():
  # The queues once started from PRNGKey(seed + 1): the initialisation key of the run with the next seed.
  for seed in range(3):
    queue_key = random_streams.stream_key(seed, random_streams.QUEUE_INIT)
    assert not np.array_equal(queue_key, jax.random.PRNGKey(seed + 1))


def test_stream_ids_from_names_are_stable_31_bit_integers():
  first = random_streams.stream_id("my_method/prototypes")
  assert first == random_streams.stream_id("my_method/prototypes")
  assert 0 <= first < 2 ** 31 and first != random_streams.stream_id("my_method/queue")
