"""The supervised baselines of the SCGM paper: Coarse, Coarse+, Fine and Fine+.

* `coarse`: encoder -> Linear(D, C), cross-entropy on coarse labels.
* `coarse_plus`: encoder -> embedder (MLP D-D-e) -> Linear(e, C).
* `fine`, `fine_plus`: the same on fine labels (upper bounds that see fine labels).
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from coarse2fine import models
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.methods.base import LossAux, Method, coarse_logits_from_fine
from coarse2fine.train_state import TrainState


class ClassifierNet(nn.Module):
  """encoder -> optional embedder -> linear classifier.

  Returns {"features": [b, D], "embedding": [b, e] (= features without embedder),
  "logits": [b, num_classes]}.
  """

  encoder: nn.Module
  embedder: Optional[nn.Module]
  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train)
    embedding = self.embedder(features, train=train) if self.embedder is not None else features
    logits = models.Classifier(self.num_classes, name="classifier")(embedding, train=train)
    return {"features": features, "embedding": embedding, "logits": logits}


def train_mode_logits(model: nn.Module, params, batch_stats, inputs: jax.Array, rng: jax.Array):
  """(logits [b, classes], updated batch_stats) of a `ClassifierNet` forward in train mode."""
  outputs, updated = model.apply({"params": params, "batch_stats": batch_stats}, inputs, train=True,
                                 mutable=["batch_stats"], rngs={"dropout": rng})
  return outputs["logits"], updated.get("batch_stats", batch_stats)


def build_encoder(model_config: ml_collections.ConfigDict) -> nn.Module:
  return models.build_encoder(
      model_config.encoder, dtype=jnp.dtype(model_config.dtype), **model_config.encoder_args.to_dict())


def build_embedder(model_config: ml_collections.ConfigDict) -> Optional[nn.Module]:
  if model_config.embedder == "none":
    return None
  return models.Embedder(kind=model_config.embedder, dim=model_config.embedding_dim, dtype=jnp.dtype(model_config.dtype))


class Supervised(Method):
  """Cross-entropy on one label level (`label`: "coarse" or "fine")."""

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData, label: str, with_embedder: bool):
    super().__init__(config, data)
    self.label = label
    if label == "fine" and (data.train.fine < 0).any():
      raise ValueError(
          f"Method {config.method!r} trains on fine labels, but {int((data.train.fine < 0).sum())} "
          f"training examples of {data.name!r} have no fine label.")
    if with_embedder and config.model.embedder == "none":
      raise ValueError(f"Method {config.method!r} needs model.embedder 'fc' or 'mlp', not 'none'.")
    self.num_classes = data.num_fine if label == "fine" else data.num_coarse
    self._model = ClassifierNet(
        encoder=build_encoder(config.model),
        embedder=build_embedder(config.model) if with_embedder else None,
        num_classes=self.num_classes)

  def model(self) -> nn.Module:
    return self._model

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    outputs, updated = self._model.apply(
        {"params": params, "batch_stats": state.batch_stats}, batch.views[:, 0], train=True,
        mutable=["batch_stats"], rngs={"dropout": rng})
    labels = getattr(batch, self.label)
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], labels).mean()
    accuracy = jnp.mean(jnp.argmax(outputs["logits"], -1) == labels)
    metrics = {"train/ce": ce, f"train/{self.label}_accuracy": accuracy}
    return ce, LossAux(metrics, updated.get("batch_stats", {}), state.extra)

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False)
    result = {"features": outputs["features"], "embedding": outputs["embedding"]}
    if self.label == "fine":
      result["fine_logits"] = outputs["logits"]
      result["coarse_logits"] = coarse_logits_from_fine(
          outputs["logits"], self.data.taxonomy.fine_to_coarse, self.data.num_coarse)
    else:
      result["coarse_logits"] = outputs["logits"]
    return result


def coarse(config, data):
  return Supervised(config, data, label="coarse", with_embedder=False)


def coarse_plus(config, data):
  return Supervised(config, data, label="coarse", with_embedder=True)


def fine(config, data):
  return Supervised(config, data, label="fine", with_embedder=False)


def fine_plus(config, data):
  return Supervised(config, data, label="fine", with_embedder=True)
