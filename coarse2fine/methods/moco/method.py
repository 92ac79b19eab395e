"""MoCo v3: self-supervised pretraining of the encoder (Chen, Xie & He, ICCV 2021).

docs/methods/moco.md#algorithm. Each example gives two augmented views x1, x2. Per step t:

1. the momentum encoder (encoder and projector, parameters only) moves towards the online
   one with m(t) = 1 - (1 - m0) (1 + cos(pi t / T)) / 2, before any forward, as the official
   code does at the start of its step;
2. the online net gives q_v = predictor(projector(encoder(x_v))) for each view (one forward
   per view, each normalising with that view's global-batch statistics);
3. the momentum encoder, in train mode with its own BatchNorm statistics, gives
   k_v = projector_m(encoder_m(x_v)), under stop-gradient;
4. loss = ctr(q1, k2) + ctr(q2, k1), ctr(q, k) = 2 tau CE(n(q) n(k)^T / tau, diagonal), over
   the whole global batch: every other example's key is a negative, no queue.

No label is read: the coarse (and fine) labels of the batch play no part in the loss. The
backbone is the submodule `encoder` (params["encoder"], batch_stats["encoder"]), built by
`build_encoder(config.model)` as in every method, so a run's checkpoint can start any method.
Evaluation reads the backbone features (`features`) or the normalised projector output
(`embedding`); there are no logits, so the `classification` protocol is refused (`has_classifier`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from coarse2fine.data import pipeline
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import LossAux, Method
from coarse2fine.methods.common.dataset_pass import views_checked
from coarse2fine.methods.common.momentum import momentum_update
from coarse2fine.methods.common.network import build_encoder, train_forward
from coarse2fine.methods.common.normalize import l2_normalize
from coarse2fine.methods.moco import losses
from coarse2fine.methods.moco.config import MOMENTUM_SCHEDULES, moco_section
from coarse2fine.models import batch_norm

MOMENTUM_PARTS = ("encoder", "projector")  # what the momentum encoder copies (not the predictor)


class BatchNormMLP(nn.Module):
  """`layers` Linear layers without bias: BN and ReLU after each hidden one; after the last, BN without
  scale and shift if `last_bn` (MoCo v3's projector), else nothing (its predictor).

  x: [B, D] -> [B, out_dim] float32.
  """

  hidden: int
  out_dim: int
  layers: int
  last_bn: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = jnp.asarray(x, self.dtype)
    for layer in range(self.layers):
      last = layer == self.layers - 1
      x = nn.Dense(self.out_dim if last else self.hidden, use_bias=False, dtype=self.dtype, name=f"fc{layer + 1}")(x)
      if not last:
        x = nn.relu(batch_norm(train, self.dtype, name=f"bn{layer + 1}")(x))
      elif self.last_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, use_scale=False,
                         use_bias=False, dtype=self.dtype, name=f"bn{layer + 1}")(x)
    return x.astype(jnp.float32)


class MoCoNet(nn.Module):
  """encoder -> features [b, D]; projector -> projection [b, e]; predictor -> prediction [b, e].

  `with_predictor=False` stops after the projector: the momentum encoder's forward, whose
  parameters hold only `encoder` and `projector`.
  """

  encoder: nn.Module
  embedding_dim: int
  projector_hidden: int
  projector_layers: int
  predictor_hidden: int
  predictor_layers: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, with_predictor: bool = True) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train)
    projection = BatchNormMLP(self.projector_hidden, self.embedding_dim, self.projector_layers, last_bn=True,
                              dtype=self.dtype, name="projector")(features, train=train)
    outputs = {"features": features, "projection": projection}
    if with_predictor:
      outputs["prediction"] = BatchNormMLP(self.predictor_hidden, self.embedding_dim, self.predictor_layers,
                                           last_bn=False, dtype=self.dtype, name="predictor")(projection, train=train)
    return outputs


class MomentumEncoder(flax.struct.PyTreeNode):
  """The momentum encoder: {"encoder", "projector"} parameters and its own BN statistics."""

  params: Any
  batch_stats: Any


def _parts(tree) -> dict:
  return {name: tree[name] for name in MOMENTUM_PARTS if name in tree}


class MoCoV3(Method):
  """MoCo v3 pretraining; see the module docstring."""

  two_views = True
  headline_metrics = ("fewshot/*", "retrieval/recall@*", "discovery/acc", "discovery/nmi")  # no classifier

  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"moco": moco_section()}

  @classmethod
  def has_classifier(cls, config: ml_collections.ConfigDict) -> bool:
    return False  # no logits: the "classification" protocol is refused before training (evaluation.feasibility)

  @classmethod
  def api_views(cls, is_image: bool) -> tuple[str, ...]:
    return ("strong", "strong") if is_image else ("mask_noise", "mask_noise")

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    config.moco.temperature = 0.2
    config.moco.embedding_dim = 64
    config.moco.projector_hidden = config.moco.predictor_hidden = 256

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    hp = self.hp = config.moco
    if not hp.temperature > 0:
      raise ValueError(f"moco.temperature={hp.temperature} must be positive.")
    for field in ("embedding_dim", "projector_hidden", "projector_layers", "predictor_hidden", "predictor_layers"):
      if int(hp[field]) < 1:
        raise ValueError(f"moco.{field}={hp[field]} must be at least 1.")
    if not 0.0 <= hp.momentum <= 1.0:
      raise ValueError(f"moco.momentum={hp.momentum} must lie in [0, 1].")
    if hp.momentum_schedule not in MOMENTUM_SCHEDULES:
      raise ValueError(f"Unknown moco.momentum_schedule {hp.momentum_schedule!r}; choose one of "
                       f"{MOMENTUM_SCHEDULES}.")
    self._views = views_checked(config.data.views, 2, config.method)
    self.total_steps = config.train.num_epochs * pipeline.steps_per_epoch(data, config.train.batch_size)
    self._model = MoCoNet(build_encoder(config.model), hp.embedding_dim, hp.projector_hidden, hp.projector_layers,
                          hp.predictor_hidden, hp.predictor_layers, dtype=jnp.dtype(config.model.dtype))

  def init_extra(self, variables: dict) -> dict:
    copy = lambda tree: jax.tree.map(jnp.array, tree)
    return {"momentum": MomentumEncoder(params=copy(_parts(variables["params"])),
                                        batch_stats=copy(_parts(variables["batch_stats"])))}

  def momentum(self, step: jax.Array) -> jax.Array:
    """m of the step `step` (0-based)."""
    return losses.momentum_at(step, self.total_steps, self.hp.momentum, self.hp.momentum_schedule)

  def _momentum_forward(self, params, batch_stats, inputs: jax.Array, rng: jax.Array):
    outputs, updated = self._model.apply({"params": params, "batch_stats": batch_stats}, inputs, train=True,
                                         with_predictor=False, mutable=["batch_stats"], rngs={"dropout": rng})
    return jax.lax.stop_gradient(outputs["projection"]), updated.get("batch_stats", batch_stats)

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    hp = self.hp
    previous: MomentumEncoder = state.extra["momentum"]
    m = self.momentum(state.step)
    key_params = momentum_update(previous.params, jax.lax.stop_gradient(_parts(params)), m)
    x1, x2 = batch.views[:, 0], batch.views[:, 1]
    out1, batch_stats = train_forward(self._model, params, state.batch_stats, x1, jax.random.fold_in(rng, 1))
    out2, batch_stats = train_forward(self._model, params, batch_stats, x2, jax.random.fold_in(rng, 2))
    k1, key_stats = self._momentum_forward(key_params, previous.batch_stats, x1, jax.random.fold_in(rng, 3))
    k2, key_stats = self._momentum_forward(key_params, key_stats, x2, jax.random.fold_in(rng, 4))
    q1, q2 = out1["prediction"], out2["prediction"]
    loss = losses.symmetric_loss(q1, q2, k1, k2, hp.temperature)
    logits = losses.contrastive_logits(q1, k2, hp.temperature)
    metrics = {"train/momentum": m,
               "train/positive_rank1": jnp.mean(jnp.argmax(logits, -1) == jnp.arange(logits.shape[0]))}
    return loss, LossAux(metrics, batch_stats, {"momentum": MomentumEncoder(key_params, key_stats)})

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False, with_predictor=False)
    return {"features": outputs["features"], "embedding": l2_normalize(outputs["projection"])}
