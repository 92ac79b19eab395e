"""Named random streams: distinct per purpose, and keyed as documented (against jax.random and numpy directly)."""

import ast
import pathlib

import jax
import numpy as np

import coarse2fine
from coarse2fine.engine import random_streams
from coarse2fine.methods.common.momentum import QUEUE_INIT_STREAM


def _defined_streams():
  """[(file:NAME, value)] of every `*_STREAM` constant the package defines (the data's and each method's)."""
  root = pathlib.Path(coarse2fine.__file__).parent
  found = []
  for path in sorted(root.rglob("*.py")):
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
      if not isinstance(node, ast.Assign):
        continue
      for target in node.targets:
        names = target.elts if isinstance(target, ast.Tuple) else [target]
        values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        for name, value in zip(names, values):
          if isinstance(name, ast.Name) and name.id.endswith("_STREAM"):
            found.append((f"{path.relative_to(root)}:{name.id}", ast.literal_eval(value)))
  return found


def test_every_purpose_has_its_own_stream():
  streams = _defined_streams()
  assert len(streams) >= 10, streams
  by_value = {}
  for name, value in streams:
    by_value.setdefault(value, []).append(name)
  shared = {hex(v): names for v, names in by_value.items() if len(names) > 1}
  assert not shared, f"streams used for two purposes: {shared}"


def test_keys_and_generators_follow_their_definitions():
  seed, stream = 7, QUEUE_INIT_STREAM
  expected = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  np.testing.assert_array_equal(random_streams.stream_key(seed, stream), expected)
  step_key = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(random_streams.stream_key(step_key, stream), jax.random.fold_in(step_key, stream))
  drawn = random_streams.stream_generator(seed, stream, 12).integers(1 << 30, size=4)
  np.testing.assert_array_equal(drawn, np.random.default_rng([seed, stream, 12]).integers(1 << 30, size=4))


def test_a_stream_is_not_the_next_seeds_key():
  # The queues once started from PRNGKey(seed + 1): the initialisation key of the run with the next seed.
  for seed in range(3):
    queue_key = random_streams.stream_key(seed, QUEUE_INIT_STREAM)
    assert not np.array_equal(queue_key, jax.random.PRNGKey(seed + 1))


def test_stream_ids_from_names_are_stable_31_bit_integers():
  first = random_streams.stream_id("my_method/prototypes")
  assert first == random_streams.stream_id("my_method/prototypes")
  assert 0 <= first < 2 ** 31 and first != random_streams.stream_id("my_method/queue")
