"""ResNet encoders (He et al., 2016) in NHWC layout, torchvision-compatible shapes.

The layer shapes, strides and padding follow torchvision's ResNet (v1.5: the
bottleneck's stride sits on the 3x3 conv), so parameter counts match
torchvision exactly; with the ``'cifar'`` stem they match the common
CIFAR ResNet-18 (3x3 stem, no max-pool).
"""

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from coarse2fine.models.convnet import batch_norm

# Kaiming-normal (fan_out, ReLU gain), as torchvision initialises its convs.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(features: int, kernel: int, stride: int, dtype: Any, name: str | None = None,
          pad: int | None = None) -> nn.Conv:
  # Explicit symmetric padding (k // 2 unless given) rather than 'SAME': for stride 2
  # on even inputs XLA's SAME pads asymmetrically, which differs from PyTorch.
  pad = kernel // 2 if pad is None else pad
  return nn.Conv(
    features,
    (kernel, kernel),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    use_bias=False,
    kernel_init=conv_init,
    dtype=dtype,
    name=name,
  )


class BasicBlock(nn.Module):
  """Two 3x3 convs with an identity (or 1x1 projection) shortcut.

  x: [B, H, W, Cin] -> [B, H/stride, W/stride, features].
  """

  features: int
  stride: int = 1
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    out_ch = self.features * self.expansion
    y = _conv(self.features, 3, self.stride, self.dtype)(x)
    y = nn.relu(batch_norm(train, self.dtype)(y))
    y = _conv(self.features, 3, 1, self.dtype)(y)
    # Zero scale on the last BN makes each block start as the identity.
    y = batch_norm(train, self.dtype, scale_init=nn.initializers.zeros if self.zero_init_residual else None)(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_ch:
      shortcut = _conv(out_ch, 1, self.stride, self.dtype, name="proj_conv")(x)
      shortcut = batch_norm(train, self.dtype, name="proj_bn")(shortcut)
    return nn.relu(y + shortcut)


class BottleneckBlock(nn.Module):
  """1x1 reduce -> 3x3 (strided) -> 1x1 expand (x4), with projection shortcut.

  x: [B, H, W, Cin] -> [B, H/stride, W/stride, 4 * features].
  """

  features: int
  stride: int = 1
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    out_ch = self.features * self.expansion
    y = _conv(self.features, 1, 1, self.dtype)(x)
    y = nn.relu(batch_norm(train, self.dtype)(y))
    y = _conv(self.features, 3, self.stride, self.dtype)(y)
    y = nn.relu(batch_norm(train, self.dtype)(y))
    y = _conv(out_ch, 1, 1, self.dtype)(y)
    y = batch_norm(train, self.dtype, scale_init=nn.initializers.zeros if self.zero_init_residual else None)(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_ch:
      shortcut = _conv(out_ch, 1, self.stride, self.dtype, name="proj_conv")(x)
      shortcut = batch_norm(train, self.dtype, name="proj_bn")(shortcut)
    return nn.relu(y + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}
STEMS = ("cifar", "imagenet")


class ResNet(nn.Module):
  """ResNet feature extractor (no classification head).

  Stage ``i`` has ``stage_sizes[i]`` blocks of width ``num_filters * 2**i``;
  every stage after the first downsamples by 2 in its first block.
  ``stem='cifar'``: 3x3 conv stride 1, no max-pool (total stride 8).
  ``stem='imagenet'``: 7x7 conv stride 2 + 3x3 max-pool stride 2 (total stride 32).
  ``stem_padding`` overrides the stem conv's padding (FALCON's CIFAR ResNet-18 pads its
  3x3 stem by 2, so 32 px inputs give 34 px maps; docs/methods/falcon.md#paper-settings).
  The final spatial map is sown to ``intermediates/feature_map`` and the stem
  output to ``intermediates/stem`` (only kept when that collection is mutable).

  x: [B, H, W, C] float -> [B, features_dim] float32, where features_dim =
  num_filters * 2**(len(stage_sizes) - 1) * expansion (1 basic, 4 bottleneck).
  """

  stage_sizes: Sequence[int]
  block: str = "basic"
  num_filters: int = 64
  stem: str = "cifar"
  stem_padding: Optional[int] = None
  zero_init_residual: bool = False
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    return int(self.num_filters * 2 ** (len(self.stage_sizes) - 1) * BLOCKS[self.block].expansion)

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    if self.block not in BLOCKS:
      raise ValueError(f"Unknown block {self.block!r}; choose one of {sorted(BLOCKS)}")
    if self.stem not in STEMS:
      raise ValueError(f"Unknown stem {self.stem!r}; choose one of {list(STEMS)}")
    block_cls = BLOCKS[self.block]
    x = jnp.asarray(x, self.dtype)
    if self.stem == "cifar":
      x = _conv(self.num_filters, 3, 1, self.dtype, name="stem_conv", pad=self.stem_padding)(x)
      x = nn.relu(batch_norm(train, self.dtype, name="stem_bn")(x))
    else:
      x = _conv(self.num_filters, 7, 2, self.dtype, name="stem_conv", pad=self.stem_padding)(x)
      x = nn.relu(batch_norm(train, self.dtype, name="stem_bn")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    self.sow("intermediates", "stem", x)
    for i, n_blocks in enumerate(self.stage_sizes):
      for j in range(n_blocks):
        stride = 2 if (i > 0 and j == 0) else 1
        x = block_cls(
          features=self.num_filters * 2**i,
          stride=stride,
          zero_init_residual=self.zero_init_residual,
          dtype=self.dtype,
          name=f"stage{i + 1}_block{j + 1}",
        )(x, train)
    self.sow("intermediates", "feature_map", x)
    x = jnp.mean(x, axis=(1, 2))
    return x.astype(jnp.float32)


# Standard depths; any ResNet kwarg (stem, num_filters, dtype, ...) can be passed.
ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
