"""ANCOR: momentum contrast within super-classes, with angular normalisation (SCGM paper's baseline).

docs/methods/scgm.md#ancor-loss: the head `fc1: D -> e` (or the MLP D-D-e embedder; "ANCOR"
uses the MLP, "ANCOR-fc" the fc) gives v, a linear `fc2: e -> C` on relu(v) gives the
coarse logits, and

  L = CE(fc2(relu(v)), y) + InfoNCE_within_superclass(v, k; w_y = sg(fc2 row y), T = 0.2)

with a momentum key encoder and one queue of keys per super-class (shared with SCGM-A in
`methods.scgm.queues`). View 0 of each example is the query, view 1 the key.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from coarse2fine import models
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine import random_streams
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import LossAux, Method
from coarse2fine.methods.common.dataset_pass import views_checked
from coarse2fine.methods.common.momentum import QUEUE_INIT_STREAM
from coarse2fine.methods.common.network import build_embedder, build_encoder, train_forward
from coarse2fine.methods.scgm import queues
from coarse2fine.methods.scgm.config import contrast_section


class AncorNet(nn.Module):
  """encoder -> embedder -> v; coarse logits = fc2(relu(v)), fc2 initialised as `linear_init` ("flax" or "torch").

  Returns {"features": [b, D], "embedding": v [b, e], "logits": [b, C]}.
  """

  encoder: nn.Module
  embedder: nn.Module
  num_coarse: int
  linear_init: str = "flax"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train)
    v = self.embedder(features, train=train)
    classifier = models.Classifier(self.num_coarse, linear_init=self.linear_init, name="classifier")
    logits = classifier(jax.nn.relu(v), train=train)
    return {"features": features, "embedding": v, "logits": logits}


class Ancor(Method):
  """`ancor`: see the module docstring."""

  two_views = True
  has_embedder = True
  headline_metrics = ("fewshot/*", "*/coarse_top1")  # as SCGM's paper reports it


  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"contrast": contrast_section()}

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    config.contrast.queue_size = 4096
    config.contrast.momentum = 0.99

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    if config.model.embedder == "none":
      raise ValueError("Method 'ancor' needs model.embedder 'fc' (ANCOR-fc) or 'mlp' (ANCOR).")
    self._views = views_checked(config.data.views, 2, config.method)
    self.contrast = config.contrast
    queues.check_queue_size(config.contrast.queue_size, config.train.batch_size)
    self._model = AncorNet(build_encoder(config.model), build_embedder(config.model), data.num_coarse,
                           models.resolve_linear_init(config.model))

  def init_extra(self, variables: dict) -> dict:
    return {"momentum": queues.init_momentum_state(
        random_streams.stream_key(self.config.seed, QUEUE_INIT_STREAM), variables, self.data.num_coarse,
        self.contrast.queue_size, self.config.model.embedding_dim)}

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    outputs, batch_stats = train_forward(self._model, params, state.batch_stats, batch.views[:, 0], rng)
    coarse = batch.coarse
    l_ce = optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], coarse).mean()
    keys, momentum = queues.momentum_keys(
        self._model, params, batch_stats, state.extra["momentum"], batch.views[:, 1], self.contrast.momentum,
        jax.random.fold_in(rng, 1))
    reference = params["classifier"]["fc"]["kernel"].T  # [C, e]: the classifier rows w_c
    l_nce = queues.within_superclass_infonce(
        outputs["embedding"], keys, coarse, reference, momentum.queues, self.contrast.temperature)
    momentum = momentum.replace(queues=queues.enqueue(momentum.queues, keys, coarse))
    metrics = {"train/ce": l_ce, "train/infonce": l_nce,
               "train/coarse_accuracy": jnp.mean(jnp.argmax(outputs["logits"], -1) == coarse)}
    return l_ce + l_nce, LossAux(metrics, batch_stats, {"momentum": momentum})

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False)
    return {"features": outputs["features"], "embedding": outputs["embedding"], "coarse_logits": outputs["logits"]}
