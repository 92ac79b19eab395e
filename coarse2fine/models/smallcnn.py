"""A small CNN of a fixed, published layout (`model.encoder="smallcnn"`), so that results can be set
beside other implementations' on an identical network (the ConvNet, `convnet`, is this library's own):

  conv3x3(C->32) - BN - ReLU, conv3x3(32->32) - BN - ReLU, max-pool 2,
  conv3x3(32->64) - BN - ReLU, conv3x3(64->64) - BN - ReLU, max-pool 2,
  conv3x3(64->128) - BN - ReLU, global average pool -> 128

3x3 convolutions with padding 1, stride 1 and no bias (the BN shift replaces it): 139,168
parameters for one input channel. Initialised as the reference does in PyTorch: Kaiming-normal
convolutions (fan_out, ReLU gain), BatchNorm scale 1 and bias 0; the heads on it take torch.nn.Linear's
default (`model.linear_init="auto"`, models/heads.py).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from coarse2fine.models.convnet import batch_norm, max_pool_2x2

# torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (k * k * out)).
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# (output channels of each conv3x3 - BN - ReLU, whether a 2x2 max-pool follows it)
LAYERS = ((32, False), (32, True), (64, False), (64, True), (128, False))


class SmallCNN(nn.Module):
  """x: [B, H, W, C] float -> [B, 128] float32 (`pool='mean'`, the official one), or the last map
  flattened, [B, H/4 * W/4 * 128] (`pool='flatten'`, as the ConvNet takes it)."""

  pool: str = "mean"
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    if self.pool == "flatten":
      raise ValueError("A SmallCNN with pool='flatten' has h * w * 128 features: it depends on the input size.")
    return LAYERS[-1][0]

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    if self.pool not in ("mean", "flatten"):
      raise ValueError(f"Unknown SmallCNN pool {self.pool!r}; choose 'mean' or 'flatten'.")
    x = jnp.asarray(x, self.dtype)
    for width, pooled in LAYERS:
      x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=kaiming_fan_out,
                  dtype=self.dtype)(x)
      x = nn.relu(batch_norm(train, self.dtype)(x))
      if pooled:
        x = max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1) if self.pool == "flatten" else jnp.mean(x, axis=(1, 2))
    return x.astype(jnp.float32)
