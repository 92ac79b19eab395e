"""Neighbour mining against a float64 brute force, its layout, errors, and 8 devices against 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.methods.common import neighbours
from tests import multi_device


def _reference(x, groups, k, normalize=True):
  """[N, k] by a stable argsort of -cosine per query (float64), self dropped by index; -1 pads."""
  x = np.asarray(x, np.float64)
  if normalize:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  groups = np.zeros(len(x), int) if groups is None else np.asarray(groups)
  out = np.full((len(x), k), -1)
  for i in range(len(x)):
    members = np.flatnonzero((groups == groups[i]) & (np.arange(len(x)) != i))
    # An elementwise product and row sum: identical rows give identical similarities.
    sims = (x[members] * x[i]).sum(1)
    found = members[np.argsort(-sims, kind="stable")][:k]
    out[i, :len(found)] = found
  return out


def _data(n=1003, d=8, seed=0):
  """Random rows in 5 groups of unequal sizes with odd labels, and duplicated rows."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d)).astype(np.float32)
  groups = rng.choice(np.array([-3, 0, 7, 8, 100]), size=n, p=[0.1, 0.15, 0.2, 0.25, 0.3])
  x[n - 100:n - 70] = x[100:130]  # duplicates, in the same group or not
  groups[n - 100:n - 85] = groups[100:115]
  x[n - 50:n - 40] = 4.0 * x[n - 40:n - 30]  # the same direction at a power-of-2 scale: bitwise-equal cosine
  return x, groups


@pytest.mark.parametrize("block_size,top_k_chunk", [(16, None), (100, None), (None, None), (64, 48)])
def test_matches_float64_reference(block_size, top_k_chunk):
  # N = 1003 is not a multiple of any block; blocks of 16 are smaller than every group.
  x, groups = _data()
  got = neighbours.mine_neighbours(x, groups, 20, block_size=block_size, top_k_chunk=top_k_chunk)
  assert got.shape == (1003, 20) and got.dtype == np.int32
  np.testing.assert_array_equal(got, _reference(x, groups, 20))


def test_neighbours_are_same_group_never_self_and_keep_duplicates():
  x, groups = _data()
  got = neighbours.mine_neighbours(jnp.asarray(x), groups, 20, block_size=64)
  assert np.all(groups[got] == groups[:, None])
  assert not np.any(got == np.arange(len(x))[:, None])
  assert np.all([len(set(row)) == 20 for row in got])
  # A duplicate in the same group has cosine 1: it comes first, the example itself nowhere.
  for i in range(100, 115):
    assert got[i, 0] == 903 + i - 100 and got[903 + i - 100, 0] == i


def test_top_k_in_chunks_equals_top_k_with_ties():
  scores = jnp.asarray(np.random.default_rng(5).integers(-3, 4, (3, 7, 100)), jnp.float32)
  for chunk in (8, 30, 100):
    values, index = neighbours.top_k_in_chunks(scores, 20, chunk)
    want_values, want_index = jax.lax.top_k(scores, 20)
    np.testing.assert_array_equal(index, want_index)
    np.testing.assert_array_equal(values, want_values)


def test_exact_ties_go_to_the_lower_index():
  # Small integers without normalisation: many exactly equal inner products in float32 too.
  rng = np.random.default_rng(1)
  x = rng.integers(0, 3, (500, 4)).astype(np.float32)
  groups = rng.integers(0, 3, 500)
  want = _reference(x, groups, 20, normalize=False)
  for chunk in (None, 64):
    got = neighbours.mine_neighbours(x, groups, 20, block_size=32, normalize=False, top_k_chunk=chunk)
    np.testing.assert_array_equal(got, want)


def test_without_groups():
  x, _ = _data(n=300, d=6, seed=2)
  got = neighbours.mine_neighbours(x, None, 20, block_size=64)
  np.testing.assert_array_equal(got, _reference(x, None, 20))


def test_too_small_group_raises_or_pads():
  x, groups = _data(n=400, seed=3)
  groups[:5] = 42  # a group of 5 members: 4 neighbours at most
  with pytest.raises(ValueError, match=r"group 42 has 5 member.*Lower k \(at most 4\).*allow_fewer=True"):
    neighbours.mine_neighbours(x, groups, 20)
  with pytest.raises(ValueError, match="group 0 has 300"):
    neighbours.mine_neighbours(x[:300], None, 300)
  got = neighbours.mine_neighbours(x, groups, 20, block_size=16, allow_fewer=True)
  np.testing.assert_array_equal(got, _reference(x, groups, 20))
  assert np.all(got[:5, 4:] == -1) and np.all(got[:5, :4] >= 0) and np.all(got[5:] >= 0)


@pytest.mark.parametrize("sizes,block_size,devices", [([700, 3, 50, 1, 1, 200], 64, 1),
                                                     ([5] * 40, 16, 8), ([1000], 128, 3)])
def test_plan_windows_cover_each_block_groups(sizes, block_size, devices):
  groups = np.random.default_rng(4).permutation(np.repeat(np.arange(len(sizes)), sizes))
  plan = neighbours.make_plan(groups, len(groups), devices, block_size)
  source = plan.source
  real = source >= 0
  assert sorted(source[real]) == list(range(len(groups)))
  assert np.all(groups[source[real]] == np.unique(groups)[plan.group_ids[real]])
  for position in np.flatnonzero(real):  # within a group, layout order is index order
    same = np.flatnonzero(plan.group_ids == plan.group_ids[position])
    assert np.all(np.diff(source[same]) > 0)
    block = position // block_size
    lo = plan.key_starts.reshape(-1)[block]
    assert plan.query_starts.reshape(-1)[block] == block * block_size
    assert lo <= same[0] and same[-1] < lo + plan.window <= len(source)
  assert plan.query_starts.shape[1] == devices
  assert plan.window <= max(max(sizes), block_size) + 127 or plan.window == len(source)  # all keys
  assert len(source) <= len(groups) + block_size * (len(sizes) + devices)


SHARDED_SCRIPT = r"""
import json
import jax, numpy as np
from coarse2fine.engine import sharding
from coarse2fine.methods.common import neighbours

jax.config.update("jax_disable_most_optimizations", True)  # as in conftest: compile time dominates
rng = np.random.default_rng(0)
x = rng.standard_normal((2001, 16)).astype(np.float32)
x[1500:1600] = x[:100]
groups = rng.integers(0, 4, 2001)
mesh = sharding.make_mesh()
out = {"devices": mesh.devices.size}
for name, kw in [("one", {}), ("eight", {"mesh": mesh})]:
  out[name] = neighbours.mine_neighbours(x, groups, 20, block_size=64, **kw).tolist()
out["eight_none"] = neighbours.mine_neighbours(x[:999], None, 20, block_size=32, mesh=mesh).tolist()
out["one_none"] = neighbours.mine_neighbours(x[:999], None, 20, block_size=32).tolist()
print("RESULT" + json.dumps(out))
"""


def test_eight_devices_match_one_device_exactly():
  result = multi_device.run_script(SHARDED_SCRIPT, devices=8, timeout=120)
  assert result["devices"] == 8
  np.testing.assert_array_equal(result["eight"], result["one"])
  np.testing.assert_array_equal(result["eight_none"], result["one_none"])
  rng = np.random.default_rng(0)
  rng.standard_normal((2001, 16))
  groups, got = rng.integers(0, 4, 2001), np.array(result["eight"])
  assert np.all(groups[got] == groups[:, None]) and not np.any(got == np.arange(2001)[:, None])
