"""Heads applied on top of encoder features: embedding projectors and classifiers.

Both take ``train`` for a uniform call signature with the encoders, and both
return float32 so that losses are computed in full precision. Their linear layers start from
Flax's default or from PyTorch's (``linear_init``; ``resolve_linear_init`` reads it from the
model config).
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from coarse2fine.models.convnet import batch_norm

EMBEDDER_KINDS = ("fc", "mlp")
LINEAR_INITS = ("auto", "flax", "torch")  # the values of model.linear_init
# Encoders whose reference implementation is PyTorch code with torch.nn.Linear heads: "auto" gives them "torch".
TORCH_LINEAR_INIT_ENCODERS = ("smallcnn",)


def resolve_linear_init(model_config) -> str:
  """The heads' init, "flax" or "torch", of a model config (``model.linear_init``, ``model.encoder``).

  "auto" is "torch" for the encoders in TORCH_LINEAR_INIT_ENCODERS and "flax" otherwise. A
  config saved before the field existed reads as "auto" (its heads' shapes do not depend on it).
  """
  value = model_config.get("linear_init", "auto")
  if value not in LINEAR_INITS:
    raise ValueError(f"Unknown model.linear_init {value!r}; choose one of {list(LINEAR_INITS)}.")
  if value == "auto":
    return "torch" if model_config.encoder in TORCH_LINEAR_INIT_ENCODERS else "flax"
  return value


def dense(features: int, fan_in: int, linear_init: str, **kwargs) -> nn.Dense:
  """nn.Dense(features) over ``fan_in`` inputs, initialised as ``linear_init`` says.

  "flax": Flax's default, lecun_normal weights (truncated normal of std 1/sqrt(fan_in)) and zero bias.
  "torch": torch.nn.Linear's default, weights and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  (kaiming_uniform_ with a = sqrt(5) for the weights: variance 1 / (3 fan_in)).
  """
  if linear_init == "flax":
    return nn.Dense(features, **kwargs)
  if linear_init != "torch":
    raise ValueError(f"Unknown linear_init {linear_init!r}; choose 'flax' or 'torch' (or resolve 'auto' with "
                     "resolve_linear_init).")
  bound = 1.0 / math.sqrt(fan_in)

  def bias_init(key, shape, dtype=jnp.float32):
    # The bias initialiser sees only [features]: the bound comes from the layer's fan_in.
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return nn.Dense(features, kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                  bias_init=bias_init, **kwargs)


class Embedder(nn.Module):
  """Projection head.

  ``kind='fc'``: Dense(dim).
  ``kind='mlp'``: Dense(hidden or D) - [BN] - ReLU - Dense(dim), i.e. the
  D-D-e projector of SCGM when ``hidden`` is None. BN is off by default.
  ``linear_init``: "flax" or "torch" (see ``dense``).

  x: [B, D] float -> [B, dim] float32.
  """

  kind: str = "fc"
  dim: int = 128
  hidden: int | None = None
  use_bn: bool = False
  linear_init: str = "flax"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = jnp.asarray(x, self.dtype)
    if self.kind == "fc":
      x = dense(self.dim, x.shape[-1], self.linear_init, dtype=self.dtype, name="fc")(x)
    elif self.kind == "mlp":
      hidden = self.hidden or x.shape[-1]
      x = dense(hidden, x.shape[-1], self.linear_init, use_bias=not self.use_bn, dtype=self.dtype, name="fc1")(x)
      if self.use_bn:
        x = batch_norm(train, self.dtype, name="bn")(x)
      x = nn.relu(x)
      x = dense(self.dim, hidden, self.linear_init, dtype=self.dtype, name="fc2")(x)
    else:
      raise ValueError(f"Unknown embedder kind {self.kind!r}; choose one of {list(EMBEDDER_KINDS)}")
    return x.astype(jnp.float32)


class Classifier(nn.Module):
  """Linear classifier, ``linear_init`` "flax" or "torch" (see ``dense``).

  x: [B, D] float -> logits [B, num_classes] float32.
  """

  num_classes: int
  use_bias: bool = True
  linear_init: str = "flax"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    del train  # no train/eval difference; kept for a uniform signature
    x = jnp.asarray(x, self.dtype)
    x = dense(self.num_classes, x.shape[-1], self.linear_init, use_bias=self.use_bias, dtype=self.dtype, name="fc")(x)
    return x.astype(jnp.float32)
