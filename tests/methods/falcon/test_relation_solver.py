"""FALCON's relation solver against brute force, HiGHS and the slot assignment of
docs/methods/falcon.md#relation-solver."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from coarse2fine.methods.falcon import relation_solver

BETAS = (0.0, 0.05, 1.0, 10.0)


def _objective_of_matrix(cost, m, beta):
  """The objective of docs/methods/falcon.md#relation-problem written on the 0/1 matrix M [K, C]."""
  k, c = cost.shape
  n = m.sum(axis=0)
  return -(cost * m).sum() + beta * ((n ** 2).sum() / c - (k / c) ** 2)


def _brute_force(cost, beta, allowed=None):
  """Minimum over all C^K assignments with every column used (and `allowed(assignments)`)."""
  k, c = cost.shape
  a = np.stack(np.unravel_index(np.arange(c ** k), (c,) * k), axis=1)  # [C^K, K]
  counts = (a[:, :, None] == np.arange(c)).sum(axis=1)  # [C^K, C]
  keep = (counts > 0).all(axis=1) & (True if allowed is None else allowed(a))
  a, counts = a[keep], counts[keep]
  values = -cost[np.arange(k), a].sum(axis=1) + beta * ((counts ** 2).sum(axis=1) / c - (k / c) ** 2)
  return values.min()


def _slot_assignment(cost, beta):
  """The uncapped rectangular assignment of fine classes to slots (c, s), s = 1..K-C+1.

  See docs/methods/falcon.md#relation-solver.
  """
  k, c = cost.shape
  slots = k - c + 1
  s = np.arange(1, slots + 1)
  big = 10.0 * (np.abs(cost).max() + beta * (2 * k + 1) / c) + 1.0
  slot_cost = beta * (2 * s - 1) / c - big * (s == 1)  # [S]
  full = (-cost[:, :, None] + slot_cost).reshape(k, c * slots)
  rows, cols = linear_sum_assignment(full)
  assignment = np.empty(k, np.int64)
  assignment[rows] = cols // slots
  return assignment


def _random_cost(rng, k, c, kind):
  if kind == "integer":  # many ties
    return rng.integers(0, 3, size=(k, c)).astype(np.float64)
  if kind == "softmax":  # FALCON-like scale: rows of probabilities / K
    p = np.exp(rng.normal(size=(k, c)))
    return p / p.sum(axis=1, keepdims=True) / k
  return rng.normal(size=(k, c))


def _check_feasible(solution, k, c):
  m = solution.matrix
  assert m.shape == (k, c) and set(np.unique(m)) <= {0, 1}
  np.testing.assert_array_equal(m.sum(axis=1), np.ones(k))
  assert (m.sum(axis=0) >= 1).all()
  np.testing.assert_array_equal(np.argmax(m, axis=1), solution.assignment)


@pytest.mark.parametrize("kind", ["normal", "integer", "softmax"])
def test_exact_equals_brute_force(kind):
  rng = np.random.default_rng({"normal": 0, "integer": 1, "softmax": 2}[kind])
  for trial in range(300):
    k = int(rng.integers(3, 9))
    c = int(rng.integers(2, min(k, 4) + 1))
    beta = BETAS[trial % len(BETAS)]
    if kind == "softmax":
      beta = beta / 100  # the penalty on the scale of these costs, so both terms matter
    cost = _random_cost(rng, k, c, kind)
    solution = relation_solver.solve_relation(cost, beta)
    _check_feasible(solution, k, c)
    expected = _brute_force(cost, beta)
    assert solution.objective == pytest.approx(expected, abs=1e-12), (k, c, beta, cost)
    assert _objective_of_matrix(cost, solution.matrix, beta) == pytest.approx(expected, abs=1e-12)
    assert solution.optimal and solution.backend == "exact"


@pytest.mark.parametrize("kind", ["normal", "integer"])
def test_shortest_paths_at_beta_zero_equal_brute_force(kind):
  """solve_relation takes a fast path at beta = 0; the general algorithm must be exact there too."""
  rng = np.random.default_rng(3)
  for _ in range(60):
    k = int(rng.integers(2, 8))
    c = int(rng.integers(1, min(k, 4) + 1))
    cost = _random_cost(rng, k, c, kind)
    assignment = relation_solver._solve_exact(cost, 0.0)
    assert relation_solver.relation_objective(cost, assignment, 0.0) == pytest.approx(_brute_force(cost, 0.0),
                                                                                   abs=1e-12)


def test_fixed_column_counts_equal_brute_force():
  """With the fine classes per coarse class given, M is the best assignment among those with exactly these counts."""
  rng = np.random.default_rng(11)
  for trial in range(60):
    k = int(rng.integers(3, 8))
    c = int(rng.integers(1, min(k, 4) + 1))
    counts = 1 + rng.multinomial(k - c, np.ones(c) / c)
    cost, beta = _random_cost(rng, k, c, "normal"), BETAS[trial % len(BETAS)]
    solution = relation_solver.solve_relation(cost, beta, column_counts=counts)
    _check_feasible(solution, k, c)
    np.testing.assert_array_equal(solution.matrix.sum(axis=0), counts)
    exact_counts = lambda a: ((a[:, :, None] == np.arange(c)).sum(axis=1) == counts).all(axis=1)  # noqa: E731
    assert solution.objective == pytest.approx(_brute_force(cost, beta, exact_counts), abs=1e-12)
    assert solution.optimal and solution.backend == "fixed_counts"


@pytest.mark.parametrize("counts", [[2, 3], [3, 1, 2], [4, 0, 1], [2.0, 1.0, 2.0]])
def test_bad_column_counts_are_named(counts):
  with pytest.raises(ValueError, match=r"column_counts must be 3 integers >= 1 .* summing to K=5"):
    relation_solver.solve_relation(np.zeros((5, 3)), 0.1, column_counts=counts)


def test_milp_equals_brute_force():
  """The MIP backend is the reference for the medium sizes below, so it is checked first."""
  rng = np.random.default_rng(9)
  empty_argmax_columns = 0
  for trial in range(24):
    k, c = int(rng.integers(3, 7)), 3
    cost = _random_cost(rng, k, c, "normal")
    beta = BETAS[trial % len(BETAS)]
    empty_argmax_columns += len(set(range(c)) - set(np.argmax(cost, axis=1)))
    solution = relation_solver.solve_relation(cost, beta, backend="milp")
    _check_feasible(solution, k, c)
    assert solution.objective == pytest.approx(_brute_force(cost, beta), abs=1e-9)
  assert empty_argmax_columns > 0  # the ">= 1 per column" constraint was exercised


@pytest.mark.parametrize("k,c", [(30, 5), (60, 8)])
@pytest.mark.parametrize("beta", [0.0, 1e-3, 0.05, 1.0])
def test_exact_equals_highs(k, c, beta):
  rng = np.random.default_rng(k + c)
  cost = rng.normal(size=(k, c)) * 0.1
  exact = relation_solver.solve_relation(cost, beta)
  reference = relation_solver.solve_relation(cost, beta, backend="milp", time_limit=60.0)
  assert reference.optimal and reference.backend == "milp"
  _check_feasible(exact, k, c)
  _check_feasible(reference, k, c)
  assert exact.objective == pytest.approx(reference.objective, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("beta", [5e-5, 1e-3, 0.1])
def test_exact_equals_slot_assignment_on_falcon_like_costs(beta):
  """A planted relation (each fine class prefers its true parent), as trained FALCON costs look."""
  rng = np.random.default_rng(7)
  k, c = 150, 12
  parent = rng.integers(0, c, size=k)
  cost = rng.uniform(0, 0.05, size=(k, c))
  cost[np.arange(k), parent] += 0.8
  cost /= k
  exact = relation_solver.solve_relation(cost, beta)
  expected = relation_solver.relation_objective(cost, _slot_assignment(cost, beta), beta)
  assert exact.objective == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_large_row_offsets_do_not_swamp_small_differences():
  """A constant per row changes nothing; the solver's float tolerance must not grow with it."""
  rng = np.random.default_rng(10)
  for trial in range(20):
    offset = rng.uniform(-1e6, 1e6, size=(6, 1))
    cost = (rng.normal(size=(6, 3)) * 1e-7 + offset) - offset  # what the solver sees, minus offsets
    beta = (0.0, 1e-8, 1e-7)[trial % 3]
    solution = relation_solver.solve_relation(cost + offset, beta)
    got = relation_solver.relation_objective(cost, solution.assignment, beta)
    assert got == pytest.approx(_brute_force(cost, beta), abs=1e-15)


def test_large_beta_balances_the_columns():
  rng = np.random.default_rng(4)
  cost = rng.uniform(size=(47, 6))
  solution = relation_solver.solve_relation(cost, beta=1e3)
  counts = solution.matrix.sum(axis=0)
  assert counts.max() - counts.min() <= 1


def test_square_is_the_best_permutation():
  rng = np.random.default_rng(5)
  for beta in BETAS:
    cost = rng.normal(size=(6, 6))
    solution = relation_solver.solve_relation(cost, beta)
    best = max(sum(cost[i, p[i]] for i in range(6)) for p in itertools.permutations(range(6)))
    np.testing.assert_array_equal(np.sort(solution.assignment), np.arange(6))
    assert solution.objective == pytest.approx(-best, abs=1e-12)


def test_single_coarse_class():
  cost = np.arange(5.0)[:, None]
  solution = relation_solver.solve_relation(cost, beta=0.3)
  np.testing.assert_array_equal(solution.assignment, np.zeros(5))
  assert solution.objective == pytest.approx(-10.0)


def test_milp_accepts_extra_constraints():
  """The generic backend is meant to grow constraints: here "fine 0 -> coarse 2" and "n_1 <= 2"."""
  rng = np.random.default_rng(6)
  k, c, beta = 7, 3, 0.05
  cost = rng.normal(size=(k, c))
  problem = relation_solver.RelationMilp(cost, beta)
  pin = np.zeros((k, c))
  pin[0, 2] = 1
  problem.add_constraint(pin, 1, 1)
  column = np.zeros((k, c))
  column[:, 1] = 1
  problem.add_constraint(column, -np.inf, 2)
  assignment, optimal = problem.solve()
  assert optimal and assignment[0] == 2 and (assignment == 1).sum() <= 2
  expected = _brute_force(cost, beta, allowed=lambda a: (a[:, 0] == 2) & ((a == 1).sum(axis=1) <= 2))
  assert relation_solver.relation_objective(cost, assignment, beta) == pytest.approx(expected, abs=1e-9)
  assert expected > _brute_force(cost, beta) + 1e-9  # the constraints are binding here


def test_relation_objective_matches_matrix_formula():
  rng = np.random.default_rng(8)
  cost = rng.normal(size=(9, 4))
  assignment = rng.integers(0, 4, size=9)
  m = np.eye(4)[assignment]
  assert relation_solver.relation_objective(cost, assignment, 0.7) == pytest.approx(
      _objective_of_matrix(cost, m, 0.7))


@pytest.mark.parametrize("cost,beta,match", [
    (np.zeros((3, 4)), 0.1, "K >= C"),
    (np.zeros(5), 0.1, "2-d"),
    (np.zeros((2, 3, 4)), 0.1, "2-d"),
    (np.array([[0.0, np.nan], [1.0, 0.0], [0.0, 1.0]]), 0.1, "NaN or inf"),
    (np.array([[0.0, np.inf], [1.0, 0.0], [0.0, 1.0]]), 0.1, "NaN or inf"),
    (np.zeros((3, 2)), -1.0, "beta"),
    (np.zeros((3, 2)), float("nan"), "beta"),
])
def test_bad_inputs_raise(cost, beta, match):
  with pytest.raises(ValueError, match=match):
    relation_solver.solve_relation(cost, beta)


def test_unknown_backend_lists_the_valid_ones():
  with pytest.raises(ValueError, match="exact.*gurobi.*milp"):
    relation_solver.solve_relation(np.zeros((3, 2)), 0.1, backend="cplex")


@pytest.mark.skipif(importlib.util.find_spec("gurobipy") is not None, reason="gurobipy is installed")
def test_gurobi_without_gurobipy_points_to_exact():
  with pytest.raises(ImportError, match="backend='exact'"):
    relation_solver.solve_relation(np.zeros((3, 2)), 0.1, backend="gurobi")
