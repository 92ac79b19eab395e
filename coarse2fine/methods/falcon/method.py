"""FALCON: fine-grained class discovery with an inferred coarse-fine relation (Grcic et al., ICML 2024).

A fine classifier over K classes learns from coarse labels through a relation matrix
M in {0, 1}^{K x C} (each fine class has one coarse parent) that is itself inferred
(docs/methods/falcon.md#objective):

* the jitted step: online forward of view 0, EMA-teacher forwards (train mode) of view 1
  and of m mined within-coarse neighbours, the loss
  lambda1 L_coarse + lambda2 (L_conf + L_cons) + lambda3 L_reg (`falcon.losses`), an SGD
  step and the EMA update; it also accumulates the K x C cost S from the teacher's
  probabilities, reset at each epoch start;
* a host hook every `falcon.solve_every` steps (counted within the epoch, as the official
  code does): only S goes to the host, `relation_solver.solve_relation` finds the new M
  exactly, and M goes back to the device for the next step. beta is 0 after
  `falcon.soft_label_epochs`.

`falcon.warmup_steps` (0 in the official recipe) first trains the SCAN-C part of the loss
alone, lambda2 L_cons + lambda3 L_reg, for that many steps, with M solved on its schedule
all the while (the tau and beta schedules are unchanged). The paper starts from a
self-supervised backbone whose first solves already see fine structure. From random
weights the first solve sees noise, and the network then fits that random M's class counts
instead of correcting them; a short warm-up on the neighbour objective gives the first
solves real clusters to read.

Several taxonomies over the same fine classes (docs/methods/falcon.md#several-taxonomies,
`data.extra_taxonomies`): each taxonomy d has its own M_d, stored together as [D, K, C_max] (columns
past C_d unused), its own cost and solve, and its examples' neighbours come from the same (taxonomy,
coarse class); the classifier is shared. Batches without a `dataset` field are taxonomy 0.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from coarse2fine.data import pipeline
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine import random_streams, sharding
from coarse2fine.engine.hooks import HookContext, HostHook
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import Discovered, LossAux, Method
from coarse2fine.methods.common import neighbours as neighbour_mining
from coarse2fine.methods.common.dataset_pass import views_checked
from coarse2fine.methods.common.network import (
  ClassifierNet,
  build_encoder,
  train_mode_logits,
)
from coarse2fine.methods.falcon import losses
from coarse2fine.methods.falcon.config import falcon_section
from coarse2fine.methods.falcon.relation_solver import BACKENDS, check_column_counts, solve_relation
from coarse2fine.models import resolve_linear_init

INITIAL_RELATION_STREAM = 0xFA1C  # random stream: the random relation before the first solve


def initial_relation(num_fine: int, num_coarse: int, beta: float, seed: int, backend: str = "exact",
                     time_limit: float = 30.0, column_counts: Optional[np.ndarray] = None) -> np.ndarray:
  """[K, C] 0/1: the relation solved for a random cost softmax_rows(N(0, 1)).

  The initial M of docs/methods/falcon.md#relation-solver.
  """
  logits = random_streams.stream_generator(seed, INITIAL_RELATION_STREAM).standard_normal(
      (num_fine, num_coarse))
  cost = np.exp(logits - logits.max(1, keepdims=True))
  cost /= cost.sum(1, keepdims=True)
  return solve_relation(cost, beta, backend, time_limit=time_limit, column_counts=column_counts).matrix


UNBALANCED_RATIO = 2.0  # largest / smallest coarse class in training examples above which fit sets beta = 0


def coarse_classes_unbalanced(data: HierarchicalData) -> bool:
  """Whether the largest coarse class of the training split holds over UNBALANCED_RATIO times the smallest's
  examples (classes without training examples ignored)."""
  sizes = np.bincount(np.asarray(data.train.coarse), minlength=data.taxonomy.num_coarse)
  sizes = sizes[sizes > 0]
  return bool(sizes.max() > UNBALANCED_RATIO * sizes.min())


class Falcon(Method):
  """FALCON on one taxonomy; see the module docstring."""

  two_views = True
  fine_count_field = "falcon.num_fine"
  headline_metrics = ("discovery/acc", "discovery/ari", "discovery/nmi", "discovery/ged", "*/coarse_top1")  # Tables 2-3


  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"falcon": falcon_section()}

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    config.optimizer.lr = 0.1
    config.optimizer.weight_decay = 0.0
    if not data.is_image:
      # lambda3 as configs/falcon_pbmc.py: with the images' 2.0 FALCON trails k-means on PBMC's inputs by 4.7
      # points, with 0.5 by 1.1 (chosen on seeds 100-102, docs/fit_defaults.md#pbmc-the-entropy-weight)
      config.falcon.lambda_entropy = 0.5
    if coarse_classes_unbalanced(data):
      # beta pulls every coarse class towards K / C fine classes; where coarse classes differ in size that prior
      # is the wrong one (PBMC: 13 to 369 cells a lineage; docs/fit_defaults.md#unbalanced-coarse-classes)
      config.falcon.beta = 0.0

  @classmethod
  def api_derived(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> dict:
    epochs, steps = config.train.num_epochs, len(data.train) // config.train.batch_size
    if steps < 2:
      raise ValueError(f"FALCON solves its relation within epochs and needs 2 or more steps an epoch; "
                       f"{len(data.train)} examples make fewer at train.batch_size={config.train.batch_size}.")
    neighbours = neighbour_mining.within_coarse_count(data)
    return {
        "falcon.solve_every": max(1, min(20, (steps - 1) // 2)),  # at least one solve in each epoch
        # images: configs/falcon_fashion_mnist.py's 3 of 10; vectors: soft labels over the whole run, where FALCON
        # no longer collapses to one class per PBMC lineage (docs/methods/falcon.md#configs-and-results)
        "falcon.soft_label_epochs": max(1, round(0.3 * epochs)) if data.is_image else max(1, epochs),
        "falcon.warmup_steps": epochs * steps // 20,  # ibid.: 40 of 780 steps
        "falcon.neighbours": neighbours,
        "falcon.neighbours_used": min(5, neighbours),
    }

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    hp = self.hp = config.falcon
    self.num_fine = hp.num_fine or data.num_fine
    if hp.solver not in BACKENDS:
      raise ValueError(f"Unknown falcon.solver {hp.solver!r}; choose one of {sorted(BACKENDS)}.")
    if hp.solve_every < 1 or hp.soft_label_epochs < 1:
      raise ValueError("falcon.solve_every and falcon.soft_label_epochs must be positive.")
    self._views = views_checked(config.data.views, 2, config.method)
    self._model = ClassifierNet(encoder=build_encoder(config.model), embedder=None, num_classes=self.num_fine,
                                linear_init=resolve_linear_init(config.model))
    self.num_coarse = tuple(t.num_coarse for t in data.taxonomies)  # C_d of each taxonomy d
    self.num_datasets, self.max_coarse = len(self.num_coarse), max(self.num_coarse)
    if self.num_fine < self.max_coarse:
      raise ValueError(f"falcon.num_fine={self.num_fine} is below the {self.max_coarse} coarse classes of a "
                       "taxonomy; every coarse class needs a fine class.")
    self._column_counts = self._fixed_counts(str(hp.fine_per_coarse), data)
    self.steps_per_epoch = pipeline.steps_per_epoch(data, config.train.batch_size)
    total_steps = config.train.num_epochs * self.steps_per_epoch
    if not 0 <= hp.warmup_steps < total_steps:
      raise ValueError(f"falcon.warmup_steps={hp.warmup_steps} must be in [0, {total_steps}) (the run's steps); "
                       "the run needs steps with the coarse loss.")
    self._neighbours: Optional[pipeline.NeighbourSampling] = None

  def _fixed_counts(self, setting: str, data: HierarchicalData) -> list[Optional[np.ndarray]]:
    """`falcon.fine_per_coarse` as [C_d] counts per taxonomy d (None: the relation's counts are discovered)."""
    if not setting:
      return [None] * self.num_datasets
    if setting == "taxonomy":
      counts = [np.bincount(t.fine_to_coarse, minlength=t.num_coarse) for t in data.taxonomies]
    elif self.num_datasets > 1:
      raise ValueError(f"falcon.fine_per_coarse={setting!r} gives one taxonomy's counts, but the data have "
                       f"{self.num_datasets}; use 'taxonomy' or ''.")
    else:
      try:
        counts = [np.array([int(n) for n in setting.split(",")])]
      except ValueError:
        counts = [np.array([], np.int64)]  # not integers: refused below
    for count, num_coarse in zip(counts, self.num_coarse):
      try:
        check_column_counts(count, (self.num_fine, num_coarse))
      except ValueError:
        raise ValueError(f"falcon.fine_per_coarse={setting!r} gives {count.tolist()} fine classes per coarse class "
                         f"for a taxonomy of {num_coarse} coarse classes and K={self.num_fine}: give {num_coarse} "
                         f"integers >= 1 summing to K (or set falcon.num_fine to their sum).") from None
    return counts

  def init_extra(self, variables: dict) -> dict:
    relations = np.zeros((self.num_datasets, self.num_fine, self.max_coarse), bool)  # columns past C_d stay False
    for d, num_coarse in enumerate(self.num_coarse):
      relations[d, :, :num_coarse] = initial_relation(self.num_fine, num_coarse, self.hp.beta, self.config.seed + d,
                                                      self.hp.solver, self.hp.solver_time_limit,
                                                      self._column_counts[d])
    shape = (self.num_datasets, self.num_fine, self.max_coarse)
    return {
        "teacher": jax.tree.map(jnp.copy, variables["params"]),  # EMA of the parameters only
        "ema_updates": jnp.zeros((), jnp.int32),
        "relations": jnp.asarray(relations),  # [D, K, C_max]
        "cost": jnp.zeros(shape, jnp.float32),  # sum of p' outer onehot(y) since the last solve
        "cost_count": jnp.zeros((self.num_datasets,), jnp.float32),
    }

  # ----------------------------------------------------------------------------- neighbours

  def neighbour_sampling(self, run_features: Optional[neighbour_mining.RunFeatures] = None
                         ) -> pipeline.NeighbourSampling:
    """`falcon.neighbours` within-coarse neighbours of each training example, mined once.

    See docs/methods/falcon.md#views-and-neighbours.
    """
    if self._neighbours is None:
      table = neighbour_mining.training_neighbours(self.data, self.hp.neighbour_features, self.hp.neighbours,
                                                   within_coarse=True, run_features=run_features,
                                                   field="falcon.neighbours")
      self._neighbours = pipeline.NeighbourSampling(table, self.hp.neighbours_used)
    return self._neighbours

  # ----------------------------------------------------------------------------- step

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    hp = self.hp
    extra = state.extra
    online_inputs, teacher_inputs = batch.views[:, 0], batch.views[:, 1]
    neighbours = batch.neighbours  # [B, m, ...]
    b, m = neighbours.shape[:2]
    coarse = batch.coarse
    dataset = batch.dataset

    forward = functools.partial(train_mode_logits, self._model)
    # Teacher forwards in train mode: batch statistics, and they update the shared running stats.
    teacher = extra["teacher"]
    teacher_logits, stats = forward(teacher, state.batch_stats, teacher_inputs, jax.random.fold_in(rng, 1))
    neighbour_logits, stats = forward(teacher, stats, neighbours.reshape((b * m,) + neighbours.shape[2:]),
                                      jax.random.fold_in(rng, 2))
    teacher_logits = jax.lax.stop_gradient(teacher_logits)
    neighbour_log_probs = jax.lax.stop_gradient(jax.nn.log_softmax(neighbour_logits).reshape(b, m, -1))
    logits, stats = forward(params, stats, online_inputs, jax.random.fold_in(rng, 3))
    log_probs = jax.nn.log_softmax(logits)
    probs = jnp.exp(log_probs)

    allowed = losses.allowed_children(extra["relations"], dataset, coarse)
    epoch = state.step // self.steps_per_epoch + 1
    tau = losses.soft_label_weight(epoch, hp.soft_label_epochs)
    l_coarse = losses.coarse_loss(logits, allowed)
    l_cons = losses.neighbour_consistency_loss(log_probs, neighbour_log_probs)
    l_conf = losses.confidence_loss(logits, losses.confidence_targets(teacher_logits, allowed, tau, hp.temperature))
    l_reg = losses.entropy_regulariser(probs)
    loss = hp.lambda_coarse * l_coarse + hp.lambda_consistency * (l_conf + l_cons) + hp.lambda_entropy * l_reg
    warmup_loss = hp.lambda_consistency * l_cons + hp.lambda_entropy * l_reg
    warmup = state.step < hp.warmup_steps
    loss = jnp.where(warmup, warmup_loss, loss)

    # S accumulates since the last solve and restarts with every epoch (docs/methods/falcon.md#relation-solver).
    epoch_start = (state.step % self.steps_per_epoch) == 0
    batch_cost = losses.relation_cost(jax.nn.softmax(teacher_logits), coarse, dataset, self.num_datasets,
                                      self.max_coarse)
    batch_count = jnp.bincount(dataset, length=self.num_datasets).astype(jnp.float32)
    extra = {**extra,
             "cost": jnp.where(epoch_start, 0.0, extra["cost"]) + batch_cost,
             "cost_count": jnp.where(epoch_start, 0.0, extra["cost_count"]) + batch_count}
    metrics = {
        "train/coarse": l_coarse, "train/consistency": l_cons, "train/confidence": l_conf,
        "train/entropy_reg": l_reg, "train/tau": tau, "train/warmup": warmup.astype(jnp.float32),
        "train/coarse_accuracy": jnp.mean(jnp.any(allowed & (logits == logits.max(-1, keepdims=True)), -1)),
    }
    return loss, LossAux(metrics, stats, extra)

  def after_update(self, state: TrainState) -> TrainState:
    updates = state.extra["ema_updates"] + 1
    decay = losses.ema_decay(updates, self.hp.ema_decay)
    teacher = losses.ema_update(state.extra["teacher"], state.params, decay)
    return state.replace(extra={**state.extra, "teacher": teacher, "ema_updates": updates})

  # ----------------------------------------------------------------------------- relation solve

  def host_hooks(self) -> list[HostHook]:
    return [HostHook("falcon_relation", self.solve_relations, every_steps=self.hp.solve_every, within_epoch=True,
                     schedule_fields=("falcon.solve_every",))]

  def solve_relations(self, state: TrainState, context: HookContext) -> TrainState:
    """Pulls S [D, K, C] (and nothing bigger), solves each M on the host, puts them back.

    In a multi-process run process 0 solves and broadcasts its M (and the solve's figures),
    so every process continues with the same relation even if a time-limited backend or
    float differences would have made their solves disagree.
    """
    hp = self.hp
    completed = int(sharding.local_value(state.step))
    epoch = (completed - 1) // self.steps_per_epoch + 1
    beta = hp.beta if epoch <= hp.soft_label_epochs else 0.0
    relations = sharding.local_value(state.extra["relations"]).copy()
    figures = np.zeros(2)  # changed rows, objective
    start = time.perf_counter()
    if jax.process_index() == 0:
      cost, count = sharding.local_value(state.extra["cost"]), sharding.local_value(state.extra["cost_count"])
      for d, num_coarse in enumerate(self.num_coarse):
        if count[d] == 0:
          continue
        solution = solve_relation(cost[d, :, :num_coarse] / count[d], beta, hp.solver,
                                  time_limit=hp.solver_time_limit, column_counts=self._column_counts[d])
        solved = solution.matrix.astype(bool)
        figures += (np.sum(np.any(relations[d, :, :num_coarse] != solved, axis=1)), solution.objective)
        relations[d, :, :num_coarse] = solved
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      relations, figures = multihost_utils.broadcast_one_to_all((relations, figures))
      relations, figures = np.asarray(relations, bool), np.asarray(figures)
    diagnostics = {"beta": beta, "objective": float(figures[1]), "changed_rows": int(figures[0])}
    diagnostics.update(self._relation_count_error(relations))
    previous = context.host_state.get("relation", {}).get("step")
    # A line when parents change, else one an epoch: FALCON solves every few steps, mostly without change.
    shown = diagnostics["changed_rows"] > 0 or previous is None or (previous - 1) // self.steps_per_epoch + 1 < epoch
    context.host_state["relation"] = {"step": completed, **diagnostics}
    context.metrics.update({f"relation/{k}": float(v) for k, v in diagnostics.items()})
    logging.info("FALCON relation solve at step %d: %s", completed, diagnostics)
    if shown:
      context.log(f"FALCON relation solve after step {completed} (epoch {epoch}): {diagnostics['changed_rows']} fine "
                  f"classes changed parent, {time.perf_counter() - start:.1f} s (unchanged solves: one line an epoch)")
    extra = {**state.extra,
             "relations": sharding.host_to_replicated(relations, state.extra["relations"]),
             "cost": jnp.zeros_like(state.extra["cost"]),
             "cost_count": jnp.zeros_like(state.extra["cost_count"])}
    return state.replace(extra=extra)

  def _relation_count_error(self, relations: np.ndarray) -> dict:
    """sum_c |n_c - n_c(true)| per taxonomy (`ged_invariant`, cheap enough to log at every solve)."""
    out = {}
    for d, taxonomy in enumerate(self.data.taxonomies):
      true_counts = np.bincount(taxonomy.fine_to_coarse, minlength=taxonomy.num_coarse)
      error = float(np.abs(relations[d, :, :taxonomy.num_coarse].sum(0) - true_counts).sum())
      out["count_error" if d == 0 else f"count_error_{d}"] = error
    return out

  # ----------------------------------------------------------------------------- evaluation

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False)
    logits = outputs["logits"]
    relation = state.extra["relations"][0, :, :self.data.num_coarse]  # [K, C] of the main taxonomy
    log_probs = jax.nn.log_softmax(logits)[:, :, None]
    coarse_logits = jax.nn.logsumexp(jnp.where(relation[None], log_probs, -jnp.inf), axis=1)
    return {"features": outputs["features"], "embedding": outputs["features"], "cluster_logits": logits,
            "coarse_logits": coarse_logits}

  def discovered(self, state: TrainState) -> Discovered:
    """The K fine classes under M_d [K, C_d] of every taxonomy d (the main one first)."""
    stacked = np.asarray(jax.device_get(state.extra["relations"]), np.int64)
    return Discovered([stacked[d, :, :c] for d, c in enumerate(self.num_coarse)])
