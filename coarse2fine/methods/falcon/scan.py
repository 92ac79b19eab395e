"""SCAN and SCAN-C: clustering by neighbour consistency, the FALCON paper's baselines.

See docs/methods/falcon.md#scan-and-scan-c-losses.

A classifier over K clusters is trained so that each example and one of its mined neighbours
get the same prediction, with an entropy term that keeps the clusters in use:

  L = -mean_i log(p_i . p_j(i)) + w_ent sum_k pbar_k log pbar_k      (+ w_ent log K, a constant)

`scan` mines neighbours over the whole training set and never sees a label (Van Gansbeke et
al., 2020); `scan_c` mines them within each coarse class, its only use of the coarse labels.
Both share FALCON's neighbour mining and losses. SCAN's self-labelling stage is not included.
The clusters' coarse parents, for the relation metrics, are their majority coarse labels
(the evaluator's fallback for a method without a relation).
"""

from __future__ import annotations

from typing import ClassVar, Optional

import jax
import jax.numpy as jnp
import ml_collections

from coarse2fine.data import pipeline
from coarse2fine.data.batch import Batch
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.base import LossAux, Method
from coarse2fine.methods.common import neighbours as neighbour_mining
from coarse2fine.methods.common.dataset_pass import views_checked
from coarse2fine.methods.common.network import (
  ClassifierNet,
  build_encoder,
  train_mode_logits,
)
from coarse2fine.methods.falcon import losses
from coarse2fine.methods.falcon.config import scan_section
from coarse2fine.models import resolve_linear_init


class Scan(Method):
  """`scan`: SCAN over the whole batch (`ScanC` mines within each coarse class); see the module docstring."""

  within_coarse: ClassVar[bool] = False
  fine_count_field = "scan.num_clusters"
  headline_metrics = ("discovery/acc", "discovery/ari", "discovery/nmi", "discovery/ged")  # as FALCON's tables


  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    return {"scan": scan_section()}

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    config.scan.num_clusters = data.num_fine

  @classmethod
  def api_derived(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> dict:
    if cls.within_coarse:  # mined within the coarse class, the example excluded
      return {"scan.neighbours": neighbour_mining.within_coarse_count(data)}
    return {"scan.neighbours": min(20, len(data.train) - 1)}

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    super().__init__(config, data)
    self.hp = config.scan
    self.num_clusters = self.hp.num_clusters or data.num_fine
    self._views = views_checked(config.data.views, 1, config.method)
    self._model = ClassifierNet(encoder=build_encoder(config.model), embedder=None, num_classes=self.num_clusters,
                                linear_init=resolve_linear_init(config.model))
    self._neighbours: Optional[pipeline.NeighbourSampling] = None

  def neighbour_sampling(self, run_features: Optional[neighbour_mining.RunFeatures] = None
                         ) -> pipeline.NeighbourSampling:
    """One of `scan.neighbours` mined neighbours per example and step."""
    if self._neighbours is None:
      table = neighbour_mining.training_neighbours(self.data, self.hp.neighbour_features, self.hp.neighbours,
                                                   within_coarse=self.within_coarse, run_features=run_features,
                                                   field="scan.neighbours")
      self._neighbours = pipeline.NeighbourSampling(table, 1)
    return self._neighbours

  def loss(self, params, state: TrainState, batch: Batch, rng: jax.Array):
    logits, stats = train_mode_logits(self._model, params, state.batch_stats, batch.views[:, 0],
                                      jax.random.fold_in(rng, 1))
    neighbour_logits, stats = train_mode_logits(self._model, params, stats, batch.neighbours[:, 0],
                                                jax.random.fold_in(rng, 2))
    log_probs = jax.nn.log_softmax(logits)
    neighbour_log_probs = jax.nn.log_softmax(neighbour_logits)  # the gradient flows through both, as in SCAN
    l_cons = losses.neighbour_consistency_loss(log_probs, neighbour_log_probs[:, None])
    l_ent = losses.entropy_regulariser(jnp.exp(log_probs))
    loss = l_cons + self.hp.entropy_weight * l_ent
    return loss, LossAux({"train/consistency": l_cons, "train/entropy_reg": l_ent}, stats, state.extra)

  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    outputs = self._model.apply(state.variables, inputs, train=False)
    return {"features": outputs["features"], "embedding": outputs["features"], "cluster_logits": outputs["logits"]}


class ScanC(Scan):
  """`scan_c`: SCAN with neighbours mined within each coarse class."""

  within_coarse = True
