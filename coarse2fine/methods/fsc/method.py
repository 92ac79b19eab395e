"""F-SC (fixed sub-centres) and the heads its paper compares with: SoftMax, centre loss, SoftTriple.

docs/methods/fsc.md#f-sc-fixed-sub-centre-classification. One method, `fsc`, whose `fsc.head` picks the head on
the backbone features x [b, d], trained on `fsc.label` ("coarse" or "fine") labels:

* `fsc`: C x s sub-centres w_{i,k} = mu_i + sigma eps, drawn once from the seed and kept in
  the method state, outside the parameters: no gradient, no weight decay, no optimizer
  state. Logits w_{i,k}.x (no bias, no normalisation); L_sub + beta L_scc (`fsc.losses`).
* `softmax`: Linear(d, C) with bias and cross-entropy.
* `centre`: softmax plus lambda_c Wen et al.'s centre loss; the centres [C, d] live in the
  method state and move by their own rule (rate alpha), not by gradient.
* `softtriple`: K trainable unit centres per class, SoftTriple's relaxed similarity, margin
  delta, scale lambda, and tau times its centre-merging regulariser.

On coarse labels the sub-centre heads (fsc, softtriple) discover fine classes: example b's
class is its highest-scoring sub-centre, `cluster_logits` [b, C*s] with `relation` its
parent (docs/methods/fsc.md#predictions-and-fine-class-discovery; the rule is point 9 of
docs/methods/fsc.md#departures-from-the-paper). The argmax runs over all sub-centres, which is the rule's
"within the known coarse class" whenever the coarse prediction is right; it needs no
coarse label at test time.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine import random_streams
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import Discovered, LossAux, Method, coarse_logits_from_fine
from coarse2fine.methods.common.network import build_encoder, train_forward
from coarse2fine.methods.fsc import losses
from coarse2fine.methods.fsc.config import fsc_section
from coarse2fine.models import Classifier, resolve_linear_init

SUB_CENTRES_STREAM = 0xF5C  # random stream: the fixed sub-centres

HEADS = ("fsc", "softmax", "centre", "softtriple")
LABELS = ("coarse", "fine")
SUB_CENTRE_HEADS = ("fsc", "softtriple")  # heads with several centres per class


class SoftTripleCentres(nn.Module):
  """K trainable centres per class, [C, K, d] (normalised inside the loss)."""

  num_classes: int
  num_centres: int

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    dim = features.shape[-1]
    return self.param("centres", nn.initializers.lecun_normal(in_axis=-1, out_axis=(0, 1)),
                      (self.num_classes, self.num_centres, dim), jnp.float32)


class HeadNet(nn.Module):
  """encoder -> features [b, d], and the trainable part of the head, if any.

  Returns {"features": [b, d]} plus "logits" [b, C] (softmax, centre) or "centres"
  [C, K, d] (softtriple). The F-SC head has nothing trainable: its sub-centres are state. The
  classifier is initialised as `linear_init` ("flax" or "torch").
  """

  encoder: nn.Module
  head: str
  num_classes: int
  num_sub: int
  linear_init: str = "flax"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train).astype(jnp.float32)
    outputs = {"features": features}
    if self.head in ("softmax", "centre"):
      classifier = Classifier(self.num_classes, linear_init=self.linear_init, name="classifier")
      outputs["logits"] = classifier(features, train=train)
    elif self.head == "softtriple":
      outputs["centres"] = SoftTripleCentres(self.num_classes, self.num_sub, name="softtriple")(features)
    return outputs


class SubCentreClassifier(Method):
  """See the module docstring."""

  headline_metrics = ("*/fine_top1", "retrieval/recall@*", "*/coarse_top1")  # paper Tables 1-3

  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"fsc": fsc_section()}

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    # sub-centres drawn with sigma^2 0.1, not the paper's 1e-3: better fine top-1 and better classes found by the
    # sub-centres on validation at 2k and 20k Fashion-MNIST images (docs/methods/fsc.md#small-data)
    config.fsc.sigma2 = 0.1

  @classmethod
  def has_clusters(cls, config: ml_collections.ConfigDict) -> bool:
    """Sub-centres found on coarse labels are its classes."""
    return config.fsc.head in SUB_CENTRE_HEADS and config.fsc.label == "coarse"

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    hp = self.hp = config.fsc
    if hp.head not in HEADS:
      raise ValueError(f"Unknown fsc.head {hp.head!r}; choose one of {HEADS}.")
    if hp.label not in LABELS:
      raise ValueError(f"Unknown fsc.label {hp.label!r}; choose one of {LABELS}.")
    if hp.assign not in losses.ASSIGNMENTS:
      raise ValueError(f"Unknown fsc.assign {hp.assign!r}; choose one of {losses.ASSIGNMENTS}.")
    losses.centre_bound(1, hp.centre_init)  # fails early on an unknown init
    if hp.num_sub < 1:
      raise ValueError(f"fsc.num_sub={hp.num_sub} must be at least 1.")
    if not hp.logit_scale > 0:
      raise ValueError(f"fsc.logit_scale={hp.logit_scale} must be positive (1 is the paper's).")
    if hp.label == "fine" and (data.train.fine < 0).any():
      raise ValueError(f"fsc.label='fine', but {int((data.train.fine < 0).sum())} training examples of "
                       f"{data.name!r} have no fine label; use fsc.label='coarse'.")
    if len(config.data.views) != 1:
      raise ValueError(f"Method 'fsc' trains on one view; set data.views to one kind, got {tuple(config.data.views)}.")
    self.num_classes = data.num_fine if hp.label == "fine" else data.num_coarse
    self._model = HeadNet(build_encoder(config.model), hp.head, self.num_classes, hp.num_sub,
                          resolve_linear_init(config.model))

  @property
  def has_sub_centres(self) -> bool:
    return self.hp.head in SUB_CENTRE_HEADS

  def init_extra(self, variables: dict) -> dict:
    if self.hp.head not in ("fsc", "centre"):
      return {}
    sample = jnp.zeros((1, *self.data.input_shape), jnp.float32)
    dim = jax.eval_shape(lambda: self._model.apply(variables, sample, train=False))["features"].shape[-1]
    if self.hp.head == "centre":
      return {"centres": jnp.zeros((self.num_classes, dim), jnp.float32)}
    rng = random_streams.stream_key(self.config.seed, SUB_CENTRES_STREAM)
    return {"sub_centres": losses.sample_sub_centres(rng, self.num_classes, self.hp.num_sub, dim, self.hp.sigma2,
                                                     self.hp.centre_init)}

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    hp = self.hp
    outputs, batch_stats = train_forward(self._model, params, state.batch_stats, batch.views[:, 0], rng)
    labels = getattr(batch, hp.label)
    x = outputs["features"]
    extra = state.extra
    if hp.head == "fsc":
      loss, parts = losses.fsc_loss(x, extra["sub_centres"], labels, hp.beta, hp.assign, hp.logit_scale)
      class_scores = losses.class_log_probs(losses.sub_class_logits(x, extra["sub_centres"], hp.logit_scale))
    elif hp.head == "softtriple":
      loss, parts = losses.softtriple_loss(x, outputs["centres"], labels, hp.softtriple_lambda,
                                           hp.softtriple_gamma, hp.softtriple_delta, hp.softtriple_tau)
      class_scores = losses.softtriple_similarities(x, outputs["centres"], hp.softtriple_gamma)[0]
    else:
      ce = optax.softmax_cross_entropy_with_integer_labels(outputs["logits"], labels).mean()
      parts, loss, class_scores = {"ce": ce}, ce, outputs["logits"]
      if hp.head == "centre":
        pull = losses.centre_loss(x, extra["centres"], labels)
        parts["centre_loss"] = pull
        loss = ce + hp.centre_lambda * pull
        extra = {"centres": losses.update_centres(extra["centres"], x, labels, hp.centre_alpha)}
    metrics = {f"train/{name}": value for name, value in parts.items()}
    metrics[f"train/{hp.label}_accuracy"] = jnp.mean(jnp.argmax(class_scores, -1) == labels)
    return loss, LossAux(metrics, batch_stats, extra)

  def discovered(self, state: TrainState) -> Optional[Discovered]:
    """[C*s, C]: sub-centre i*s + k belongs to class i (coarse training only)."""
    if not self.has_sub_centres or self.hp.label != "coarse":
      return None
    return Discovered([np.repeat(np.eye(self.num_classes, dtype=np.int64), self.hp.num_sub, axis=0)])

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    hp = self.hp
    outputs = self._model.apply(state.variables, inputs, train=False)
    x = outputs["features"]
    sub_scores = None
    if hp.head == "fsc":
      sub_scores = losses.sub_class_logits(x, state.extra["sub_centres"], hp.logit_scale)  # [b, C, s]
      class_logits = losses.class_log_probs(sub_scores)
    elif hp.head == "softtriple":
      relaxed, sub_scores = losses.softtriple_similarities(x, outputs["centres"], hp.softtriple_gamma)
      class_logits = hp.softtriple_lambda * relaxed
    else:
      class_logits = outputs["logits"]
    result = {"features": x, "embedding": x}
    if hp.label == "fine":
      result["fine_logits"] = class_logits
      result["coarse_logits"] = coarse_logits_from_fine(class_logits, self.data.taxonomy.fine_to_coarse,
                                                        self.data.num_coarse)
    else:
      result["coarse_logits"] = class_logits
      if sub_scores is not None:
        result["cluster_logits"] = sub_scores.reshape(sub_scores.shape[0], -1)
    return result
