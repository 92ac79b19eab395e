"""FALCON's fine-class discovery metrics: clustering scores and coarse-fine relation graphs.

Labels are non-negative ints ([N] arrays). A relation matrix `M` is [K, C] with 0/1 entries:
row k is fine class (or discovered cluster) k, and a one-hot row names its coarse parent.
Accuracies are in percent; `adjusted_rand_index` and `normalized_mutual_info` are scikit-learn's
scores (fractions) under the names the rest of the library imports, and `discovery_metrics`
reports them x100.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import sklearn.metrics

# Stands in for gmatch4py's `sys.maxsize` (a forbidden assignment). Any value above the cost
# of deleting and re-inserting everything gives the same optimum; 1e9 also keeps float64
# sums exact.
_FORBIDDEN = 1e9


def _labels(x) -> np.ndarray:
  x = np.asarray(x).astype(np.int64).reshape(-1)
  if x.size and x.min() < 0:
    raise ValueError("labels must be non-negative ints")
  return x


def _confusion(pred, true, rows: int, cols: int) -> np.ndarray:
  """[rows, cols] int64 counts W[p, t] of examples with prediction p and label t."""
  w = np.zeros((rows, cols), np.int64)
  np.add.at(w, (pred, true), 1)
  return w


def hungarian_match(pred, true) -> dict[int, int]:
  """Discovered cluster -> true class, maximising the matched count (one-to-one).

  Confusion W[pred, true] of size (max_pred + 1, max_true + 1), solved with
  `linear_sum_assignment(W.max() - W)`; with more clusters than classes (or fewer), the
  surplus clusters (or classes) stay unmatched.
  """
  pred, true = _labels(pred), _labels(true)
  if pred.size == 0:
    return {}
  w = _confusion(pred, true, pred.max() + 1, true.max() + 1)
  rows, cols = scipy.optimize.linear_sum_assignment(w.max() - w)
  return {int(r): int(c) for r, c in zip(rows, cols)}


def cluster_accuracy(pred, true) -> float:
  """Share (%) of examples whose cluster is matched to their class by `hungarian_match`."""
  pred, true = _labels(pred), _labels(true)
  if pred.size == 0:
    return float("nan")
  w = _confusion(pred, true, pred.max() + 1, true.max() + 1)
  matched = sum(w[p, t] for p, t in hungarian_match(pred, true).items())
  return 100.0 * matched / pred.size


def macro_accuracy(pred, true) -> float:
  """Mean over the true classes present of per-class accuracy (%), after Hungarian matching.

  The matching uses a square D x D confusion, D = max(max_pred, max_true) + 1, so every
  cluster gets a partner; a cluster matched to a label that never occurs is simply wrong.
  """
  pred, true = _labels(pred), _labels(true)
  if pred.size == 0:
    return float("nan")
  d = max(pred.max(), true.max()) + 1
  w = _confusion(pred, true, d, d)
  rows, cols = scipy.optimize.linear_sum_assignment(w.max() - w)
  mapping = np.full(d, -1, np.int64)  # -1: unmatched, never equal to a label
  mapping[rows] = cols
  correct = mapping[pred] == true
  classes = np.unique(true)
  per_class = [correct[true == c].mean() for c in classes]
  return 100.0 * float(np.mean(per_class))


def adjusted_rand_index(pred, true) -> float:
  """Adjusted Rand index (fraction, 1 = identical partitions): scikit-learn's `adjusted_rand_score`.

  Pairs of examples together in both partitions against the chance expectation given the
  cluster sizes; any int labels. Partitions without a chance level (one cluster each, or
  singletons each, or no examples) score 1.
  """
  return float(sklearn.metrics.adjusted_rand_score(_flat(true), _flat(pred)))


def normalized_mutual_info(pred, true) -> float:
  """NMI (fraction): scikit-learn's `normalized_mutual_info_score` with the arithmetic-mean normaliser.

  MI / ((H(pred) + H(true)) / 2), in nats; arithmetic is scikit-learn's default, named here so that a
  change of default cannot change the metric. Both labelings a single cluster count as a perfect match (1).
  """
  return float(sklearn.metrics.normalized_mutual_info_score(_flat(true), _flat(pred), average_method="arithmetic"))


def _flat(x) -> np.ndarray:
  return np.asarray(x).reshape(-1)


# ----------------------------------------------------------------------------- relations


def _bipartite_adjacency(m) -> np.ndarray:
  """[K + C, K + C] symmetric 0/1 adjacency: fine nodes 0..K-1, coarse nodes K..K+C-1."""
  m = (np.asarray(m) != 0).astype(np.int64)
  k, c = m.shape
  adj = np.zeros((k + c, k + c), np.int64)
  adj[:k, k:] = m
  adj[k:, :k] = m.T
  return adj


def ged_cost_matrix(adj_g, adj_h) -> np.ndarray:
  """[(n + m), (n + m)] edit costs of gmatch4py's GraphEditDistance(1, 1, 1, 1), G -> H.

  Nodes are identified by their index (id) in the two adjacency matrices ([n, n], [m, m]).
  Blocks (rows: nodes of G then m insertion slots; columns: nodes of H then n deletion slots):
    * [:n, :m] substitute i by j: same id -> 0 if the degrees agree, else the size of the
      symmetric difference of their incident edge sets (edges keyed by neighbour ids);
      different ids -> 2 (delete + insert) if i, j are adjacent in G, else 3 + deg_H(j)
      if id j is not a node of G, else forbidden;
    * [:n, m:] delete i: 1 + deg_G(i) on the diagonal, forbidden elsewhere;
    * [n:, :m] insert j: 1 + deg_H(j) on the diagonal, forbidden elsewhere;
    * [n:, m:] zeros.
  """
  adj_g = np.asarray(adj_g) != 0
  adj_h = np.asarray(adj_h) != 0
  n, m = len(adj_g), len(adj_h)
  deg_g, deg_h = adj_g.sum(1), adj_h.sum(1)
  # Neighbour sets over a common id range, for the symmetric differences.
  size = max(n, m)
  pad_g = np.zeros((size, size), bool)
  pad_h = np.zeros((size, size), bool)
  pad_g[:n, :n] = adj_g
  pad_h[:m, :m] = adj_h

  sub = np.full((n, m), _FORBIDDEN)
  rows, cols = np.nonzero(adj_g[:, :min(n, m)])  # G-edges i -- j where j is also a node of H
  sub[rows, cols] = 2.0
  if m > n:  # ids of H missing from G
    sub[:, n:] = 3.0 + deg_h[n:]
  same = np.arange(min(n, m))
  sym_diff = (pad_g[same] != pad_h[same]).sum(1)
  sub[same, same] = np.where(deg_g[same] == deg_h[same], 0.0, sym_diff)

  cost = np.zeros((n + m, n + m))
  cost[:n, :m] = sub
  cost[:n, m:] = _FORBIDDEN
  cost[:n, m:][np.arange(n), np.arange(n)] = 1.0 + deg_g
  cost[n:, :m] = _FORBIDDEN
  cost[n:, :m][np.arange(m), np.arange(m)] = 1.0 + deg_h
  return cost


def ged_official(m_learned, m_true) -> float:
  """FALCON's graph edit distance between relation graphs ([K, C] and [K', C] 0/1).

  Reproduces `gmatch4py.GraphEditDistance(1, 1, 1, 1).compare([G_learned, G_true])[0, 1]`
  on `networkx.from_numpy_array` of the bipartite adjacency (fine nodes 0..K-1 then coarse
  nodes K..K+C-1): the bipartite (Riesen-Bunke) approximation, i.e. the total cost of the
  optimal assignment of `ged_cost_matrix(G, H)`.

  It is not a graph distance up to isomorphism: nodes are tied to their ids, and a node
  keeping its id and its degree costs nothing even when its edges changed. Every fine node
  has degree 1 in both graphs, so fine nodes are free, and a coarse node costs nothing when
  it has its true number of children, whichever fine nodes they are. Hence the GED is 0
  whenever every coarse class gets its true number of children (e.g. any permutation of
  the fine nodes of the true graph), whatever the parents of the individual fine classes.
  With the same K, the optimum works out to (checked against brute force in the tests)

    GED = sum over coarse c with n_c != n_c_true of min(|S_c ^ T_c|, 4 if n_c > 0 else inf),

  S_c, T_c the learned and true child-id sets: keeping c costs the symmetric difference,
  while swapping c with one of its learned children (ids adjacent in G) costs 2 + 2; the
  swap needs a learned child, which makes the distance asymmetric. `ged_invariant` is the
  id-free count.

  The two graphs must have the same number of coarse classes; with K != K' the coarse node
  ids shift and the distance follows gmatch4py's rules for ids missing from one graph.
  """
  m_learned, m_true = np.asarray(m_learned), np.asarray(m_true)
  if m_learned.shape[1] != m_true.shape[1]:
    raise ValueError(f"coarse class counts differ: {m_learned.shape} vs {m_true.shape}")
  cost = ged_cost_matrix(_bipartite_adjacency(m_learned), _bipartite_adjacency(m_true))
  rows, cols = scipy.optimize.linear_sum_assignment(cost)
  return float(cost[rows, cols].sum())


def ged_invariant(m_learned, m_true) -> float:
  """sum_c |n_c - n_c_true|, n_c the number of children of coarse class c (id-free)."""
  n_learned = (np.asarray(m_learned) != 0).sum(0)
  n_true = (np.asarray(m_true) != 0).sum(0)
  return float(np.abs(n_learned - n_true).sum())


def _parents(m) -> np.ndarray:
  """[K] coarse parent of each row of a 0/1 relation matrix, -1 for a row without one."""
  m = np.asarray(m)
  return np.where(m.any(1), m.argmax(1), -1) if m.shape[0] else np.zeros(0, np.int64)


def relation_accuracy(pred, true_fine, m_learned, fine_to_coarse_true) -> float:
  """Share (%) of true fine classes whose matched discovered class has the right parent.

  Discovered clusters are matched to true fine classes by `hungarian_match(pred,
  true_fine)`; true class t scores when its cluster p has M_learned[p] = parent of t. True
  classes left unmatched (or matched to a cluster without a row in M_learned) score 0.
  Stricter than the GED: children under the wrong parent count even when the child counts
  (and so `ged_official`) are right.
  """
  fine_to_coarse_true = np.asarray(fine_to_coarse_true).reshape(-1)
  parents = _parents(m_learned)
  cluster_of = {t: p for p, t in hungarian_match(pred, true_fine).items()}
  right = 0
  for t, parent in enumerate(fine_to_coarse_true):
    p = cluster_of.get(t)
    right += p is not None and p < len(parents) and parents[p] == parent
  return 100.0 * right / len(fine_to_coarse_true)


def relation_from_clusters(pred, coarse, num_clusters: int, num_coarse: int) -> np.ndarray:
  """[num_clusters, num_coarse] 0/1 relation: each cluster's parent is its majority coarse label.

  For methods that only output clusters. Ties go to the smallest coarse id; an empty
  cluster gets parent 0 (it never matches anything, so it only affects the GED).
  """
  counts = _confusion(_labels(pred), _labels(coarse), num_clusters, num_coarse)
  m = np.zeros((num_clusters, num_coarse), np.int64)
  m[np.arange(num_clusters), counts.argmax(1)] = 1
  return m


def predict_within_coarse(logits, coarse, relation) -> np.ndarray:
  """[N] the highest-scoring class among the children of each example's coarse label.

  logits: [N, K]; coarse: [N] ints; relation: [K, C] 0/1 (row k marks class k's parent). An
  example whose coarse class has no child in `relation` keeps its plain argmax. This is how a
  user with coarse labels reads the discovered classes (and how `kmeans_within` clusters).
  """
  logits, coarse, relation = np.asarray(logits), _labels(coarse), np.asarray(relation).astype(bool)
  allowed = relation.T[coarse]  # [N, K]
  allowed[~allowed.any(1)] = True
  return np.where(allowed, logits, -np.inf).argmax(1)


def fine_to_coarse_matrix(fine_to_coarse, num_coarse: int | None = None) -> np.ndarray:
  """[K, C] one-hot relation matrix of a [K] fine -> coarse map."""
  fine_to_coarse = _labels(fine_to_coarse)
  if num_coarse is None:
    num_coarse = int(fine_to_coarse.max()) + 1
  m = np.zeros((len(fine_to_coarse), num_coarse), np.int64)
  m[np.arange(len(fine_to_coarse)), fine_to_coarse] = 1
  return m


def discovery_metrics(pred, true_fine, m_learned, fine_to_coarse_true, prefix: str = "discovery",
                      tag: str = "") -> dict[str, float]:
  """All discovery metrics in percent (GEDs in edits), keyed `{prefix}/{tag}{name}`.

  Names: acc, macro_acc, ari, nmi, ged, ged_invariant, relation_acc. `tag` (e.g.
  "kmeans_") distinguishes several clusterings under one prefix.
  pred, true_fine: [N] ints; m_learned: [K, C] 0/1; fine_to_coarse_true: [K_true] ints.
  """
  m_learned = np.asarray(m_learned)
  m_true = fine_to_coarse_matrix(fine_to_coarse_true, m_learned.shape[1])
  values = {
      "acc": cluster_accuracy(pred, true_fine),
      "macro_acc": macro_accuracy(pred, true_fine),
      "ari": 100.0 * adjusted_rand_index(pred, true_fine),
      "nmi": 100.0 * normalized_mutual_info(pred, true_fine),
      "ged": ged_official(m_learned, m_true),
      "ged_invariant": ged_invariant(m_learned, m_true),
      "relation_acc": relation_accuracy(pred, true_fine, m_learned, fine_to_coarse_true),
  }
  return {f"{prefix}/{tag}{name}": float(value) for name, value in values.items()}


WITHIN_NAMES = ("acc", "macro_acc", "ari", "nmi")  # the relation is the plain clustering's: its scores repeat


def within_coarse_metrics(logits, coarse, true_fine, m_learned, fine_to_coarse_true,
                          prefix: str = "discovery") -> dict[str, float]:
  """`{prefix}/clusters_within_{acc, macro_acc, ari, nmi}` of `predict_within_coarse(logits, coarse, m_learned)`."""
  pred = predict_within_coarse(logits, coarse, m_learned)
  found = discovery_metrics(pred, true_fine, m_learned, fine_to_coarse_true, prefix, tag="clusters_within_")
  return {f"{prefix}/clusters_within_{name}": found[f"{prefix}/clusters_within_{name}"] for name in WITHIN_NAMES}
