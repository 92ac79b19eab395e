"""FALCON's fine-to-coarse relation matrix M: an exact solver and two generic MIP backends.

docs/methods/falcon.md#relation-problem (paper Eqs. 11-15, official `compute_assignment_from_cost`). Given a cost
S [K, C] and beta >= 0, find a binary M [K, C] minimising

  -sum_{k,c} S[k, c] M[k, c] + beta * (sum_c n_c^2 / C - (K/C)^2),   n_c = sum_k M[k, c],

with exactly one 1 per row and at least one per column. The penalty is separable and convex in
the column counts, so this is a min-cost flow (source -> fine k -> coarse c -> sink, the c-th
column's s-th unit costing beta (2s - 1) / C) and the default backend solves it exactly by
successive shortest paths (`_solve_exact`). "milp" (scipy's HiGHS, built by `RelationMilp` so
that constraints can be added) and "gurobi" (the official MIQP, needs a licence) are generic.

Only numpy and scipy are needed (no JAX): the solve runs on the host on a pulled K x C cost.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp


class RelationSolution(NamedTuple):
  """A solved relation. assignment: [K] int64 coarse class of each fine class; matrix: [K, C]
  int64 0/1; objective: the problem's value at it; optimal: proven optimal (False when a MIP
  backend stopped at its time limit with an incumbent); backend: the backend that solved it."""
  assignment: np.ndarray
  matrix: np.ndarray
  objective: float
  optimal: bool
  backend: str


def relation_objective(cost: np.ndarray, assignment: np.ndarray, beta: float) -> float:
  """-sum_k S[k, a_k] + beta (sum_c n_c^2 / C - (K/C)^2). cost: [K, C]; assignment: [K] int."""
  cost = np.asarray(cost, np.float64)
  num_fine, num_coarse = cost.shape
  assignment = np.asarray(assignment)
  if assignment.shape != (num_fine,) or assignment.min() < 0 or assignment.max() >= num_coarse:
    raise ValueError(f"assignment must be [K={num_fine}] ints in [0, {num_coarse}), got shape {assignment.shape}.")
  counts = np.bincount(assignment, minlength=num_coarse).astype(np.float64)
  gain = cost[np.arange(num_fine), assignment].sum()
  return float(-gain + beta * (np.sum(counts ** 2) / num_coarse - (num_fine / num_coarse) ** 2))


def _check_inputs(cost, beta: float) -> np.ndarray:
  cost = np.asarray(cost, np.float64)
  if cost.ndim != 2:
    raise ValueError(f"cost must be a 2-d [K fine, C coarse] matrix, got shape {cost.shape}; reshape it.")
  num_fine, num_coarse = cost.shape
  if num_coarse < 1 or num_fine < num_coarse:
    raise ValueError(f"cost has K={num_fine} fine and C={num_coarse} coarse classes; every coarse class needs "
                     "a fine class, so K >= C >= 1 is required (is the matrix transposed?).")
  if not np.all(np.isfinite(cost)):
    raise ValueError("cost contains NaN or inf; check the accumulated predictions before solving.")
  if not (np.isfinite(beta) and beta >= 0):
    raise ValueError(f"beta must be a finite number >= 0, got {beta}.")
  return cost


# ----------------------------------------------------------------------------- exact backend


def _solve_square(cost: np.ndarray) -> np.ndarray:
  """K == C: every column holds one fine class, the penalty is 0 and M is a max-gain permutation."""
  rows, cols = linear_sum_assignment(cost, maximize=True)
  assignment = np.empty(cost.shape[0], np.int64)
  assignment[rows] = cols
  return assignment


def _solve_beta_zero(cost: np.ndarray) -> np.ndarray:
  """beta = 0: argmax rows, with one distinct representative per column at least loss.

  Every feasible M has, in each column c, some fine class r_c (distinct across c) and loses at
  least max S[r_c] - S[r_c, c] there, the others at least 0; sending r_c to c and the rest to
  their argmax attains that bound, so the optimum is a C x K assignment on these losses.
  """
  assignment = np.argmax(cost, axis=1)
  loss = cost.max(axis=1, keepdims=True) - cost  # [K, C] >= 0
  coarse, fine = linear_sum_assignment(loss.T)  # [C, K]: one representative per coarse class
  assignment[fine] = coarse
  return assignment


def _refresh_moves(cost, members, c, move, mover) -> None:
  """move[c, c2] = min over fine k in c of S[k, c] - S[k, c2] (the cheapest k to move c -> c2)."""
  if not members[c]:
    move[c] = np.inf
    return
  idx = np.asarray(members[c])
  delta = cost[idx, c][:, None] - cost[idx]  # [n_c, C]
  best = np.argmin(delta, axis=0)
  move[c] = delta[best, np.arange(cost.shape[1])]
  mover[c] = idx[best]
  move[c, c] = np.inf


def _solve_exact(cost: np.ndarray, beta: float) -> np.ndarray:
  """Successive shortest paths on a graph whose nodes are the C coarse classes.

  Each step adds one unit of flow along a shortest path from the source: the unassigned fine
  class k that enters c0 (-S[k, c0], the best unassigned k for each c0), then assigned fine
  classes move along c0 -> c1 -> ... -> c_m (arc c -> c' costs the cheapest S[k', c] - S[k', c']
  over k' in c), and the unit ends at c_m paying its marginal penalty beta (2 n + 1) / C. Every
  intermediate assignment is then a min-cost flow for its number of fine classes, the residual
  graph has no negative cycle, and Bellman-Ford on the C nodes finds each path. The "at least
  one per column" constraint is a lexicographically dominant bonus on a column's first unit:
  while a column is empty, the path must end at an empty column. Exact up to a 1e-12 relative
  tolerance that keeps float round-off from making cycles. K steps of O(C^2 x rounds + |path| K C).
  """
  # A constant per row changes every feasible objective equally; this one makes the tolerance
  # relative to the spread of S rather than to its magnitude.
  cost = cost - cost.max(axis=1, keepdims=True)
  num_fine, num_coarse = cost.shape
  assignment = np.full(num_fine, -1, np.int64)
  counts = np.zeros(num_coarse, np.int64)
  members = [[] for _ in range(num_coarse)]
  move = np.full((num_coarse, num_coarse), np.inf)  # [C, C] arc costs between coarse classes
  mover = np.zeros((num_coarse, num_coarse), np.int64)  # the fine class each arc moves
  tol = 1e-12 * (np.abs(cost).max() + beta * (2 * num_fine + 1) / num_coarse + 1e-300)
  cols = np.arange(num_coarse)
  free = cost.copy()  # [K, C] with the rows of assigned fine classes at -inf
  top = np.argmax(free, axis=0)  # [C] best unassigned fine class per coarse class
  marginal = np.full(num_coarse, beta / num_coarse)
  num_empty = num_coarse
  for _ in range(num_fine):
    dist = -free[top, cols]
    pred = np.full(num_coarse, -1)
    for _ in range(num_coarse - 1):  # Bellman-Ford; stops as soon as nothing improves
      cand = dist[:, None] + move
      src = cand.argmin(0)
      new = cand[src, cols]
      better = new < dist - tol
      if not better.any():
        break
      dist = np.where(better, new, dist)
      pred = np.where(better, src, pred)
    total = dist + marginal
    if num_empty:
      total = np.where(counts == 0, total, np.inf)
    path = [int(total.argmin())]  # from the end c_m back to the entry c0
    while pred[path[-1]] >= 0:
      path.append(int(pred[path[-1]]))
      if len(path) > num_coarse:
        raise RuntimeError("relation solver: a cycle in the shortest-path tree (float round-off?); "
                           "please report the cost matrix, or use backend='milp'.")
    for dst, src_c in zip(path[:-1], path[1:]):
      f = int(mover[src_c, dst])
      members[src_c].remove(f)
      members[dst].append(f)
      assignment[f] = dst
    entry, end = path[-1], path[0]
    k = int(top[entry])
    assignment[k] = entry
    members[entry].append(k)
    free[k] = -np.inf
    stale = np.flatnonzero(top == k)
    top[stale] = np.argmax(free[:, stale], axis=0)
    num_empty -= int(counts[end] == 0)
    counts[end] += 1
    marginal[end] = beta * (2 * counts[end] + 1) / num_coarse
    if len(path) == 1:  # only k joined `end`: its arcs can only get cheaper
      delta = cost[k, end] - cost[k]
      delta[end] = np.inf
      better = delta < move[end]
      move[end] = np.where(better, delta, move[end])
      mover[end] = np.where(better, k, mover[end])
    else:
      for c in path:
        _refresh_moves(cost, members, c, move, mover)
  return assignment


def _exact_backend(cost: np.ndarray, beta: float, time_limit: float) -> tuple[np.ndarray, bool]:
  del time_limit  # polynomial; never needs one
  if cost.shape[0] == cost.shape[1]:
    return _solve_square(cost), True
  if beta == 0:
    return _solve_beta_zero(cost), True
  return _solve_exact(cost, beta), True


# ----------------------------------------------------------------------------- MIP backends


@dataclasses.dataclass
class RelationMilp:
  """The problem as a MILP for scipy's HiGHS, in a form that extra constraints can be added to.

  Variables: M [K, C] binary (row-major, first K*C entries), then slots z [C, K-C+1] in [0, 1]
  with n_c = sum_s z[c, s] and z[c, 0] = 1 (so n_c >= 1). Slot s costs beta (2s + 1) / C,
  increasing in s, so an optimal z fills a prefix and pays beta n_c^2 / C; z need not be integer
  because n_c is. Constraints that involve M and n (not single slots) keep this exact.
  Without extra constraints the matrix is a network matrix, so the LP relaxation is integral.
  """
  cost: np.ndarray
  beta: float
  constraints: list = dataclasses.field(default_factory=list)

  @property
  def num_slots(self) -> int:
    return self.cost.shape[0] - self.cost.shape[1] + 1

  @property
  def num_variables(self) -> int:
    return self.cost.size + self.cost.shape[1] * self.num_slots

  def add_constraint(self, coefficients, lower, upper) -> None:
    """Adds lower <= A vec(M) <= upper; coefficients: [r, K, C] (or [K, C]) dense or [r, K*C] sparse."""
    if sparse.issparse(coefficients):
      a = sparse.csr_matrix(coefficients)
    else:
      a = sparse.csr_matrix(np.asarray(coefficients, np.float64).reshape(-1, self.cost.size))
    a = sparse.hstack([a, sparse.csr_matrix((a.shape[0], self.num_variables - self.cost.size))])
    self.constraints.append(LinearConstraint(a.tocsr(), lower, upper))

  def _base_constraints(self) -> list[LinearConstraint]:
    k, c = self.cost.shape
    rows = sparse.hstack([sparse.kron(sparse.eye(k), np.ones((1, c))),
                          sparse.csr_matrix((k, c * self.num_slots))])
    counts = sparse.hstack([sparse.kron(np.ones((1, k)), sparse.eye(c)),
                            -sparse.kron(sparse.eye(c), np.ones((1, self.num_slots)))])
    return [LinearConstraint(rows.tocsr(), 1, 1), LinearConstraint(counts.tocsr(), 0, 0)]

  def solve(self, time_limit: float | None = None) -> tuple[np.ndarray, bool]:
    """(assignment [K], proven optimal) from HiGHS; raises RuntimeError if no solution was found."""
    k, c = self.cost.shape
    slot_cost = self.beta * (2 * np.arange(self.num_slots) + 1) / c
    objective = np.concatenate([-self.cost.ravel(), np.tile(slot_cost, c)])
    # HiGHS stops at an absolute gap of 1e-6 that scipy cannot change: scale costs up so that gap
    # is ~1e-10 of the largest coefficient.
    objective *= 1e4 / max(np.abs(objective).max(), 1e-300)
    integrality = np.concatenate([np.ones(self.cost.size), np.zeros(c * self.num_slots)])
    lower = np.zeros(self.num_variables)
    lower[self.cost.size::self.num_slots] = 1.0  # z[c, 0] = 1: every column used
    options = {"mip_rel_gap": 0.0}
    if time_limit is not None:
      options["time_limit"] = float(time_limit)
    res = milp(objective, integrality=integrality, bounds=Bounds(lower, np.ones(self.num_variables)),
               constraints=self._base_constraints() + self.constraints, options=options)
    if res.x is None:
      raise RuntimeError(f"HiGHS found no feasible relation matrix: {res.message}")
    return np.argmax(res.x[:self.cost.size].reshape(k, c), axis=1), res.status == 0


def _milp_backend(cost: np.ndarray, beta: float, time_limit: float) -> tuple[np.ndarray, bool]:
  return RelationMilp(cost, beta).solve(time_limit)


def _gurobi_backend(cost: np.ndarray, beta: float, time_limit: float) -> tuple[np.ndarray, bool]:
  """The official MIQP: binary M, quadratic objective, best incumbent after TimeLimit seconds."""
  try:
    import gurobipy as gp
  except ImportError as e:
    raise ImportError("backend='gurobi' needs gurobipy and a licence (pip install gurobipy); "
                      "backend='exact' solves the same problem exactly without one.") from e
  k, c = cost.shape
  try:
    with gp.Env(params={"OutputFlag": 0}) as env, gp.Model(env=env) as model:
      m = model.addVars(k, c, vtype=gp.GRB.BINARY)
      model.addConstrs(m.sum(i, "*") == 1 for i in range(k))
      model.addConstrs(m.sum("*", j) >= 1 for j in range(c))
      gain = gp.quicksum(float(cost[i, j]) * m[i, j] for i in range(k) for j in range(c))
      square = gp.quicksum(m.sum("*", j) * m.sum("*", j) for j in range(c))
      model.setObjective(-gain + beta / c * square - beta * (k / c) ** 2, gp.GRB.MINIMIZE)
      model.Params.TimeLimit = time_limit
      model.optimize()
      if model.SolCount == 0:
        raise RuntimeError(f"Gurobi found no relation matrix within {time_limit} s (status {model.Status}).")
      values = np.array([[m[i, j].X for j in range(c)] for i in range(k)])
      return np.argmax(values, axis=1), model.Status == gp.GRB.OPTIMAL
  except gp.GurobiError as e:
    raise RuntimeError(f"Gurobi failed ({e}); check the licence, or use backend='exact'.") from e


BACKENDS: dict[str, Callable[[np.ndarray, float, float], tuple[np.ndarray, bool]]] = {
    "exact": _exact_backend,
    "milp": _milp_backend,
    "gurobi": _gurobi_backend,
}


def check_column_counts(column_counts, shape: tuple[int, int]) -> np.ndarray:
  """column_counts as int64 [C] if they fit a [K, C] relation (C ints >= 1 summing to K); else ValueError."""
  counts = np.asarray(column_counts)
  num_fine, num_coarse = shape
  if (counts.shape != (num_coarse,) or not np.issubdtype(counts.dtype, np.integer) or counts.min() < 1
      or counts.sum() != num_fine):
    raise ValueError(f"column_counts must be {num_coarse} integers >= 1 (fine classes per coarse class) summing to "
                     f"K={num_fine}, got {counts.tolist()}; fix the counts or the number of fine classes.")
  return counts.astype(np.int64)


def _solve_fixed_counts(cost: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """n_c = counts[c] for every c: the balance penalty is a constant and M a max-gain assignment of the K fine
  classes to K slots, counts[c] of them in column c (Hungarian on the columns repeated)."""
  slot_column = np.repeat(np.arange(len(counts)), counts)  # [K] coarse class of each slot
  rows, slots = linear_sum_assignment(cost[:, slot_column], maximize=True)
  assignment = np.empty(cost.shape[0], np.int64)
  assignment[rows] = slot_column[slots]
  return assignment


def solve_relation(cost, beta: float, backend: str = "exact", *, time_limit: float = 30.0,
                   column_counts=None) -> RelationSolution:
  """Solves the problem of docs/methods/falcon.md#relation-problem for M. cost: [K, C] float (K >= C); beta >= 0.

  time_limit (seconds) bounds the "milp" and "gurobi" backends (the official code uses 30 s);
  "exact" always finishes (608 x 34 takes milliseconds). column_counts: [C] ints summing to K, the number of
  fine classes each coarse class must hold where it is known (not the paper's problem: its penalty becomes a
  constant); then every backend gives way to an exact assignment solve (backend "fixed_counts").
  """
  if backend not in BACKENDS:
    raise ValueError(f"Unknown relation solver backend {backend!r}; choose one of {sorted(BACKENDS)}.")
  cost = _check_inputs(cost, beta)
  beta = float(beta)
  if column_counts is not None:
    assignment, optimal = _solve_fixed_counts(cost, check_column_counts(column_counts, cost.shape)), True
    backend = "fixed_counts"
  else:
    assignment, optimal = BACKENDS[backend](cost, beta, time_limit)
  assignment = np.asarray(assignment, np.int64)
  matrix = np.zeros(cost.shape, np.int64)
  matrix[np.arange(cost.shape[0]), assignment] = 1
  return RelationSolution(assignment, matrix, relation_objective(cost, assignment, beta), bool(optimal), backend)
