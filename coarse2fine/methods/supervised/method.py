"""The supervised baselines of the SCGM paper: Coarse, Coarse+, Fine and Fine+.

* `coarse`: encoder -> Linear(D, C), cross-entropy on coarse labels.
* `coarse_plus`: encoder -> embedder (MLP D-D-e) -> Linear(e, C).
* `fine`, `fine_plus`: the same on fine labels (upper bounds that see fine labels).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import optax

from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import LossAux, Method, coarse_logits_from_fine
from coarse2fine.methods.common.network import (
  ClassifierNet,
  build_embedder,
  build_encoder,
  train_forward,
)
from coarse2fine.models import resolve_linear_init


class Supervised(Method):
  """Cross-entropy on one label level (`label`: "coarse" or "fine"); the four baselines below set it."""

  label: ClassVar[str] = "coarse"

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    label, with_embedder = self.label, self.has_embedder
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
        num_classes=self.num_classes, linear_init=resolve_linear_init(config.model))

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    outputs, batch_stats = train_forward(self._model, params, state.batch_stats, batch.views[:, 0], rng)
    labels = getattr(batch, self.label)
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], labels).mean()
    accuracy = jnp.mean(jnp.argmax(outputs["logits"], -1) == labels)
    metrics = {"train/ce": ce, f"train/{self.label}_accuracy": accuracy}
    return ce, LossAux(metrics, batch_stats, state.extra)

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


class Coarse(Supervised):
  """`coarse`: encoder -> Linear(D, C) on coarse labels."""


class CoarsePlus(Supervised):
  """`coarse_plus`: encoder -> embedder -> Linear(e, C) on coarse labels."""

  has_embedder = True


class Fine(Supervised):
  headline_metrics = ("*/fine_top1", "*/coarse_top1")
  """`fine`: encoder -> Linear(D, K) on fine labels (an upper reference)."""

  label = "fine"


class FinePlus(Supervised):
  headline_metrics = ("*/fine_top1", "*/coarse_top1")
  """`fine_plus`: encoder -> embedder -> Linear(e, K) on fine labels."""

  label = "fine"
  has_embedder = True
