"""Encoders and heads (Flax Linen).

Every module is called as ``module.apply(variables, x, train=...)``; BatchNorm
statistics live in the ``batch_stats`` collection (pass
``mutable=['batch_stats']`` when ``train=True``). Encoders return pooled
float32 features [B, D]; ``D`` is available without tracing as the
``features_dim`` property of a constructed encoder, or via
``encoder_features_dim(name, **kwargs)``.
"""

from typing import Callable

import flax.linen as nn

from coarse2fine.models.convnet import ConvNet, batch_norm, max_pool_2x2, space_to_depth
from coarse2fine.models.heads import LINEAR_INITS, Classifier, Embedder, resolve_linear_init
from coarse2fine.models.mlp import MLP
from coarse2fine.models.records import DCCN, split_records
from coarse2fine.models.resnet import BasicBlock, BottleneckBlock, ResNet, ResNet18, ResNet34, ResNet50
from coarse2fine.models.resnet12 import ResNet12, ResNet12Block
from coarse2fine.models.smallcnn import SmallCNN

# name -> constructor; kwargs of build_encoder are forwarded to it.
ENCODERS: dict[str, Callable[..., nn.Module]] = {
  "convnet": ConvNet,
  "smallcnn": SmallCNN,  # the official SCGM / MaskCon Fashion-MNIST network
  "resnet18": ResNet18,
  "resnet34": ResNet34,
  "resnet50": ResNet50,
  "resnet12": ResNet12,
  "mlp": MLP,
  "records": DCCN,  # static features + time series (the paper's dialysis case)
}


def build_encoder(name: str, **kwargs) -> nn.Module:
  """Construct the encoder registered under ``name`` with ``kwargs``."""
  if name not in ENCODERS:
    raise ValueError(f"Unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
  return ENCODERS[name](**kwargs)


def encoder_features_dim(name: str, **kwargs) -> int:
  """Output feature size D of ``build_encoder(name, **kwargs)``.

  Read from the module's ``features_dim`` property (computed from its
  configuration, no tracing); tests check it against ``jax.eval_shape``.
  """
  return build_encoder(name, **kwargs).features_dim


__all__ = [
  "ENCODERS",
  "LINEAR_INITS",
  "BasicBlock",
  "BottleneckBlock",
  "Classifier",
  "ConvNet",
  "DCCN",
  "Embedder",
  "MLP",
  "ResNet",
  "ResNet12",
  "SmallCNN",
  "ResNet12Block",
  "ResNet18",
  "ResNet34",
  "ResNet50",
  "batch_norm",
  "build_encoder",
  "max_pool_2x2",
  "space_to_depth",
  "split_records",
  "encoder_features_dim",
  "resolve_linear_init",
]
