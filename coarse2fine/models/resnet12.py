"""ResNet-12, the standard few-shot-learning backbone (RFS / MetaOptNet style), with DropBlock."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from coarse2fine.models.convnet import batch_norm, max_pool_2x2


def _conv3x3(features: int, dtype: Any) -> nn.Conv:
  return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, dtype=dtype)


def effective_block_size(block_size: int, height: int, width: int) -> int:
  """``block_size`` clipped to the feature map, as the DropBlock reference TF code does.

  RFS would fail on a map smaller than the block (e.g. block 2 on the 1x1
  map that 28 px inputs reach in block 4); clipping makes it plain
  (unit-wise) dropout with rate ``drop_rate`` when the map is 1x1.
  """
  if block_size < 1:
    raise ValueError(f"block_size must be >= 1, got {block_size}")
  return min(block_size, height, width)


def dropblock_gamma(drop_rate: float, block_size: int, height: int, width: int) -> float:
  """Seed probability, DropBlock [Ghiasi et al. 2018, Eq. 1], generalised to H != W.

  gamma = drop_rate / bs^2 * (H W) / ((H - bs + 1)(W - bs + 1)), so that the
  expected number of dropped units (ignoring overlaps of blocks) is
  ``drop_rate * H * W``. ``block_size`` must already be clipped; gamma <= drop_rate.
  """
  return drop_rate / block_size**2 * (height * width) / ((height - block_size + 1) * (width - block_size + 1))


def dropblock_seeds(rng: jax.Array, shape: Sequence[int], drop_rate: float, block_size: int) -> jax.Array:
  """Bernoulli(gamma) block seeds on the valid region, one per position, channel and example.

  shape: the feature map's [B, H, W, C]. Returns bool [B, H - bs + 1, W - bs + 1, C]
  (bs the clipped block size): seed (i, j) drops rows i..i+bs-1 and columns
  j..j+bs-1 of its channel, so every block lies inside the map.
  """
  b, h, w, c = shape
  bs = effective_block_size(block_size, h, w)
  gamma = dropblock_gamma(drop_rate, bs, h, w)
  return jax.random.bernoulli(rng, gamma, (b, h - bs + 1, w - bs + 1, c))


def dropblock_keep_mask(seeds: jax.Array, block_size: int) -> jax.Array:
  """Expand seeds [B, H-bs+1, W-bs+1, C] to a keep mask bool [B, H, W, C] (False = dropped).

  A bs x bs max-filter of the zero-padded seeds: output (p, q) is dropped iff
  some seed (i, j) has i <= p < i + bs and j <= q < j + bs. ``block_size`` is
  the clipped one used to draw the seeds.
  """
  k = block_size - 1
  padded = jnp.pad(seeds.astype(jnp.float32), ((0, 0), (k, k), (k, k), (0, 0)))
  dropped = jax.lax.reduce_window(padded, 0.0, jax.lax.max, (1, block_size, block_size, 1), (1, 1, 1, 1), "VALID")
  return dropped == 0.0


def drop_block(x: jax.Array, rng: jax.Array, drop_rate: float, block_size: int) -> jax.Array:
  """DropBlock [Ghiasi et al. 2018, Alg. 1] with a constant rate, as in the RFS ResNet-12.

  x: [B, H, W, C] (any float dtype) -> same shape and dtype. Seeds are drawn
  with ``dropblock_seeds``, expanded to bs x bs zero blocks, and the output is
  rescaled by count / count_ones, both over the whole array (the RFS
  normalisation: one scalar for the batch, not one per example or channel).
  If every unit is dropped the output is zero rather than NaN.
  """
  if not 0.0 <= drop_rate < 1.0:
    raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
  if drop_rate == 0.0:
    return x
  _, h, w, _ = x.shape
  bs = effective_block_size(block_size, h, w)
  keep = dropblock_keep_mask(dropblock_seeds(rng, x.shape, drop_rate, block_size), bs)
  # Integer count: a float32 sum of ones is inexact past 2^24 units.
  count_ones = jnp.sum(keep, dtype=jnp.int32)
  scale = jnp.float32(keep.size) / jnp.maximum(count_ones, 1).astype(jnp.float32)
  return jnp.where(keep, x * scale.astype(x.dtype), jnp.zeros((), x.dtype))


class DropBlock(nn.Module):
  """``drop_block`` as a module: randomness from the ``dropout`` rng collection.

  Identity (and no rng needed) when ``train`` is False or ``drop_rate`` is 0.
  No variables, so adding it leaves the parameter tree unchanged.
  """

  drop_rate: float
  block_size: int
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if not train or self.drop_rate == 0.0:
      return x
    return drop_block(x, self.make_rng(self.rng_collection), self.drop_rate, self.block_size)


class ResNet12Block(nn.Module):
  """Three conv3x3-BN(-LeakyReLU) layers + 1x1 conv-BN shortcut, 2x2 max-pool, optional DropBlock.

  As in the reference implementations, the third conv's LeakyReLU is applied
  after the residual sum, and DropBlock (``drop_rate`` > 0) comes last, after
  the pool. x: [B, H, W, Cin] -> [B, H//2, W//2, features].
  """

  features: int
  negative_slope: float = 0.1
  dtype: Any = jnp.float32
  drop_rate: float = 0.0  # DropBlock rate; 0 disables it
  dropblock_size: int = 5

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    act = lambda v: nn.leaky_relu(v, self.negative_slope)  # noqa: E731
    y = act(batch_norm(train, self.dtype)(_conv3x3(self.features, self.dtype)(x)))
    y = act(batch_norm(train, self.dtype)(_conv3x3(self.features, self.dtype)(y)))
    y = batch_norm(train, self.dtype)(_conv3x3(self.features, self.dtype)(y))
    # Always a projection shortcut, as in the few-shot reference code (its blocks all change width).
    s = nn.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype, name="proj_conv")(x)
    s = batch_norm(train, self.dtype, name="proj_bn")(s)
    y = act(y + s)
    # Floors odd sizes (e.g. 7 -> 3), like PyTorch's MaxPool2d(2).
    y = max_pool_2x2(y)
    if self.drop_rate > 0.0:
      y = DropBlock(self.drop_rate, self.dropblock_size, name="dropblock")(y, train)
    return y


class ResNet12(nn.Module):
  """ResNet-12 (RFS variant): four ResNet12Blocks then a global average pool.

  DropBlock [Ghiasi et al. 2018] with a constant rate ``drop_rate`` follows
  blocks 3 and 4 (after their residual add, activation and pool), as in
  RFS / MetaOptNet; the RFS configs use 0.1 with ``dropblock_size`` 5 at 84 px
  and 2 at 32 px. In training it needs ``rngs={"dropout": key}``; in eval it
  is the identity. Differences from RFS: RFS ramps the rate linearly from 0 to
  ``drop_rate`` over its first 40,000 forward calls, and also applies plain
  dropout(``drop_rate``) after blocks 1 and 2; neither is done here.
  Spatial sizes: 84 -> 42 -> 21 -> 10 -> 5; 32 -> 16 -> 8 -> 4 -> 2;
  28 -> 14 -> 7 -> 3 -> 1.

  x: [B, H, W, C] float -> [B, widths[-1]] float32 (640 by default).
  """

  widths: Sequence[int] = (64, 160, 320, 640)
  negative_slope: float = 0.1
  dtype: Any = jnp.float32
  drop_rate: float = 0.0  # DropBlock rate in blocks 3-4; 0 (default) disables it
  dropblock_size: int = 5  # DropBlock block side, clipped to the feature map

  @property
  def features_dim(self) -> int:
    return int(self.widths[-1])

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = jnp.asarray(x, self.dtype)
    for i, width in enumerate(self.widths):
      rate = self.drop_rate if i >= 2 else 0.0  # blocks 3 and 4 only
      x = ResNet12Block(width, self.negative_slope, self.dtype, rate, self.dropblock_size,
                        name=f"block{i + 1}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return x.astype(jnp.float32)
