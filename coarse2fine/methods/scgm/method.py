"""SCGM: the super-class-conditional Gaussian mixture (Ni et al., ICLR 2022).

Fine-grained embeddings from coarse labels by EM over r latent sub-classes
(docs/methods/scgm.md#objective):

* E-step (a host hook, every `scgm.estep_every_epochs` epochs and before the first step):
  embed the whole training set, build log P[i, k] = log p(z=k|v_i) + log p(y_i|z=k) on the
  device, solve the equal-partition transport problem with ott-jax's Sinkhorn and round
  it to hard codes z_hat, one per example, kept in the train state.
* M-step (the jitted step): SGD on the loss of the variant, with z_hat looked up on the
  device by example index.

Variants:
* `scgm_g` (generic encoder, 2.4): L = gamma (L_sub + L_rel) + L_ce.
* `scgm_a` (2.5): a momentum key encoder and per-super-class queues add ANCOR's
  angular InfoNCE: L = L1 + L2 + gamma (L3 + L4).

Where the reference code departs from the paper it is followed by default, with a switch
for the paper: `scgm.use_pi` (the code drops the mixing weights pi), `scgm.detach_means`
(SCGM-A: the code never trains mu_z and L4 carries no gradient).
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import metrics as sk_metrics

from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine import random_streams, sharding
from coarse2fine.engine.hooks import HookContext, HostHook
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import Discovered, LossAux, Method, Prototypes
from coarse2fine.methods.common.dataset_pass import training_split_pass, views_checked
from coarse2fine.methods.common.momentum import QUEUE_INIT_STREAM
from coarse2fine.methods.common.network import build_embedder, build_encoder, train_forward
from coarse2fine.methods.common.normalize import l2_normalize, l2_normalize_host
from coarse2fine.methods.scgm import estep, queues
from coarse2fine.methods.scgm.config import contrast_section, scgm_section

ESTEP_STREAM = 0x5C6E  # random stream: the E-step's forward, in the key of the step it follows
ESTEP_PASS_STREAM = 0x5C6F  # random stream: the E-step's pass (its augmentation), with the step

VARIANTS = ("g", "a")


class SCGMNet(nn.Module):
  """encoder -> embedder -> v, plus the super-class means mu_y [C, e] and sub-class means mu_z [r, e].

  The means are Glorot-uniform, U(-a, a) with a = sqrt(6 / (rows + e)), stored
  unnormalised (every use normalises them but the super-class CE, 2.2). Returns
  {"features": [b, D], "embedding": v [b, e], "mu_y": [C, e], "mu_z": [r, e]}.
  """

  encoder: nn.Module
  embedder: Optional[nn.Module]
  num_coarse: int
  num_subclasses: int
  embedding_dim: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = self.encoder(x, train=train)
    v = self.embedder(features, train=train) if self.embedder is not None else features
    glorot = nn.initializers.glorot_uniform()
    mu_y = self.param("mu_y", glorot, (self.num_coarse, v.shape[-1]), jnp.float32)
    mu_z = self.param("mu_z", glorot, (self.num_subclasses, v.shape[-1]), jnp.float32)
    return {"features": features, "embedding": v, "mu_y": mu_y, "mu_z": mu_z}


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """[n, e] x [m, e] -> [n, m] cosine similarities."""
  return l2_normalize(a) @ l2_normalize(b).T


def superclass_logits(v: jax.Array, mu_y: jax.Array, scale: float = 1.0) -> jax.Array:
  """scale * relu(n(v)) @ mu_y.T, [B, C]: the super-class means as classifier weights (no bias, mu_y unnormalised)."""
  return scale * (jax.nn.relu(l2_normalize(v)) @ mu_y.T)


def subclass_logits(v, mu_y, mu_z, coarse, *, sigma2: float, sigmabar2: float, use_pi: bool) -> jax.Array:
  """cos(v, mu_z) / sigma2 [B, r]; with `use_pi`, plus the paper's log mixing weights log pi^i_k."""
  logits = cosine(v, mu_z) / sigma2
  if use_pi:
    logits = logits + estep.log_mixing_weights(coarse, mu_y, mu_z, sigmabar2)
  return logits


def mixture_terms(v, coarse, codes, mu_y, mu_z, *, sigma2: float, sigmabar2: float, use_pi: bool):
  """(L_sub, L_rel) of docs/methods/scgm.md#scgm-g-loss (SCGM-A adds the same two terms), each averaged over the batch.

  L_sub = CE(cos(v, mu_z) / sigma2, z_hat): the example's own sub-class;
  L_rel = CE(cos(mu_z[z_hat], mu_y) / sigmabar2, y): that sub-class's super-class.
  v: [B, e]; coarse, codes: [B] int32; mu_y: [C, e]; mu_z: [r, e].
  """
  logits_sub = subclass_logits(v, mu_y, mu_z, coarse, sigma2=sigma2, sigmabar2=sigmabar2, use_pi=use_pi)
  l_sub = optax.softmax_cross_entropy_with_integer_labels(logits_sub, codes).mean()
  logits_rel = cosine(mu_z[codes], mu_y) / sigmabar2
  l_rel = optax.softmax_cross_entropy_with_integer_labels(logits_rel, coarse).mean()
  return l_sub, l_rel


def subclass_relation(mu_y: np.ndarray, mu_z: np.ndarray) -> np.ndarray:
  """[r, C] 0/1: each sub-class under the super-class of highest cos(mu_z[k], mu_y[c]).

  The relation graph of docs/methods/scgm.md#outputs-and-evaluation.
  """
  cos = l2_normalize_host(mu_z, np.float64) @ l2_normalize_host(mu_y, np.float64).T
  relation = np.zeros(cos.shape, np.int64)
  relation[np.arange(len(cos)), cos.argmax(1)] = 1
  return relation


class SCGM(Method):
  """SCGM-G (`variant="g"`) or SCGM-A (`variant="a"`); see the module docstring."""

  variant: ClassVar[str] = "g"
  has_embedder = True
  fine_count_field = "scgm.num_subclasses"
  headline_metrics = ("fewshot/*", "*/coarse_top1")  # cross-granularity few-shot (paper Tables 1-5)


  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"scgm": scgm_section()}

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    config.scgm.num_subclasses = data.num_fine
    config.scgm.gamma = 0.25  # chosen on validation for configs/scgm_fashion_mnist.py
    config.scgm.estep_every_epochs = 1
    # the super-class head's logits x10: better all-way 1-shot on validation on both Fashion-MNIST taxonomies,
    # SCGM-G and SCGM-A at 2k images, SCGM-G at 54k (docs/methods/scgm.md#small-data)
    config.scgm.ce_scale = 10.0

  @classmethod
  def api_derived(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> dict:
    # as configs/scgm_fashion_mnist.py: an epoch of training before the first E-step
    return {"scgm.warmup_epochs": 1 if config.train.num_epochs > 1 else 0}

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    variant = self.variant
    if variant not in VARIANTS:
      raise ValueError(f"Unknown SCGM variant {variant!r}; choose one of {VARIANTS}.")
    self.variant = variant
    self.hp = config.scgm
    if self.hp.num_subclasses < 1 or self.hp.estep_every_epochs < 1:
      raise ValueError("scgm.num_subclasses and scgm.estep_every_epochs must be positive.")
    self._views = views_checked(config.data.views, 1 if variant == "g" else 2, config.method)
    if variant == "a":
      self.contrast = config.contrast
      queues.check_queue_size(config.contrast.queue_size, config.train.batch_size)
    self._model = SCGMNet(
        encoder=build_encoder(config.model), embedder=build_embedder(config.model),
        num_coarse=data.num_coarse, num_subclasses=self.hp.num_subclasses,
        embedding_dim=config.model.embedding_dim)
    self._train_coarse = np.asarray(data.train.coarse, np.int32)

  def init_extra(self, variables: dict) -> dict:
    extra = {
        "codes": jnp.zeros((len(self.data.train),), jnp.int32),  # z_hat per training example
        "column_potential": jnp.zeros((self.hp.num_subclasses,), jnp.float32),  # E-step warm start
        "codes_ready": jnp.zeros((), jnp.float32),  # 1 once an E-step ran: the mixture terms are on
    }
    if self.variant == "a":
      dim = variables["params"]["mu_y"].shape[-1]
      extra["momentum"] = queues.init_momentum_state(
          random_streams.stream_key(self.config.seed, QUEUE_INIT_STREAM), variables, self.data.num_coarse,
          self.contrast.queue_size, dim)
    return extra

  # ----------------------------------------------------------------------------- M-step

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    hp = self.hp
    inputs = batch.views[:, 0]
    outputs, batch_stats = train_forward(self._model, params, state.batch_stats, inputs, rng)
    v, mu_y, mu_z = outputs["embedding"], outputs["mu_y"], outputs["mu_z"]
    coarse = batch.coarse
    codes = state.extra["codes"][batch.index]
    coarse_logits = superclass_logits(v, mu_y, hp.ce_scale)
    l_ce = optax.softmax_cross_entropy_with_integer_labels(coarse_logits, coarse).mean()
    extra = state.extra
    if self.variant == "g":
      l_sub, l_rel = mixture_terms(v, coarse, codes, mu_y, mu_z, sigma2=hp.sigma2, sigmabar2=hp.sigmabar2,
                                   use_pi=hp.use_pi)
      loss = hp.gamma * extra["codes_ready"] * (l_sub + l_rel) + l_ce
      metrics = {}
    else:
      momentum = extra["momentum"]
      keys, momentum = queues.momentum_keys(
          self._model, params, batch_stats, momentum, batch.views[:, 1], self.contrast.momentum,
          jax.random.fold_in(rng, 1))
      l_nce = queues.within_superclass_infonce(
          v, keys, coarse, mu_y, momentum.queues, self.contrast.temperature)
      means_y, means_z = (jax.lax.stop_gradient((mu_y, mu_z)) if hp.detach_means else (mu_y, mu_z))
      l_sub, l_rel = mixture_terms(v, coarse, codes, means_y, means_z, sigma2=hp.sigma2,
                                   sigmabar2=hp.sigmabar2, use_pi=hp.use_pi)
      loss = l_ce + hp.infonce_weight * l_nce + hp.gamma * extra["codes_ready"] * (l_sub + l_rel)
      momentum = momentum.replace(queues=queues.enqueue(momentum.queues, keys, coarse))
      extra = {**extra, "momentum": momentum}
      metrics = {"train/infonce": l_nce}
    metrics.update({
        "train/ce": l_ce, "train/subclass": l_sub, "train/relation": l_rel,
        "train/coarse_accuracy": jnp.mean(jnp.argmax(coarse_logits, -1) == coarse),
    })
    return loss, LossAux(metrics, batch_stats, extra)

  # ----------------------------------------------------------------------------- E-step

  def host_hooks(self) -> list[HostHook]:
    warmup = self.hp.warmup_epochs
    return [HostHook("scgm_estep", self.estep, every_epochs=self.hp.estep_every_epochs, at_start=warmup == 0,
                     start_epochs=warmup, schedule_fields=("scgm.warmup_epochs", "scgm.estep_every_epochs"))]

  def _embed_step(self):
    """Jitted (batch_stats, inputs, number) -> (batch_stats, v): the model on one E-step batch."""
    train_mode = self.hp.estep_train_mode

    def step(params, rng, batch_stats, inputs, number):
      if not train_mode:
        variables = {"params": params, "batch_stats": batch_stats}
        return batch_stats, self._model.apply(variables, inputs, train=False)["embedding"]
      outputs, batch_stats = train_forward(self._model, params, batch_stats, inputs, jax.random.fold_in(rng, number))
      return batch_stats, outputs["embedding"]

    return jax.jit(step)

  def _solve_step(self, mesh):
    hp = self.hp

    def solve(params, coarse, embeddings, column_potential):
      log_p = estep.log_posterior(embeddings, coarse, params["mu_y"], params["mu_z"], sigma2=hp.sigma2,
                                       sigmabar2=hp.sigmabar2, use_pi=hp.use_pi)
      init = column_potential if hp.warm_start else None
      return estep.balanced_codes(log_p, lam=hp.lam, init_column_potential=init)

    return jax.jit(solve, out_shardings=sharding.replicated(mesh))

  def estep(self, state: TrainState, context: HookContext) -> TrainState:
    """Recomputes the hard codes of every training example (docs/methods/scgm.md#e-step-ott-jax-sinkhorn)."""
    config = self.config
    if not hasattr(self, "_estep_fns"):
      self._estep_fns = (self._embed_step(), self._solve_step(context.mesh))
    embed_step, solve_step = self._estep_fns
    rng = random_streams.stream_key(state.step_rng(), ESTEP_STREAM)
    step_fn = lambda stats, inputs, number: embed_step(state.params, rng, stats, inputs, number)
    step = int(jax.device_get(state.step))
    seed = int(random_streams.stream_generator(config.seed, ESTEP_PASS_STREAM, step).integers(2**31))
    start = time.perf_counter()
    batch_stats, embeddings = training_split_pass(
        step_fn, state.batch_stats, self.data, config.data, self.views[0], config.train.batch_size, seed,
        context.mesh)
    embeddings.block_until_ready()
    embedded = time.perf_counter()
    coarse = sharding.host_to_replicated(self._train_coarse, context.mesh)
    result = jax.block_until_ready(solve_step(state.params, coarse, embeddings, state.extra["column_potential"]))
    seconds = {"embed_seconds": embedded - start, "solve_seconds": time.perf_counter() - embedded}
    extra = {**state.extra, "codes": result.codes, "column_potential": result.column_potential,
             "codes_ready": jnp.ones_like(state.extra["codes_ready"])}  # keeps its (global) sharding
    diagnostics = {**self._diagnostics(result, int(jax.device_get(state.step))), **seconds}
    context.host_state["estep"] = diagnostics
    context.metrics.update({f"estep/{k}": float(v) for k, v in diagnostics.items() if k != "step"})
    logging.info("SCGM E-step: %s", diagnostics)
    context.log(f"SCGM E-step after step {step}: {diagnostics['iterations']} Sinkhorn iterations"
                f"{'' if diagnostics['converged'] else ' (not converged)'}, {diagnostics['used_subclasses']} of "
                f"{self.hp.num_subclasses} sub-classes used, {sum(seconds.values()):.1f} s")
    return state.replace(batch_stats=batch_stats, extra=extra)

  def _diagnostics(self, result, step: int) -> dict:
    """NMI and homogeneity ("purity" in the reference code) of the codes against known fine labels."""
    codes = np.asarray(jax.device_get(result.codes))
    out = {"step": step, "iterations": int(jax.device_get(result.iterations)),
           "converged": bool(jax.device_get(result.converged)),
           "used_subclasses": int(len(np.unique(codes)))}
    fine = self.data.train.fine
    known = fine >= 0
    if known.any():
      out["nmi"] = 100.0 * float(sk_metrics.normalized_mutual_info_score(fine[known], codes[known]))
      out["purity"] = 100.0 * float(sk_metrics.homogeneity_score(fine[known], codes[known]))
    return out

  # ----------------------------------------------------------------------------- evaluation

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False)
    v = outputs["embedding"]
    return {
        "features": outputs["features"],
        "embedding": v,
        "coarse_logits": superclass_logits(v, outputs["mu_y"], self.hp.ce_scale),
        # argmax_k p(z=k|v) without the label-dependent pi: the discovered sub-class.
        "cluster_logits": cosine(v, outputs["mu_z"]) / self.hp.sigma2,
    }

  def discovered(self, state: TrainState) -> Discovered:
    """Sub-classes under their closest super-class mean; both sets of means, in the embedding space."""
    params = jax.device_get(state.params)
    mu_y, mu_z = np.asarray(params["mu_y"], np.float32), np.asarray(params["mu_z"], np.float32)
    relation = np.asarray(subclass_relation(mu_y, mu_z), np.int64)
    means = (Prototypes("super-class means", mu_y, np.arange(len(mu_y))),
             Prototypes("sub-class means", mu_z, relation.argmax(1)))
    return Discovered([relation], means, prototype_space="embedding")


class SCGMG(SCGM):
  """`scgm_g`: SCGM on a generic encoder."""

  variant = "g"


class SCGMA(SCGM):
  """`scgm_a`: SCGM with ANCOR's momentum encoder and per-super-class queues (two views)."""

  variant = "a"
  two_views = True

  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"scgm": scgm_section(), "contrast": contrast_section()}

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    super().api_defaults(config, data)
    config.contrast.queue_size = 4096
    config.contrast.momentum = 0.99
