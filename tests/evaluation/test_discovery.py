"""Discovery metrics against brute force, scikit-learn and hand-worked relation graphs."""

import itertools

import numpy as np
import pytest

from coarse2fine.evaluation import discovery as d


def _one_hot(parents, num_coarse):
  return d.fine_to_coarse_matrix(np.asarray(parents), num_coarse)


# ----------------------------------------------------------------------------- clustering


def _brute_matches(pred, true):
  """All one-to-one cluster -> class maps (as dicts), with their matched counts."""
  clusters, classes = range(max(pred) + 1), range(max(true) + 1)
  size = max(len(clusters), len(classes))
  out = []
  for perm in itertools.permutations(range(size)):
    mapping = {p: perm[p] for p in clusters if perm[p] in classes}
    out.append((mapping, sum(mapping.get(p) == t for p, t in zip(pred, true))))
  return out


@pytest.mark.parametrize("num_pred,num_true", [(4, 4), (3, 5), (5, 3), (1, 3)])
def test_cluster_accuracy_matches_brute_force(num_pred, num_true):
  rng = np.random.default_rng(num_pred * 10 + num_true)
  for _ in range(5):
    pred, true = rng.integers(0, num_pred, 30), rng.integers(0, num_true, 30)
    best = max(count for _, count in _brute_matches(pred, true))
    assert d.cluster_accuracy(pred, true) == pytest.approx(100 * best / 30)
    match = d.hungarian_match(pred, true)
    assert sum(match.get(p) == t for p, t in zip(pred, true)) == best
    assert len(set(match.values())) == len(match) == min(pred.max(), true.max()) + 1


def test_macro_accuracy_matches_brute_force():
  rng = np.random.default_rng(0)
  for num_pred, num_true in [(4, 4), (3, 5), (5, 3)]:
    pred, true = rng.integers(0, num_pred, 40), rng.integers(0, num_true, 40)
    size = max(pred.max(), true.max()) + 1  # the square D x D matching
    scored = []
    for perm in itertools.permutations(range(size)):
      correct = np.array(perm)[pred] == true
      macro = 100 * np.mean([correct[true == c].mean() for c in np.unique(true)])
      scored.append((correct.sum(), round(macro, 9)))
    best = max(count for count, _ in scored)
    # Count-optimal matchings can tie yet differ in macro terms: any of them is right.
    assert round(d.macro_accuracy(pred, true), 9) in {macro for count, macro in scored if count == best}


def test_macro_accuracy_weights_classes_equally():
  true = np.array([0] * 8 + [1] * 2)
  pred = np.array([0] * 8 + [0, 1])
  assert d.cluster_accuracy(pred, true) == pytest.approx(90.0)
  assert d.macro_accuracy(pred, true) == pytest.approx(75.0)


def _labelings(rng):
  n = 50
  yield rng.integers(0, 5, n), rng.integers(0, 4, n)
  yield rng.integers(0, 3, n), rng.integers(0, 12, n)
  a = rng.integers(0, 6, n)
  yield a, a  # identical
  yield a, (a + 2) % 6  # identical up to renaming
  yield np.zeros(n, int), rng.integers(0, 4, n)  # a single cluster
  yield np.zeros(n, int), np.zeros(n, int)
  yield np.arange(n), rng.integers(0, 4, n)  # all singletons
  yield np.arange(n), np.arange(n)[::-1]
  yield np.arange(n), np.zeros(n, int)
  yield np.array([7]), np.array([3])  # one example
  yield np.array([0, 1]), np.array([0, 0])


def _brute_ari(pred, true):
  """Hubert and Arabie's adjusted Rand index from its definition: a loop over every pair of examples.

  index = pairs together in both partitions; expected = together in pred x together in true / all
  pairs; ARI = (index - expected) / (mean of the two together-counts - expected). Without a chance
  level (the denominator 0: both partitions trivial in the same way) the partitions agree: 1.
  """
  n = len(pred)
  both = in_pred = in_true = 0
  for i, j in itertools.combinations(range(n), 2):
    same_pred, same_true = pred[i] == pred[j], true[i] == true[j]
    both += same_pred and same_true
    in_pred += same_pred
    in_true += same_true
  pairs = n * (n - 1) / 2
  if pairs == 0:
    return 1.0
  expected = in_pred * in_true / pairs
  denominator = (in_pred + in_true) / 2 - expected
  return 1.0 if denominator == 0 else (both - expected) / denominator


def _brute_nmi(pred, true):
  """MI / mean(H(pred), H(true)) in nats, each probability counted example by example.

  A single cluster on both sides is a perfect match (1); otherwise zero MI gives 0.
  """
  n = len(pred)
  p_pred = {a: sum(x == a for x in pred) / n for a in set(pred)}
  p_true = {b: sum(y == b for y in true) / n for b in set(true)}
  mi = 0.0
  for a in p_pred:
    for b in p_true:
      joint = sum(x == a and y == b for x, y in zip(pred, true)) / n
      if joint > 0:
        mi += joint * np.log(joint / (p_pred[a] * p_true[b]))
  h_pred = -sum(p * np.log(p) for p in p_pred.values())
  h_true = -sum(p * np.log(p) for p in p_true.values())
  if len(p_pred) == len(p_true) == 1:
    return 1.0
  if mi <= 1e-12:
    return 0.0
  return mi / ((h_pred + h_true) / 2)


def test_ari_nmi_match_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(3):
    for pred, true in _labelings(rng):
      pred, true = [int(x) for x in pred], [int(y) for y in true]
      assert d.adjusted_rand_index(pred, true) == pytest.approx(_brute_ari(pred, true), abs=1e-9)
      assert d.normalized_mutual_info(pred, true) == pytest.approx(_brute_nmi(pred, true), abs=1e-9)


def test_ari_nmi_hand_worked():
  # pred {0,1,2},{3,4,5} vs true {0,1},{2,3},{4,5}: 2 pairs together in both, 6 in pred, 3 in true, 15 in all.
  pred, true = [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]
  expected = 6 * 3 / 15
  assert d.adjusted_rand_index(pred, true) == pytest.approx((2 - expected) / ((6 + 3) / 2 - expected))
  # Joint cells 2/6, 1/6, 1/6, 2/6 against marginals 1/2 x 1/3: the 1/6 cells add 0, MI = (2/3) log 2.
  mi = 2 * (2 / 6) * np.log((2 / 6) / (1 / 2 * 1 / 3))
  h_pred, h_true = np.log(2), np.log(3)
  assert d.normalized_mutual_info(pred, true) == pytest.approx(mi / ((h_pred + h_true) / 2))
  # Labels need not start at 0 or be contiguous.
  assert d.adjusted_rand_index([7, 7, 9], [-1, -1, 4]) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- relation graphs


def _graph(m):
  """(node ids, {node: set of neighbour ids}) of the bipartite relation graph."""
  k, c = np.asarray(m).shape
  nbrs = {v: set() for v in range(k + c)}
  for f, p in zip(*np.nonzero(m)):
    nbrs[f].add(k + p)
    nbrs[k + p].add(f)
  return nbrs


def _official_cost(g, h, i, j):
  """gmatch4py's substitution cost of G-node i by H-node j (None: forbidden), unit costs."""
  if i == j:
    return 0 if len(g[i]) == len(h[j]) else len(g[i] ^ h[j])
  if j in g[i]:
    return 2
  if j not in g:
    return 2 + 1 + len(h[j])
  return None


def _brute_force_ged(m_g, m_h):
  """Minimum over all partial node maps G -> H of substitutions + deletions + insertions.

  This is what the (n + m) x (n + m) assignment problem minimises: each G node is either
  substituted (by a distinct H node) or deleted, the H nodes left over are inserted.
  """
  g, h = _graph(m_g), _graph(m_h)
  g_nodes = sorted(g)
  best = [np.inf]

  def search(pos, used, cost):
    if cost >= best[0]:
      return
    if pos == len(g_nodes):
      best[0] = min(best[0], cost + sum(1 + len(h[j]) for j in h if j not in used))
      return
    i = g_nodes[pos]
    search(pos + 1, used, cost + 1 + len(g[i]))  # delete i
    for j in h:
      if j not in used:
        sub = _official_cost(g, h, i, j)
        if sub is not None:
          search(pos + 1, used | {j}, cost + sub)

  search(0, frozenset(), 0)
  return best[0]


def test_ged_official_matches_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(60):
    k, c = rng.integers(2, 6), rng.integers(1, 4)
    m_g, m_h = _one_hot(rng.integers(0, c, k), c), _one_hot(rng.integers(0, c, k), c)
    assert d.ged_official(m_g, m_h) == _brute_force_ged(m_g, m_h)
  for _ in range(20):  # a different number of fine classes: coarse ids shift
    c = rng.integers(1, 3)
    m_g = _one_hot(rng.integers(0, c, rng.integers(2, 5)), c)
    m_h = _one_hot(rng.integers(0, c, rng.integers(2, 5)), c)
    assert d.ged_official(m_g, m_h) == _brute_force_ged(m_g, m_h)


def test_ged_official_zero_when_child_counts_match():
  rng = np.random.default_rng(1)
  truth = np.repeat(np.arange(3), 4)  # balanced: 3 coarse x 4 fine
  for _ in range(10):
    learned = rng.permutation(truth)
    assert d.ged_official(_one_hot(learned, 3), _one_hot(truth, 3)) == 0
  unbalanced = np.array([0, 0, 0, 1, 2, 2])
  assert d.ged_official(_one_hot(rng.permutation(unbalanced), 3), _one_hot(unbalanced, 3)) == 0


def test_ged_official_closed_form():
  """Per coarse node with the wrong child count: min(symmetric difference, 4 via a swap)."""
  rng = np.random.default_rng(2)
  for _ in range(200):
    k, c = rng.integers(2, 12), rng.integers(1, 5)
    m_g, m_h = _one_hot(rng.integers(0, c, k), c), _one_hot(rng.integers(0, c, k), c)
    expected = 0
    for cc in range(c):
      n_g, n_h = m_g[:, cc].sum(), m_h[:, cc].sum()
      if n_g != n_h:
        sym = int((m_g[:, cc] != m_h[:, cc]).sum())
        expected += min(sym, 4) if n_g > 0 else sym
    assert d.ged_official(m_g, m_h) == expected


def test_ged_by_hand():
  truth = _one_hot([0, 0, 1, 1], 2)
  everything_under_0 = _one_hot([0, 0, 0, 0], 2)
  # Coarse node 4 keeps {0, 1} and gains {2, 3}: 2; coarse node 5 loses {2, 3}: 2.
  assert d.ged_official(everything_under_0, truth) == 4
  assert d.ged_invariant(everything_under_0, truth) == 4
  # Each coarse node's child sets differ by 5 edges; swapping it with a learned child costs 2 + 2.
  learned, true = _one_hot([0, 0, 0, 1, 1, 1], 2), _one_hot([1, 1, 1, 0, 0, 1], 2)
  assert d.ged_official(learned, true) == 8
  assert d.ged_invariant(learned, true) == 2
  # Asymmetric: the swap needs a child in the learned graph (G).
  empty_1, true = _one_hot([0, 0, 0, 0, 0, 0], 2), _one_hot([0, 1, 1, 1, 1, 1], 2)
  assert d.ged_official(empty_1, true) == 4 + 5
  assert d.ged_official(true, empty_1) == 4 + 4


def test_ged_invariant_by_hand():
  learned = _one_hot([0, 0, 0, 2, 2, 2], 3)  # counts 3, 0, 3
  true = _one_hot([0, 1, 1, 2, 2, 2], 3)  # counts 1, 2, 3
  assert d.ged_invariant(learned, true) == 2 + 2 + 0
  assert d.ged_invariant(true, true) == 0


def test_relation_accuracy():
  fine_to_coarse = np.array([0, 0, 1, 1])
  true = np.repeat(np.arange(4), 5)
  pred = (true + 1) % 4  # cluster p holds class p - 1
  right = _one_hot([1, 0, 0, 1], 2)  # parent of cluster p = parent of class p - 1
  assert d.relation_accuracy(pred, true, right, fine_to_coarse) == 100
  # Swapping the parents of clusters 1 and 3 keeps every child count, so the GED is 0,
  # but classes 0 and 2 now sit under the wrong coarse class.
  swapped = _one_hot([1, 1, 0, 0], 2)
  assert d.ged_official(swapped, _one_hot(fine_to_coarse, 2)) == 0
  assert d.relation_accuracy(pred, true, swapped, fine_to_coarse) == 50
  # Only three clusters: class 3 is unmatched and counts as wrong.
  pred3 = np.minimum(true, 2)
  assert d.relation_accuracy(pred3, true, _one_hot([0, 0, 1], 2), fine_to_coarse) == 75


def test_relation_from_clusters():
  pred = np.array([0, 0, 0, 1, 1, 3, 3])
  coarse = np.array([1, 1, 0, 0, 2, 2, 2])
  m = d.relation_from_clusters(pred, coarse, num_clusters=4, num_coarse=3)
  np.testing.assert_array_equal(m.argmax(1), [1, 0, 0, 2])  # 1 ties 0/2 -> 0; 2 is empty -> 0
  np.testing.assert_array_equal(m.sum(1), 1)


def test_discovery_metrics_keys_and_perfect_scores():
  fine_to_coarse = np.array([0, 0, 1, 2, 2])
  true = np.repeat(np.arange(5), 4)
  pred = (true + 2) % 5
  m = _one_hot(fine_to_coarse[(np.arange(5) - 2) % 5], 3)
  metrics = d.discovery_metrics(pred, true, m, fine_to_coarse)
  assert set(metrics) == {f"discovery/{k}" for k in (
      "acc", "macro_acc", "ari", "nmi", "ged", "ged_invariant", "relation_acc")}
  for key in ("acc", "macro_acc", "ari", "nmi", "relation_acc"):
    assert metrics[f"discovery/{key}"] == pytest.approx(100.0)
  assert metrics["discovery/ged"] == metrics["discovery/ged_invariant"] == 0
  tagged = d.discovery_metrics(pred, true, m, fine_to_coarse, prefix="val", tag="x_")
  assert "val/x_acc" in tagged


def test_predict_within_coarse_matches_a_loop_over_examples():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(200, 7))
  coarse = rng.integers(0, 3, size=200)
  relation = np.zeros((7, 3), np.int64)
  relation[np.arange(7), [0, 0, 1, 1, 1, 0, 0]] = 1  # coarse class 2 has no child: plain argmax there
  expected = []
  for row, c in zip(logits, coarse):
    children = [k for k in range(7) if relation[k, c]] or list(range(7))
    expected.append(max(children, key=lambda k: row[k]))
  got = d.predict_within_coarse(logits, coarse, relation)
  np.testing.assert_array_equal(got, expected)
  assert (relation[got[coarse < 2], coarse[coarse < 2]] == 1).all()
  assert not np.array_equal(got, logits.argmax(1))  # the restriction changed something
