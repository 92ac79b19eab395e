"""Network assembly shared by the methods: encoder and embedder from the config, the classifier net."""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from coarse2fine import models


class ClassifierNet(nn.Module):
  """encoder -> optional embedder -> linear classifier (initialised as `linear_init`, "flax" or "torch").

  Returns {"features": [b, D], "embedding": [b, e] (= features without embedder),
  "logits": [b, num_classes]}.
  """

  encoder: nn.Module
  embedder: Optional[nn.Module]
  num_classes: int
  linear_init: str = "flax"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train)
    embedding = self.embedder(features, train=train) if self.embedder is not None else features
    classifier = models.Classifier(self.num_classes, linear_init=self.linear_init, name="classifier")
    logits = classifier(embedding, train=train)
    return {"features": features, "embedding": embedding, "logits": logits}


def train_forward(model: nn.Module, params, batch_stats, inputs: jax.Array, rng: jax.Array):
  """(outputs, updated batch_stats) of a forward in train mode: BatchNorm on batch statistics, dropout on.

  A model without BatchNorm gives back `batch_stats` as it came.
  """
  outputs, updated = model.apply({"params": params, "batch_stats": batch_stats}, inputs, train=True,
                                 mutable=["batch_stats"], rngs={"dropout": rng})
  return outputs, updated.get("batch_stats", batch_stats)


def train_mode_logits(model: nn.Module, params, batch_stats, inputs: jax.Array, rng: jax.Array):
  """(logits [b, classes], updated batch_stats) of a `ClassifierNet` forward in train mode."""
  outputs, batch_stats = train_forward(model, params, batch_stats, inputs, rng)
  return outputs["logits"], batch_stats


def build_encoder(model_config: ml_collections.ConfigDict) -> nn.Module:
  return models.build_encoder(
      model_config.encoder, dtype=jnp.dtype(model_config.dtype), **model_config.encoder_args.to_dict())


def build_embedder(model_config: ml_collections.ConfigDict) -> Optional[nn.Module]:
  if model_config.embedder == "none":
    return None
  return models.Embedder(kind=model_config.embedder, dim=model_config.embedding_dim,
                         linear_init=models.resolve_linear_init(model_config), dtype=jnp.dtype(model_config.dtype))
