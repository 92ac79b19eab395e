"""k-means fine-class discovery for methods that only give embeddings.

Two clusterings of L2-normalised embeddings, both scikit-learn `KMeans(n_init=10,
random_state=seed)`:
  * overall: one k-means with `num_clusters` clusters; each cluster's coarse parent is the
    majority coarse label of its members (`relation_from_clusters`);
  * within: one k-means per coarse class c with that class's number of children, on the
    examples of class c; cluster ids are offset by the children of the classes before c,
    so cluster ids are global and the parent of every cluster is known by construction.

Metric keys (one slash, like the rest of the repo): `discovery/kmeans_{name}` for the
overall clustering and `discovery/kmeans_within_{name}` for the within-coarse one, with
the names of `discovery_metrics` (acc, macro_acc, ari, nmi, ged, ged_invariant,
relation_acc).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.cluster import KMeans

from coarse2fine.evaluation.discovery import discovery_metrics, relation_from_clusters
from coarse2fine.methods.common.normalize import l2_normalize_host


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
  """[n] cluster ids in 0..k-1; k is clipped to the number of examples (sklearn needs n >= k)."""
  k = min(k, len(x))
  if k <= 1:
    return np.zeros(len(x), np.int64)
  return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x).astype(np.int64)


def kmeans_discovery(embeddings, coarse, num_clusters: int, children_per_coarse: Sequence[int],
                     seed: int = 0) -> dict[str, np.ndarray]:
  """Overall and within-coarse k-means clusterings with their relation matrices.

  embeddings: [N, d]; coarse: [N] ints in 0..C-1; children_per_coarse: [C] ints.
  Returns overall_pred [N], overall_M [num_clusters, C], within_pred [N] and
  within_M [sum(children_per_coarse), C] (0/1, one-hot rows). A coarse class with fewer
  examples than children gets one cluster per example; its other clusters stay empty.
  """
  x = l2_normalize_host(embeddings, np.float64)
  coarse = np.asarray(coarse).astype(np.int64).reshape(-1)
  children = np.asarray(children_per_coarse, np.int64).reshape(-1)
  num_coarse = len(children)
  if coarse.size and coarse.max() >= num_coarse:
    raise ValueError(f"coarse label {coarse.max()} but only {num_coarse} children counts")

  overall_pred = _kmeans(x, num_clusters, seed)
  overall_m = relation_from_clusters(overall_pred, coarse, num_clusters, num_coarse)

  offsets = np.concatenate([[0], np.cumsum(children)])
  within_pred = np.zeros(len(x), np.int64)
  within_m = np.zeros((offsets[-1], num_coarse), np.int64)
  for c in range(num_coarse):
    within_m[offsets[c]:offsets[c + 1], c] = 1
    members = np.flatnonzero(coarse == c)
    if len(members) and children[c] > 0:
      within_pred[members] = offsets[c] + _kmeans(x[members], int(children[c]), seed)
    elif len(members):
      raise ValueError(f"coarse class {c} has examples but no children to cluster them into")
  return {"overall_pred": overall_pred, "overall_M": overall_m,
          "within_pred": within_pred, "within_M": within_m}


def kmeans_metrics(embeddings, coarse, fine_true, fine_to_coarse_true, num_clusters: int | None = None,
                   children_per_coarse: Sequence[int] | None = None, seed: int = 0,
                   prefix: str = "discovery") -> dict[str, float]:
  """`{prefix}/kmeans_*` and `{prefix}/kmeans_within_*` discovery metrics (see module doc).

  embeddings: [N, d]; coarse, fine_true: [N] ints; fine_to_coarse_true: [K] ints. By
  default the number of clusters is the true K and the children per coarse class are the
  true counts (the oracle setting where the taxonomy sizes are known).
  """
  fine_to_coarse_true = np.asarray(fine_to_coarse_true).astype(np.int64).reshape(-1)
  coarse = np.asarray(coarse).astype(np.int64).reshape(-1)
  num_coarse = int(max(fine_to_coarse_true.max(), coarse.max() if coarse.size else 0)) + 1
  if children_per_coarse is None:
    children_per_coarse = np.bincount(fine_to_coarse_true, minlength=num_coarse)
  if num_clusters is None:
    num_clusters = len(fine_to_coarse_true)
  found = kmeans_discovery(embeddings, coarse, num_clusters, children_per_coarse, seed)
  metrics = discovery_metrics(found["overall_pred"], fine_true, found["overall_M"],
                              fine_to_coarse_true, prefix, tag="kmeans_")
  metrics.update(discovery_metrics(found["within_pred"], fine_true, found["within_M"],
                                   fine_to_coarse_true, prefix, tag="kmeans_within_"))
  return metrics
