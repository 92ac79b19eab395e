"""DropBlock in the ResNet-12: the mask against a numpy brute force, its drop rate, and its placement."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.models import ResNet12
from coarse2fine.models.resnet12 import DropBlock, drop_block, dropblock_gamma, dropblock_seeds, effective_block_size

KEY = jax.random.PRNGKey(0)
# One compile per shape instead of op-by-op dispatch (rate and block size fix the shapes).
drop_block_jit = jax.jit(drop_block, static_argnums=(2, 3))


def numpy_keep_mask(seeds: np.ndarray, block_size: int, height: int, width: int) -> np.ndarray:
  """Brute force: zero a block_size x block_size square below-right of every seed."""
  b, _, _, c = seeds.shape
  keep = np.ones((b, height, width, c), bool)
  for n, i, j, ch in zip(*np.nonzero(seeds)):
    keep[n, i:i + block_size, j:j + block_size, ch] = False
  return keep


def zeros_are_whole_blocks(zero: np.ndarray, block_size: int) -> bool:
  """Every zero [H, W] lies in some all-zero block_size square that fits inside the map."""
  h, w = zero.shape
  covered = np.zeros_like(zero)
  for i in range(h - block_size + 1):
    for j in range(w - block_size + 1):
      if zero[i:i + block_size, j:j + block_size].all():
        covered[i:i + block_size, j:j + block_size] = True
  return bool((covered == zero).all())


@pytest.mark.parametrize("drop_rate,block_size,h,w", [
    (0.1, 5, 10, 10),  # tieredImageNet block 3
    (0.1, 5, 5, 5),  # tieredImageNet block 4: one seed site per channel
    (0.1, 2, 4, 4),  # CIFAR block 3
    (0.5, 3, 9, 11),  # non-square, many overlapping blocks
    (0.5, 5, 3, 3),  # block clipped to the 3x3 map
])
def test_mask_is_whole_blocks_and_rescales_by_count_over_ones(drop_rate, block_size, h, w):
  rng = jax.random.PRNGKey(7)
  x = np.asarray(jax.random.uniform(KEY, (4, h, w, 4), minval=0.5, maxval=1.5))  # no zeros of its own
  out = np.asarray(drop_block_jit(jnp.asarray(x), rng, drop_rate, block_size))
  bs = effective_block_size(block_size, h, w)
  seeds = np.asarray(dropblock_seeds(rng, x.shape, drop_rate, block_size))  # the same draw
  assert seeds.shape == (4, h - bs + 1, w - bs + 1, 4) and seeds.any()
  keep = numpy_keep_mask(seeds, bs, h, w)
  np.testing.assert_array_equal(out == 0, ~keep)
  for n in range(x.shape[0]):
    for ch in range(x.shape[-1]):
      assert zeros_are_whole_blocks(out[n, :, :, ch] == 0, bs)
  scale = np.float32(keep.size) / np.float32(keep.sum())
  np.testing.assert_allclose(out[keep], x[keep] * scale, rtol=1e-6, atol=0)


def test_gamma_matches_the_paper_formula():
  # Eq. 1 of Ghiasi et al. for square maps: rate / bs^2 * f^2 / (f - bs + 1)^2.
  for rate, bs, f in [(0.1, 5, 10), (0.1, 5, 5), (0.1, 2, 4), (0.1, 2, 2), (0.3, 3, 21)]:
    assert dropblock_gamma(rate, bs, f, f) == pytest.approx(rate / bs**2 * f**2 / (f - bs + 1)**2, rel=1e-12)
  assert dropblock_gamma(0.1, 5, 5, 5) == pytest.approx(0.1)  # one site: the map is dropped with prob 0.1
  assert effective_block_size(5, 3, 7) == 3 and effective_block_size(2, 1, 1) == 1


@pytest.mark.parametrize("drop_rate,block_size,f", [(0.1, 5, 10), (0.1, 2, 4), (0.1, 5, 5), (0.2, 3, 8)])
def test_empirical_drop_fraction_is_close_to_drop_rate(drop_rate, block_size, f):
  shape = (32, f, f, 32)
  keys = jax.random.split(jax.random.PRNGKey(1), 8)
  outs = jax.jit(jax.vmap(lambda k: drop_block(jnp.ones(shape), k, drop_rate, block_size)))(keys)
  per_map = np.asarray(outs == 0).mean(axis=(2, 3)).ravel()  # one fraction per (draw, example, channel)
  frac, stderr = per_map.mean(), per_map.std() / np.sqrt(per_map.size)
  # Exact expectation from the seed geometry (blocks overlap, so slightly below drop_rate).
  gamma = dropblock_gamma(drop_rate, block_size, f, f)
  sites = f - block_size + 1
  cover = np.array([min(p, sites - 1) - max(p - block_size + 1, 0) + 1 for p in range(f)])
  expected = np.mean(1.0 - (1.0 - gamma) ** np.outer(cover, cover))
  assert abs(frac - expected) < 5 * stderr + 1e-4
  assert abs(expected - drop_rate) < 0.15 * drop_rate


def test_eval_mode_and_zero_rate_are_the_identity():
  x = jax.random.normal(KEY, (2, 6, 6, 3))
  np.testing.assert_array_equal(DropBlock(0.3, 3).apply({}, x, train=False), x)  # no rng needed
  np.testing.assert_array_equal(DropBlock(0.0, 3).apply({}, x, train=True), x)
  np.testing.assert_array_equal(drop_block(x, KEY, 0.0, 3), x)
  with pytest.raises(ValueError, match="drop_rate"):
    drop_block(x, KEY, 1.0, 3)


WIDTHS = (4, 4, 4, 4)
X = jax.random.normal(KEY, (4, 32, 32, 3))  # CIFAR size: blocks 3-4 give 4x4 and 2x2 maps


def _small(drop_rate):
  return ResNet12(widths=WIDTHS, drop_rate=drop_rate, dropblock_size=2)


@pytest.fixture(scope="module")
def variables():
  """Variables of the ResNet-12 without DropBlock; jit, as eager init compiles op by op (slower)."""
  return jax.jit(lambda: ResNet12(widths=WIDTHS).init(KEY, X, train=False))()


def _train_apply(model, variables, rng=None, **kwargs):
  rngs = None if rng is None else {"dropout": rng}
  return model.apply(variables, X, train=True, mutable=["batch_stats", *kwargs.pop("mutable", [])], rngs=rngs,
                     **kwargs)


def test_resnet12_parameter_tree_is_unchanged_by_dropblock(variables):
  base = jax.eval_shape(lambda: ResNet12(widths=WIDTHS).init(KEY, X, train=False))
  for rate in (0.0, 0.1):
    tree = jax.eval_shape(lambda: _small(rate).init(KEY, X, train=False))
    assert jax.tree_util.tree_structure(tree) == jax.tree_util.tree_structure(base)
    assert jax.tree.leaves(tree) == jax.tree.leaves(base)  # shapes and dtypes
    init = lambda model: str(jax.make_jaxpr(lambda: model.init(KEY, X, train=False))())  # noqa: E731
    assert init(_small(rate)) == init(ResNet12(widths=WIDTHS))  # same computation, so the same values
  # drop_rate=0 in train mode, and any rate in eval mode, trace to the very computation of the model
  # without the feature (no rng needed); comparing jaxprs checks this without compiling.
  jaxpr = lambda model, train, **rngs: str(jax.make_jaxpr(  # noqa: E731
      lambda v: model.apply(v, X, train=train, mutable=["batch_stats"], **rngs))(variables))
  for train in (True, False):
    assert jaxpr(_small(0.0), train) == jaxpr(ResNet12(widths=WIDTHS), train)
  assert jaxpr(_small(0.1), False) == jaxpr(ResNet12(widths=WIDTHS), False)
  assert jaxpr(_small(0.1), True, rngs={"dropout": KEY}) != jaxpr(ResNet12(widths=WIDTHS), True)  # not vacuous


def _train_with_intermediates(variables, rng):
  """drop_rate=0.1 forward in train mode, capturing every module's output: (features, intermediates)."""
  out, state = _train_apply(_small(0.1), variables, rng, mutable=["intermediates"], capture_intermediates=True)
  return out, state["intermediates"]


@pytest.fixture(scope="module")
def train_step(variables):
  fn = jax.jit(_train_with_intermediates)
  return lambda rng: fn(variables, rng)


def test_resnet12_dropblock_needs_rng_in_train_and_is_deterministic_in_eval(variables, train_step):
  with pytest.raises(flax.errors.InvalidRngError, match="dropout"):
    jax.eval_shape(lambda v: _train_apply(_small(0.1), v), variables)
  (a, _), (a_again, _), (b, _) = (train_step(jax.random.PRNGKey(s)) for s in (1, 1, 2))
  np.testing.assert_array_equal(a, a_again)
  assert not np.allclose(a, b)
  # Eval mode draws nothing (and test_resnet12_parameter_tree_is_unchanged_by_dropblock shows it traces
  # to the computation of the model without DropBlock): deterministic, no rng needed.
  eval_jaxpr = str(jax.make_jaxpr(lambda v: _small(0.1).apply(v, X, train=False))(variables))
  train_jaxpr = str(jax.make_jaxpr(_train_with_intermediates)(variables, KEY))
  assert "random_bits" in train_jaxpr and "random_bits" not in eval_jaxpr


def test_resnet12_applies_dropblock_after_blocks_3_and_4_only(train_step):
  dropped = {"block3": 0, "block4": 0}
  for seed in range(4):  # block 4 (2x2 maps, 16 of them) drops nothing with probability 0.9^16 ~ 0.19
    _, inter = train_step(jax.random.PRNGKey(seed))
    assert "dropblock" not in inter["block1"] and "dropblock" not in inter["block2"]
    for name, size in (("block1", 16), ("block2", 8), ("block3", 4), ("block4", 2)):
      out = np.asarray(inter[name]["__call__"][0])
      assert out.shape == (4, size, size, 4)
      zero = out == 0
      if name in ("block1", "block2"):
        assert not zero.any()  # LeakyReLU outputs are never exactly zero
      else:
        # The block's output is the DropBlock output, with whole 2x2 blocks dropped.
        np.testing.assert_array_equal(out, np.asarray(inter[name]["dropblock"]["__call__"][0]))
        assert all(zeros_are_whole_blocks(zero[n, :, :, c], 2) for n in range(4) for c in range(4))
        dropped[name] += int(zero.sum())
  assert dropped["block3"] > 0 and dropped["block4"] > 0
