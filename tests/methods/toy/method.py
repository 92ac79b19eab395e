"""A method defined entirely outside the library: one class, its config section, its registration.

Toy: a linear embedding of the flattened inputs and r linear "cluster" scores; cluster k
belongs to coarse class k mod C, and the coarse log-probability is the log-sum of its
clusters' (the same head as FALCON's or SCGM's coarse marginal). Trained by cross-entropy
on coarse labels. Importing this module registers it as "toy"; a config names the module in
`method_modules` so that every command that reads the run (evaluate, plot, the API's `load`)
registers it too.
"""

from __future__ import annotations

import flax.linen as nn
import ml_collections
import numpy as np
import optax

from coarse2fine.methods import Discovered, LossAux, Method, register_method
from coarse2fine.methods.base import coarse_logits_from_fine

MODULE = __name__


class ToyNet(nn.Module):
  embedding_dim: int
  num_clusters: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = nn.Dense(self.embedding_dim, name="embed")(x.reshape((x.shape[0], -1)))
    return {"features": features, "embedding": features,
            "logits": nn.Dense(self.num_clusters, name="clusters")(features)}


class Toy(Method):
  fine_count_field = "toy.num_clusters"

  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    toy = ml_collections.ConfigDict()
    toy.num_clusters = 6  # r, clusters; cluster k belongs to coarse class k mod C
    toy.embedding_dim = 8  # width of the linear embedding
    return {"toy": toy}

  def __init__(self, config, data):
    super().__init__(config, data)
    self.num_clusters = config.toy.num_clusters
    self.parents = np.arange(self.num_clusters) % data.num_coarse
    self._model = ToyNet(config.toy.embedding_dim, self.num_clusters)

  def loss(self, params, state, batch, rng):
    outputs = self._model.apply({"params": params}, batch.views[:, 0])
    log_p = coarse_logits_from_fine(outputs["logits"], self.parents, self.data.num_coarse)
    ce = optax.softmax_cross_entropy_with_integer_labels(log_p, batch.coarse).mean()
    return ce, LossAux({"train/ce": ce}, state.batch_stats, state.extra)

  def predict(self, state, inputs):
    outputs = self._model.apply({"params": state.params}, inputs)
    return {"coarse_logits": coarse_logits_from_fine(outputs["logits"], self.parents, self.data.num_coarse),
            "cluster_logits": outputs["logits"], "features": outputs["features"],
            "embedding": outputs["embedding"]}

  def discovered(self, state):
    return Discovered([np.eye(self.data.num_coarse, dtype=np.int64)[self.parents]])


register_method("toy", Toy)
