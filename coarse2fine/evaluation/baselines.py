"""Honest answers on new data: a method's discovered classes next to two k-means baselines (`fit`'s report).

On the evaluation examples whose fine label is known, three clusterings are scored against
the fine labels:
  * the method's own discovered classes (`Model.discover`, each example's among its coarse class's
    children, as the two k-means are), when it discovers classes;
  * k-means inside each coarse class on the inputs, standardised per feature (or channel)
    with the training statistics, as the model sees them;
  * k-means inside each coarse class on the model's features (`Model.embed`), L2-normalised
    as the project's k-means protocol clusters them (evaluation/kmeans.py).
Both k-means use scikit-learn's `KMeans(n_clusters=K_c, n_init=10, random_state=seed)` with
K_c the number of classes the method found under coarse class c (its relation), or, for a
method without classes, the number of known fine classes under c; at least 1, at most the
examples of c. Cluster ids are offset per coarse class, so every cluster has its parent.
Scores (evaluation/discovery.py): Hungarian accuracy (%), ARI and NMI (x 100). If a baseline
matches or beats the method, the method did not help on these data.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from sklearn.cluster import KMeans

from coarse2fine.data.splits import UNKNOWN_FINE, HierarchicalData, Split
from coarse2fine.evaluation.discovery import adjusted_rand_index, cluster_accuracy, normalized_mutual_info
from coarse2fine.methods.common.normalize import l2_normalize_host

INPUTS_ROW = "k-means on the inputs"
FEATURES_ROW = "k-means on its features"


def has_known_fine(split: Split) -> bool:
  return bool((split.fine != UNKNOWN_FINE).any())


def within_coarse_kmeans(x: np.ndarray, coarse: np.ndarray, clusters_per_coarse: Sequence[int],
                         seed: int = 0) -> np.ndarray:
  """[n] cluster ids: k-means with K_c clusters on the examples of each coarse class c, ids offset by sum_{c'<c} K_c'.

  x: [n, d]; coarse: [n] ints in 0..C-1; clusters_per_coarse: [C] ints >= 1.
  """
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  clusters = np.asarray(clusters_per_coarse, np.int64)
  offsets = np.concatenate([[0], np.cumsum(clusters)])
  pred = np.zeros(len(x), np.int64)
  for c in np.unique(coarse):
    members = np.flatnonzero(coarse == c)
    k = int(min(clusters[c], len(members)))
    if k > 1:
      pred[members] = offsets[c] + KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x[members])
    else:
      pred[members] = offsets[c]
  return pred


def scores(pred: np.ndarray, fine: np.ndarray) -> dict[str, float]:
  """{"acc": Hungarian accuracy %, "ari": ARI x 100, "nmi": NMI x 100} of a clustering against fine labels."""
  return {"acc": float(cluster_accuracy(pred, fine)), "ari": float(100 * adjusted_rand_index(pred, fine)),
          "nmi": float(100 * normalized_mutual_info(pred, fine))}


def standardised(inputs, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """[n, D] float64 inputs as the model sees them: (x - mean) / std, images in [0, 1] units, flattened."""
  x = np.asarray(inputs, np.float64)
  if x.ndim == 4:  # uint8 images: per-channel statistics in [0, 1] units
    x = x / 255.0
  return ((x - mean) / std).reshape(len(x), -1)


def discovery_report(model, data: HierarchicalData) -> Optional[dict]:
  """The report of `model` on `data.test`'s examples with a known fine label (module doc), or None if none."""
  split = data.test
  known = np.flatnonzero(split.fine != UNKNOWN_FINE)
  if not len(known):
    return None
  part = split.take(known)
  fine, coarse = np.asarray(part.fine, np.int64), np.asarray(part.coarse, np.int64)
  taxonomy, seed = data.taxonomy, int(model.config.seed)
  rows = {}
  if model.method.discovered(model.state) is not None:
    ids, relation = model.discover(part.inputs, coarse)  # each among its coarse class's children, as k-means below
    clusters = np.asarray(relation, np.int64).sum(0)  # classes the method found under each coarse class
    rows[f"{model.config.method} (its discovered classes)"] = scores(ids, fine)
  else:
    clusters = np.bincount(taxonomy.fine_to_coarse, minlength=taxonomy.num_coarse)
  clusters = np.maximum(clusters, 1)
  inputs = standardised(part.inputs, data.mean, data.std)
  rows[INPUTS_ROW] = scores(within_coarse_kmeans(inputs, coarse, clusters, seed), fine)
  features = l2_normalize_host(model.embed(part.inputs), np.float64)
  rows[FEATURES_ROW] = scores(within_coarse_kmeans(features, coarse, clusters, seed), fine)
  return {"examples": int(len(known)), "transductive": data.test is data.train, "seed": seed,
          "clusters_per_coarse": {str(name): int(k) for name, k in zip(taxonomy.coarse_names, clusters)},
          "coarse_names": [str(name) for name in taxonomy.coarse_names], "rows": rows}


def format_report(report: dict) -> str:
  """The report as a short table for the terminal."""
  where = "the training examples (transductive)" if report["transductive"] else "the held-out examples"
  lines = [f"Fine classes found on the {report['examples']} of {where} with a known fine label:",
           f"  {'':34s} {'acc %':>7s} {'ARI':>7s} {'NMI':>7s}"]
  # results.json keeps its keys sorted: the method's row first, then the two k-means rows, coarse classes in order
  rows = report["rows"]
  baselines = [name for name in (INPUTS_ROW, FEATURES_ROW) if name in rows]
  for name in [name for name in rows if name not in baselines] + baselines:
    lines.append(f"  {name:34s} {rows[name]['acc']:7.1f} {rows[name]['ari']:7.1f} {rows[name]['nmi']:7.1f}")
  clusters = report["clusters_per_coarse"]
  order = report.get("coarse_names", list(clusters))  # reports saved before coarse_names: as stored
  per_coarse = ", ".join(f"{name} {clusters[name]}" for name in order)
  lines.append(f"  (k-means inside each coarse class, clusters per class: {per_coarse})")
  return "\n".join(lines)
