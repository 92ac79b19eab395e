"""MaskCon and its contrastive family on one momentum-encoder queue (Feng & Patras, CVPR 2023).

docs/methods/maskcon.md#algorithm. Each example gives a query view (view 0, strong) and a key
view (view 1, weak). Per step:

1. the key encoder moves towards the online one, parameters only (m = `maskcon.momentum`),
   before any forward, as the official code does at the start of its step;
2. the online net encodes the query, q = n(projector(encoder(x_q))), with gradient;
3. the key encoder (its own BatchNorm statistics, train mode) encodes the key,
   k = sg(n(projector(encoder_k(x_k))));
4. logits = [q.k, q.queue] / T1, and a soft cross-entropy against the mode's target
   (`maskcon.losses`), built from the queue before this batch is enqueued;
5. (k, label) of the whole global batch is enqueued FIFO.

`maskcon.mode` picks the target: `maskcon` (soft, coarse-masked key-to-queue similarities
mixed with the one-hot by w), `selfcon` (one-hot, w = 0), `grafit` (uniform over the
same-coarse queue entries mixed by w), `supcon` (grafit, w = 1), `coins` (w CE of the
coarse classifier on the backbone features + (1 - w) SelfCon), `supce` (coins, w = 1),
and `supfine` (supce on fine labels: the upper bound that sees fine labels). With w = 1
(supce, supfine) the contrastive term has no weight, so those modes skip the key encoder
and the queue altogether: their step is plain cross-entropy.

BatchNorm: the step runs on the global batch, so both encoders normalise with statistics
of the whole global batch (synchronised BN). This is what the official single-GPU run
does; there MoCo's shuffle-BN "has no effect", and with one global batch there is no
per-device sub-batch whose statistics could leak the positive pair.

The queue starts filled (docs/methods/maskcon.md#before-the-first-step): a hook before the first step runs the key
encoder in train mode over `queue_size` training examples (a seeded permutation, key
view) and writes their keys and labels, updating the key encoder's BN statistics as the
official fill does.
"""

from __future__ import annotations

import time
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from coarse2fine import models
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine import random_streams, sharding
from coarse2fine.engine.hooks import HookContext, HostHook
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import LossAux, Method
from coarse2fine.methods.common.dataset_pass import training_split_pass, views_checked
from coarse2fine.methods.common.momentum import QUEUE_INIT_STREAM, momentum_update
from coarse2fine.methods.common.network import build_encoder, train_forward
from coarse2fine.methods.common.normalize import l2_normalize
from coarse2fine.methods.maskcon import losses
from coarse2fine.methods.maskcon.config import maskcon_section

QUEUE_FILL_STREAM = 0x3A5C  # random stream: the examples and forward key of the first queue fill

MODES = ("maskcon", "selfcon", "grafit", "supcon", "coins", "supce", "supfine")


class MaskConNet(nn.Module):
  """encoder -> features [b, D]; projector D-hidden-ReLU-e -> embedding [b, e]; Linear(D, classes) -> logits.

  The classifier is used only by the CoIns family; the others leave it untrained. Both heads are
  initialised as `linear_init` ("flax" or "torch").
  """

  encoder: nn.Module
  embedding_dim: int
  hidden: int
  num_classes: int
  linear_init: str = "flax"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train)
    embedding = models.Embedder(kind="mlp", dim=self.embedding_dim, hidden=self.hidden or None,
                                linear_init=self.linear_init, name="projector")(features, train=train)
    logits = models.Classifier(self.num_classes, linear_init=self.linear_init, name="classifier")(features, train=train)
    return {"features": features, "embedding": embedding, "logits": logits}


class KeyEncoderState(flax.struct.PyTreeNode):
  """The momentum key encoder (parameters and its own BN statistics) and the labelled queue."""

  params: Any
  batch_stats: Any
  queue: losses.LabelledQueue


class MaskCon(Method):
  """MaskCon and the baselines of its paper; see the module docstring."""

  two_views = True
  headline_metrics = ("retrieval/recall@*",)  # paper Tables 1-6


  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"maskcon": maskcon_section()}

  @classmethod
  def api_views(cls, is_image: bool) -> tuple[str, ...]:
    return ("strong", "weak") if is_image else ("none", "none")  # query, key (configs/maskcon_fashion_mnist.py)

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    config.maskcon.queue_size = 4096
    config.maskcon.embedding_dim = 128
    config.maskcon.w, config.maskcon.t2 = 0.8, 0.1  # chosen on validation for configs/maskcon_fashion_mnist.py

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    hp = self.hp = config.maskcon
    if hp.mode not in MODES:
      raise ValueError(f"Unknown maskcon.mode {hp.mode!r}; choose one of {MODES}.")
    if not 0.0 <= hp.w <= 1.0:
      raise ValueError(f"maskcon.w={hp.w} must lie in [0, 1].")
    if hp.queue_size < config.train.batch_size:
      raise ValueError(f"maskcon.queue_size={hp.queue_size} is smaller than train.batch_size="
                       f"{config.train.batch_size}: a batch would overwrite its own keys.")
    self._views = views_checked(config.data.views, 2, config.method)
    self.uses_fine = hp.mode == "supfine"
    num_classes = data.num_fine if self.uses_fine else data.num_coarse
    self._model = MaskConNet(build_encoder(config.model), hp.embedding_dim, hp.projector_hidden, num_classes,
                             models.resolve_linear_init(config.model))

  def init_extra(self, variables: dict) -> dict:
    copy = lambda tree: jax.tree.map(jnp.array, tree)
    queue = losses.init_labelled_queue(random_streams.stream_key(self.config.seed, QUEUE_INIT_STREAM),
                                       self.hp.queue_size, self.hp.embedding_dim)
    return {"key": KeyEncoderState(params=copy(variables["params"]), batch_stats=copy(variables["batch_stats"]),
                                   queue=queue)}

  # ----------------------------------------------------------------------------- step

  def _encode(self, params, batch_stats, inputs: jax.Array, rng: jax.Array):
    return train_forward(self._model, params, batch_stats, inputs, rng)

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    hp = self.hp
    key_state: KeyEncoderState = state.extra["key"]
    labels = batch.fine if self.uses_fine else batch.coarse
    outputs, batch_stats = self._encode(params, state.batch_stats, batch.views[:, 0], jax.random.fold_in(rng, 1))
    if hp.mode in ("supce", "supfine"):  # w = 1: the contrastive term, key encoder and queue play no part
      loss = optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], labels).mean()
      metrics = {"train/class_accuracy": jnp.mean(jnp.argmax(outputs["logits"], -1) == labels)}
      return loss, LossAux(metrics, batch_stats, state.extra)
    key_params = momentum_update(key_state.params, jax.lax.stop_gradient(params), hp.momentum)
    key_outputs, key_batch_stats = self._encode(key_params, key_state.batch_stats, batch.views[:, 1],
                                                jax.random.fold_in(rng, 2))
    q = l2_normalize(outputs["embedding"])
    k = jax.lax.stop_gradient(l2_normalize(key_outputs["embedding"]))
    queue = key_state.queue
    logits = losses.contrastive_logits(q, k, queue.keys, hp.t1)

    metrics = {}
    if hp.mode == "coins":
      loss = losses.coins_loss(logits, outputs["logits"], labels, hp.w)
      metrics["train/class_accuracy"] = jnp.mean(jnp.argmax(outputs["logits"], -1) == labels)
    else:
      if hp.mode == "maskcon":
        targets = losses.maskcon_targets(k, queue.keys, queue.labels, labels, hp.t2, hp.w)
      elif hp.mode == "selfcon":
        targets = losses.selfcon_targets(logits.shape[0], queue.size)
      else:  # grafit, supcon
        targets = losses.grafit_targets(queue.labels, labels, 1.0 if hp.mode == "supcon" else hp.w)
      loss = losses.soft_cross_entropy(logits, targets)
      metrics["train/target_on_positive"] = jnp.mean(targets[:, 0])

    metrics["train/positive_rank1"] = jnp.mean(jnp.argmax(logits, -1) == 0)
    new_key = KeyEncoderState(params=key_params, batch_stats=key_batch_stats,
                              queue=losses.enqueue(queue, k, labels))
    return loss, LossAux(metrics, batch_stats, {"key": new_key})

  # ----------------------------------------------------------------------------- queue fill

  def host_hooks(self) -> list[HostHook]:
    needs_queue = self.hp.fill_queue and self.hp.mode not in ("supce", "supfine")
    return [HostHook("maskcon_fill_queue", self.fill_queue, at_start=True)] if needs_queue else []

  def fill_queue(self, state: TrainState, context: HookContext) -> TrainState:
    """Before the first step: keys of `queue_size` training examples (key view, train-mode BN)."""
    hp = self.hp
    start = time.perf_counter()
    n = len(self.data.train)
    order = random_streams.stream_generator(self.config.seed, QUEUE_FILL_STREAM).permutation(n)
    indices = np.resize(order, hp.queue_size)  # repeats the permutation when the split is smaller
    key_state: KeyEncoderState = state.extra["key"]
    model = self._model

    forward_key = random_streams.stream_key(self.config.seed, QUEUE_FILL_STREAM)

    @jax.jit
    def step(batch_stats, inputs, number):
      outputs, batch_stats = train_forward(model, key_state.params, batch_stats, inputs, forward_key)
      return batch_stats, l2_normalize(outputs["embedding"])

    batch_stats, keys = training_split_pass(step, key_state.batch_stats, self.data, self.config.data,
                                            self._views[1], self.config.train.batch_size, self.config.seed,
                                            context.mesh, indices=indices)
    labels_np = (self.data.train.fine if self.uses_fine else self.data.train.coarse)[indices]
    queue = losses.LabelledQueue(keys=jax.device_put(keys.astype(jnp.float32), key_state.queue.keys.sharding),
                                 labels=sharding.host_to_replicated(labels_np.astype(np.int32), context.mesh),
                                 pointer=jnp.zeros_like(key_state.queue.pointer))
    context.log(f"MaskCon queue filled: {hp.queue_size:,} keys of the training set, "
                f"{time.perf_counter() - start:.1f} s")
    return state.replace(extra={"key": key_state.replace(batch_stats=batch_stats, queue=queue)})

  # ----------------------------------------------------------------------------- evaluation

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False)
    predictions = {"features": outputs["features"], "embedding": l2_normalize(outputs["embedding"])}
    if not self.uses_fine and self.hp.mode in ("coins", "supce"):
      predictions["coarse_logits"] = outputs["logits"]
    return predictions
