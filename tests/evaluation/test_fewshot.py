"""Few-shot protocol: episodes against a transcription, the solver against scikit-learn."""

import numpy as np
import pytest
import scipy.stats
from sklearn.linear_model import LogisticRegression

from coarse2fine.evaluation import fewshot
from coarse2fine.evaluation.logistic import fit_logreg, fit_predict_logreg

# 6 coarse classes with 2 to 5 fine children each (20 fine classes), 30 examples per class.
FINE_TO_COARSE = np.repeat(np.arange(6), [2, 5, 3, 4, 2, 4])
NUM_FINE = len(FINE_TO_COARSE)


def _pool(per_class=30, seed=0):
  rng = np.random.RandomState(seed)
  fine = rng.permutation(np.repeat(np.arange(NUM_FINE), per_class))
  return fine


def _clustered(fine, dim, noise, seed=0):
  """ReLU'd class centres plus a shared offset and noise, L2-normalised: [N, dim]."""
  rng = np.random.RandomState(seed)
  centres = rng.randn(NUM_FINE, dim)
  x = np.maximum(np.abs(rng.randn(dim)) + centres[fine] + noise * rng.randn(len(fine), dim), 0)
  return _unit(x)


def _reference_episode(fine, setting, n_way, k, q, e):
  """The protocol as written: global np.random seeded with the episode index."""
  state = np.random.get_state()
  try:
    np.random.seed(e)
    classes = np.unique(fine)
    if setting == "nway":
      chosen = np.random.choice(classes, n_way, replace=False) if len(classes) > n_way else classes
    elif setting == "allway":
      chosen = classes
    else:
      coarse = np.random.choice(np.unique(FINE_TO_COARSE[classes]))
      chosen = classes[FINE_TO_COARSE[classes] == coarse]
    support, query = [], []
    for c in chosen:
      members = np.where(fine == c)[0]
      s = np.random.choice(members, k, replace=False)
      support.append(s)
      query.append(np.random.choice(np.setdiff1d(members, s), q, replace=False))
    return np.asarray(chosen), np.concatenate(support), np.concatenate(query)
  finally:
    np.random.set_state(state)


@pytest.mark.parametrize("setting,n_way,k",
                         [("nway", 5, 1), ("nway", 25, 5), ("allway", None, 2), ("intra", None, 3)])
def test_episodes_match_transcription(setting, n_way, k):
  fine = _pool()
  seed = 3
  ep = fewshot.sample_episodes(fine, FINE_TO_COARSE, setting, n_way, k, n_query=7, num_episodes=6, seed=seed)
  for e in range(6):
    chosen, support, query = _reference_episode(fine, setting, n_way, k, 7, seed + e)
    w = len(chosen)
    assert ep.n_way_per_episode[e] == w
    np.testing.assert_array_equal(ep.classes[e, :w], chosen)
    assert np.all(ep.classes[e, w:] == -1)
    np.testing.assert_array_equal(ep.support_idx[e][ep.support_mask[e]], support)
    np.testing.assert_array_equal(ep.query_idx[e][ep.query_mask[e]], query)


def test_episode_structure():
  fine = _pool()
  for setting, n_way in (("nway", 5), ("allway", None), ("intra", None)):
    ep = fewshot.sample_episodes(fine, FINE_TO_COARSE, setting, n_way, 2, n_query=5, num_episodes=40)
    max_way = {"nway": 5, "allway": NUM_FINE, "intra": 5}[setting]
    assert ep.classes.shape == (40, max_way) and ep.support_idx.shape == (40, max_way * 2)
    for e in range(40):
      w = ep.n_way_per_episode[e]
      s, q = ep.support_mask[e], ep.query_mask[e]
      assert s.sum() == 2 * w and q.sum() == 5 * w
      assert not set(ep.support_idx[e][s]) & set(ep.query_idx[e][q])
      # Labels name the episode's classes, each with k supports and q queries.
      np.testing.assert_array_equal(fine[ep.support_idx[e][s]], ep.classes[e][ep.support_y[e][s]])
      np.testing.assert_array_equal(fine[ep.query_idx[e][q]], ep.classes[e][ep.query_y[e][q]])
      np.testing.assert_array_equal(np.bincount(ep.query_y[e][q]), np.full(w, 5))
      if setting == "intra":
        coarse = FINE_TO_COARSE[ep.classes[e, 0]]
        np.testing.assert_array_equal(ep.classes[e, :w], np.flatnonzero(FINE_TO_COARSE == coarse))
  intra = fewshot.sample_episodes(fine, FINE_TO_COARSE, "intra", None, 1, num_episodes=60)
  assert set(intra.n_way_per_episode) == {2, 3, 4, 5}


def test_too_small_class_is_reported():
  fine = _pool()
  fine = np.delete(fine, np.flatnonzero(fine == 3)[10:])  # class 3 keeps 10 examples
  with pytest.raises(ValueError, match=r"fine class 3 has only 10.*smaller k_shot or n_query"):
    fewshot.sample_episodes(fine, FINE_TO_COARSE, "nway", 5, 1, n_query=15)


def _episode_arrays(setting, n_way, k, copies, dim, noise, num_episodes, seed=0):
  fine = _pool(40, seed)
  emb = _clustered(fine, dim, noise, seed)
  ep = fewshot.sample_episodes(fine, FINE_TO_COARSE, setting, n_way, k, n_query=15, num_episodes=num_episodes)
  rng = np.random.RandomState(seed)
  x = fewshot.support_embeddings(ep, emb, copies)
  x = _unit(x + 0.05 * rng.randn(*x.shape)) * np.tile(ep.support_mask, (1, copies))[..., None]
  y, mask = fewshot.tile_support(ep, copies)
  return ep, emb, x, y, mask


def _sklearn(x, y, mask, **kw):
  return LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000, **kw).fit(x[mask], y[mask])


# 5-way 1-shot x 5 copies and intra 1-shot x 5 (kernel path: S <= d); 10-way 5-shot on
# 16-d features (primal path: S = 50 > d). Intra episodes have 2 to 5 classes.
CASES = [("nway", 5, 1, 5, 64, 1.5, 120), ("nway", 10, 5, 1, 16, 1.0, 60), ("intra", None, 1, 5, 64, 1.5, 80)]


@pytest.mark.parametrize("setting,n_way,k,copies,dim,noise,num_episodes", CASES)
def test_predictions_agree_with_sklearn(setting, n_way, k, copies, dim, noise, num_episodes):
  ep, emb, x, y, mask = _episode_arrays(setting, n_way, k, copies, dim, noise, num_episodes)
  preds = np.asarray(fit_predict_logreg(x, y, mask, emb[ep.query_idx], ep.classes.shape[1], ep.class_mask))
  agree, total, acc = 0, 0, []
  for e in range(num_episodes):
    q = ep.query_mask[e]
    ref = _sklearn(x[e], y[e], mask[e]).predict(emb[ep.query_idx[e][q]])
    agree += np.sum(ref == preds[e][q])
    total += q.sum()
    acc.append(np.mean(ref == ep.query_y[e][q]))
  assert agree / total >= 0.99, (agree, total)
  assert 0.3 < np.mean(acc) < 0.97  # not a trivial problem, where anything would agree


@pytest.mark.parametrize("setting,n_way,k,copies,dim,noise,num_episodes", CASES)
def test_solution_matches_sklearn_optimum(setting, n_way, k, copies, dim, noise, num_episodes):
  ep, emb, x, y, mask = _episode_arrays(setting, n_way, k, copies, dim, noise, 6)
  fit = fit_logreg(x, y, mask, ep.classes.shape[1], ep.class_mask, tol=1e-6, max_iter=300)
  assert bool(np.all(fit.converged))
  for e in range(6):
    valid = ep.class_mask[e]
    ref = _sklearn(x[e].astype(np.float64), y[e], mask[e], tol=1e-10)
    coef, b = np.asarray(fit.coef[e])[valid], np.asarray(fit.intercept[e])[valid]
    if valid.sum() == 2:  # scikit-learn's binomial weights are w_1 - w_0
      coef, b = coef[1:] - coef[:1], b[1:] - b[:1]
    np.testing.assert_allclose(coef, ref.coef_, atol=2e-4 * np.abs(ref.coef_).max())
    # Logit differences between classes are unique; the intercept is up to a shared shift.
    logits = emb[ep.query_idx[e]] @ coef.T + b
    ref_logits = ref.decision_function(emb[ep.query_idx[e]]).reshape(logits.shape)
    np.testing.assert_allclose(logits - logits.mean(1, keepdims=True),
                               ref_logits - ref_logits.mean(1, keepdims=True), atol=1e-3)
    assert np.all(np.asarray(fit.coef[e])[~valid] == 0)


def test_solve_episodes_steps_and_layouts():
  ep, emb, x, y, mask = _episode_arrays("intra", None, 1, 5, 64, 1.5, 20)
  queries = emb[ep.query_idx]
  whole = np.asarray(fit_predict_logreg(x, y, mask, queries, 5, ep.class_mask, episodes_per_step=20))
  unaligned = np.empty(x.size + 1, np.float32)[1:].reshape(x.shape)  # 4-byte offset: copied, not aliased
  unaligned[...] = x
  for step, features in ((3, x), (7, unaligned)):  # steps that do not divide the 20 episodes
    preds = fewshot.solve_episodes(features, y, mask, ep.class_mask, emb, ep.query_idx,
                                   episodes_per_step=step)
    # Other batch shapes may round differently; a mix-up of episodes would disagree wholesale.
    valid = ep.query_mask
    assert np.mean(preds[valid] == whole[valid]) >= 0.995


def test_single_class_episode_and_padded_rows():
  rng = np.random.RandomState(0)
  x = _unit(rng.randn(2, 6, 8))
  y = np.array([[0, 0, 0, 0, 0, 0], [0, 1, 2, 0, 1, 2]])
  mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
  class_mask = np.array([[1, 0, 0], [1, 1, 1]], bool)
  x_junk = np.where(mask[..., None], x, 100.0)  # padded rows must not matter
  fit = fit_logreg(x_junk, y, mask, 3, class_mask, tol=1e-6)
  queries = _unit(rng.randn(2, 10, 8))
  preds = np.asarray(fit_predict_logreg(x_junk, y, mask, queries, 3, class_mask))
  assert np.all(preds[0] == 0)
  ref = _sklearn(x[1].astype(np.float64), y[1], mask[1], tol=1e-10)
  np.testing.assert_allclose(np.asarray(fit.coef[1]), ref.coef_, atol=1e-4)
  np.testing.assert_array_equal(preds[1], ref.predict(queries[1]))


def test_confidence_interval_matches_scipy():
  acc = np.array([0.2, 0.6, 0.55, 0.9, 0.75, 0.4, 0.65, 1.0])
  mean, h = fewshot.mean_confidence_interval(acc)
  lo, hi = scipy.stats.t.interval(0.95, len(acc) - 1, loc=acc.mean(), scale=scipy.stats.sem(acc))
  assert mean == pytest.approx(100 * acc.mean())
  assert h == pytest.approx(100 * (hi - lo) / 2)
  assert h == pytest.approx(100 * acc.std(ddof=1) / np.sqrt(8) * 2.3646243, rel=1e-6)


def _planted(noise, seed=0):
  fine = _pool(20, seed)
  rng = np.random.RandomState(seed)
  return np.eye(32)[fine] * 3 + noise * rng.randn(len(fine), 32), fine


SETTINGS = [("5way", 5, 1), ("allway", None, 1), ("intra", None, 1)]


def test_evaluate_fewshot_separable_and_random():
  calls = []

  def embed_fn(x):
    calls.append(len(x))
    return np.asarray(x, np.float32)

  def augment_fn(x, rng):
    return x + 0.1 * rng.standard_normal(x.shape)

  x, fine = _planted(0.3)
  kw = dict(num_episodes=40, augment_fn=augment_fn, num_augmented=3, n_query=10)
  metrics = fewshot.evaluate_fewshot(embed_fn, x, fine, FINE_TO_COARSE, SETTINGS, **kw)
  assert set(metrics) == {f"fewshot/{n}_1shot{s}" for n, _, _ in SETTINGS for s in ("", "_ci95")}
  for name, _, _ in SETTINGS:
    assert metrics[f"fewshot/{name}_1shot"] >= 99.0
  assert calls[0] == len(x) and len(calls) == 4  # the pool once, then one batch per setting

  # On overlapping classes every draw matters: reproducible, independent of how episodes
  # are chunked (6 all-way episodes per solver call here), and different for another seed.
  x, fine = _planted(0.7)
  metrics = fewshot.evaluate_fewshot(embed_fn, x, fine, FINE_TO_COARSE, SETTINGS, **kw)
  assert 40.0 < metrics["fewshot/allway_1shot"] < 90.0  # about 64
  assert fewshot.evaluate_fewshot(embed_fn, x, fine, FINE_TO_COARSE, SETTINGS, **kw) == metrics
  six_allway = 6 * 3 * 20 * 32  # floats of 6 episodes' supports: 3 copies x 20 classes x 32-d
  chunked = fewshot.evaluate_fewshot(embed_fn, x, fine, FINE_TO_COARSE, SETTINGS,
                                     max_support_floats=six_allway, **kw)
  assert chunked == pytest.approx(metrics, abs=0.1)  # other batch shapes may round differently
  other = fewshot.evaluate_fewshot(embed_fn, x, fine, FINE_TO_COARSE, SETTINGS, **kw | {"seed": 1})
  assert other["fewshot/allway_1shot"] != metrics["fewshot/allway_1shot"]

  # Precomputed pool embeddings stand in for embedding the pool.
  calls.clear()
  given = fewshot.evaluate_fewshot(embed_fn, x, fine, FINE_TO_COARSE, SETTINGS, pool_embeddings=x, **kw)
  intra_ways = fewshot.sample_episodes(fine, FINE_TO_COARSE, "intra", None, 1, n_query=10, num_episodes=40)
  assert given == metrics
  assert sum(calls) == 3 * (40 * 5 + 40 * 20 + intra_ways.n_way_per_episode.sum())  # augmented supports only

  shuffled = np.random.RandomState(1).permutation(fine)  # labels unrelated to the inputs
  random = fewshot.evaluate_fewshot(embed_fn, x, shuffled, FINE_TO_COARSE, SETTINGS[:2], num_episodes=100,
                                    num_augmented=0, n_query=10)
  assert 15.0 < random["fewshot/5way_1shot"] < 25.0
  assert random["fewshot/5way_1shot_ci95"] > 0
  assert 2.0 < random["fewshot/allway_1shot"] < 8.0


def test_parse_setting():
  assert fewshot.parse_setting("5way") == ("nway", 5)
  assert fewshot.parse_setting("10way") == ("nway", 10)
  assert fewshot.parse_setting("fiveway", 5) == ("nway", 5)
  assert fewshot.parse_setting("allway") == ("allway", None)
  assert fewshot.parse_setting("intra") == ("intra", None)
  with pytest.raises(ValueError, match="expected 'Nway'"):
    fewshot.parse_setting("someway")


def _unit(x):
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
