"""How many fine classes each coarse class holds, estimated from features (docs/methods/falcon.md#estimated-k).

`num_fine = "estimate"` (FALCON's K, SCGM's r, SCAN's clusters) calls `estimate_children` before the
first step: per coarse class c, the features of its training examples (at most `max_examples`,
drawn at random) are L2-normalised, projected on their top principal directions, and a
cluster-count criterion picks K_c in 1..k_max. Criteria (compared in benchmarks/estimate_k.py; the default,
`estimate_k.criterion`, is "silhouette"):

* "ded": the procedure of Wang et al. 2018 (DED, "Deep embedding for determining the number of
  clusters", the one FALCON's paper uses), on the given features rather than a convolutional
  autoencoder's: a 2-D t-SNE embedding, then density peaks (Rodriguez & Laio 2014): each point's
  Gaussian-kernel density rho and distance delta to the nearest denser point; centres are the
  points whose gamma = rho * delta (both scaled to [0, 1]) stands out of the rest, here
  gamma > mean + `ded_sigmas` std of gamma (DED thresholds gamma adaptively; this is our rule).
* "silhouette": k-means for k = 2..k_max, the k of highest silhouette; K_c = 1 when even that
  silhouette is below `silhouette_floor` (silhouette is undefined for one cluster).
* "gap": Tibshirani et al.'s gap statistic (2001) with uniform references in the principal-axes box;
  the smallest k with Gap(k) >= Gap(k+1) - s(k+1). Can give 1.
* "bic": Gaussian mixtures (diagonal covariances) for k = 1..k_max, the k of lowest BIC.
* "eigengap": the normalised Laplacian of a symmetric 10-NN graph; K_c is the position of the
  largest gap among its k_max + 1 smallest eigenvalues. Can give 1.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg
from sklearn import metrics as sk_metrics
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from coarse2fine.methods.common.normalize import l2_normalize_host

CRITERIA = ("ded", "silhouette", "gap", "bic", "eigengap")
ESTIMATE = "estimate"  # the value of a method's fine-count field that asks for the estimate


class Estimate(NamedTuple):
  """K_c per coarse class [C] int64, their sum, and how it was found."""

  per_coarse: np.ndarray
  total: int
  criterion: str
  seconds: float

  def record(self, true_per_coarse=None) -> dict:
    """What results.json keeps: per coarse class and total (and the truth when known)."""
    out = {"per_coarse": [int(k) for k in self.per_coarse], "total": self.total, "criterion": self.criterion,
           "seconds": round(self.seconds, 2)}
    if true_per_coarse is not None:
      out["true_per_coarse"] = [int(k) for k in true_per_coarse]
      out["true_total"] = int(np.sum(true_per_coarse))
    return out


def check_settings(criterion: str, k_max: int) -> None:
  """One-line errors for a bad criterion or k_max, before any work."""
  if criterion not in CRITERIA:
    raise ValueError(f"Unknown estimate.criterion {criterion!r}; choose one of {list(CRITERIA)}.")
  if not isinstance(k_max, int) or k_max < 1:
    raise ValueError(f"estimate.k_max must be an integer >= 1 (the most fine classes per coarse class), got {k_max!r}.")


def _project(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
  """[n, D] -> [n, min(dims, n - 1, D)]: L2-normalised rows, centred, on their top principal directions."""
  x = l2_normalize_host(x.reshape(len(x), -1), np.float64)
  dims = min(dims, len(x) - 1, x.shape[1])
  return PCA(dims, random_state=seed).fit_transform(x) if dims >= 1 else x - x.mean(0)


def _kmeans(x: np.ndarray, k: int, seed: int) -> KMeans:
  return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)


def count_silhouette(x: np.ndarray, k_max: int, seed: int, floor: float = 0.1) -> int:
  best_k, best = 1, floor
  for k in range(2, min(k_max, len(x) - 1) + 1):
    labels = _kmeans(x, k, seed).labels_
    score = sk_metrics.silhouette_score(x, labels, sample_size=min(len(x), 1000), random_state=seed)
    if score > best:
      best_k, best = k, score
  return best_k


def count_gap(x: np.ndarray, k_max: int, seed: int, references: int = 5) -> int:
  rng = np.random.default_rng(seed)
  low, high = x.min(0), x.max(0)  # x is already on its principal axes (Tibshirani's variant b)
  k_max = min(k_max, len(x) - 1)

  def log_w(data, k):
    return np.log(_kmeans(data, k, seed).inertia_ if k > 1 else np.sum((data - data.mean(0)) ** 2))

  gaps, spreads = [], []
  for k in range(1, k_max + 2):
    ref = np.array([log_w(rng.uniform(low, high, x.shape), k) for _ in range(references)])
    gaps.append(ref.mean() - log_w(x, k))
    spreads.append(ref.std() * np.sqrt(1 + 1 / references))
  for k in range(1, k_max + 1):
    if gaps[k - 1] >= gaps[k] - spreads[k]:
      return k
  return k_max


def count_bic(x: np.ndarray, k_max: int, seed: int) -> int:
  scores = [GaussianMixture(k, covariance_type="diag", n_init=1, random_state=seed, reg_covar=1e-4).fit(x).bic(x)
            for k in range(1, min(k_max, len(x) - 1) + 1)]
  return int(np.argmin(scores)) + 1


def count_eigengap(x: np.ndarray, k_max: int, seed: int, neighbours: int = 10) -> int:
  neighbours = min(neighbours, len(x) - 1)
  graph = NearestNeighbors(n_neighbors=neighbours + 1).fit(x).kneighbors_graph(x, mode="connectivity")
  graph = graph - sparse.identity(len(x), format="csr")  # no self-loops
  graph = ((graph + graph.T) > 0).astype(np.float64)
  laplacian = csgraph.laplacian(graph, normed=True)
  m = min(k_max + 1, len(x) - 1)
  v0 = np.random.default_rng(seed).standard_normal(len(x))
  values = np.sort(sparse_linalg.eigsh(laplacian, k=m, sigma=-1e-3, which="LM", v0=v0)[0])
  return int(np.argmax(np.diff(values[:k_max + 1]))) + 1


def count_ded(x: np.ndarray, k_max: int, seed: int, sigmas: float = 3.0) -> int:
  """t-SNE to 2-D, then density peaks (see the module docstring); at most k_max centres, at least 1."""
  y = TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
  d = np.sqrt(((y[:, None] - y[None]) ** 2).sum(-1))  # [n, n]; n <= max_examples keeps this small
  cutoff = np.quantile(d[np.triu_indices(len(y), 1)], 0.02)  # Rodriguez & Laio: 1-2% of neighbours within d_c
  rho = np.exp(-(d / cutoff) ** 2).sum(1) - 1
  rank = np.argsort(-rho, kind="stable")
  delta = np.empty(len(y))
  delta[rank[0]] = d[rank[0]].max()
  for i, point in enumerate(rank[1:], 1):
    delta[point] = d[point, rank[:i]].min()
  gamma = (rho / rho.max()) * (delta / delta.max())
  centres = int(np.sum(gamma > gamma.mean() + sigmas * gamma.std()))
  return int(np.clip(centres, 1, k_max))


COUNTERS = {"ded": count_ded, "silhouette": count_silhouette, "gap": count_gap, "bic": count_bic,
            "eigengap": count_eigengap}


def estimate_children(features: np.ndarray, coarse: np.ndarray, num_coarse: int, *, k_max: int = 10,
                      criterion: str = "silhouette", dims: int = 32, max_examples: int = 1000, seed: int = 0,
                      repeats: int = 1) -> Estimate:
  """K_c for every coarse class c from features [N, ...] of examples with coarse labels [N] in 0..C-1 (-1: left out).

  `features` only needs row gathers (`features[indices]`), e.g. `SparseRows`. A class with fewer
  than 3 examples gets K_c = 1. `repeats` > 1: the median K_c over that many draws of the examples
  (and of the criterion's seed), for a steadier count. Deterministic for a given seed.
  """
  check_settings(criterion, k_max)
  start = time.perf_counter()
  coarse = np.asarray(coarse)
  rng = np.random.default_rng(seed)
  counts = np.ones(num_coarse, np.int64)
  for c in range(num_coarse):
    everyone = np.flatnonzero(coarse == c)
    if len(everyone) < 3:
      continue
    found = []
    for r in range(repeats):
      members = everyone
      if len(members) > max_examples:
        members = np.sort(rng.choice(members, max_examples, replace=False))
      x = _project(np.asarray(features[members], np.float64), dims, seed + r)
      found.append(COUNTERS[criterion](x, k_max, seed + r))
    counts[c] = int(np.round(np.median(found)))
  return Estimate(counts, int(counts.sum()), criterion, time.perf_counter() - start)


def fine_count_field(default: int):
  """A config field that holds a count or the string "estimate".

  Typed `object`, so `--config.falcon.num_fine=estimate` and `--config.falcon.num_fine=12` both
  parse from the command line (ml_collections parses an `object` field as a Python literal, else a string).
  """
  from ml_collections import config_dict

  return config_dict.FieldReference(default, field_type=object)


def check_fine_count(field: str, value) -> None:
  """A method's count field must hold an integer >= 0 or "estimate"; anything else is a one-line error."""
  if value == ESTIMATE or (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
    return
  raise ValueError(f"{field}={value!r}: use an integer number of fine classes, or 'estimate' to estimate it "
                   "per coarse class before training.")


def estimate_for_training(data, settings, seed: int, run_features=None) -> Estimate:
  """The estimate for `data`'s main taxonomy from the `estimate_k` config section `settings`.

  Features of the training examples labelled with the main taxonomy (`neighbours.training_features`:
  raw inputs, another run's features or a .npy file).
  """
  from coarse2fine.methods.common.neighbours import training_features

  check_settings(settings.criterion, settings.k_max)
  if settings.features == "inputs":  # rows are gathered per coarse class: sparse inputs are never densified whole
    features = data.train.inputs
  else:
    features = training_features(data, settings.features, run_features, "estimate_k.features")
  main = np.asarray(data.train.dataset_ids) == 0  # with several taxonomies, the first one's examples
  coarse = np.where(main, data.train.coarse, -1)
  return estimate_children(features, coarse, data.num_coarse, k_max=settings.k_max,
                           criterion=settings.criterion, dims=settings.dims, max_examples=settings.max_examples,
                           seed=seed, repeats=settings.get("repeats", 1))


def true_children(data):
  """[C] fine classes per coarse class of the main taxonomy, or None when no fine label is known."""
  if not ((np.asarray(data.train.fine) >= 0).any() or (np.asarray(data.test.fine) >= 0).any()):
    return None
  return np.bincount(data.taxonomy.fine_to_coarse, minlength=data.num_coarse)


def describe(record: dict, coarse_names) -> str:
  """One terminal line: K_c per coarse class by name, the total, and the truth when known."""
  parts = [f"{name}={k}" for name, k in zip(coarse_names, record["per_coarse"])]
  line = f"Estimated fine classes ({record['criterion']}, {record['seconds']:.1f} s): {', '.join(parts)}; " \
         f"total K={record['total']}"
  if "true_total" in record:
    true = ", ".join(f"{name}={k}" for name, k in zip(coarse_names, record["true_per_coarse"]))
    line += f" (true: {true}; total {record['true_total']})"
  return line
