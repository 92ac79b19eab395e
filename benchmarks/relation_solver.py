"""FALCON's relation solver: the exact shortest-path backend against HiGHS and the slot assignment.

  python benchmarks/relation_solver.py                           # all rows (about a minute on 2 cores)
  python benchmarks/relation_solver.py --sizes=100x20 --out-dir=/tmp/relation_smoke

Cost matrices S [K, C] of two kinds, each row summing to 1/K like FALCON's averaged cost:
  * random: softmax_rows(N(0, 1) logits) / K;
  * realistic: a planted relation: every fine class has a true parent (each coarse class gets at
    least one), S[k] = (0.8 one-hot(parent) + 0.2 Dirichlet(1)) / K, as a trained model's cost.
Each backend solves the same matrix in the same process: `exact` (the default) timed as the
median of `--repeats` calls, `milp` (scipy HiGHS, `--milp-time-limit` s) and `slots` (the
rectangular assignment to K x (C cap) slots with its cap doubling of
docs/methods/falcon.md#relation-solver, scipy's linear_sum_assignment) as the median of fewer
calls. `agree` is |objective(exact) - objective(milp)| <= 1e-9 max(1, |objective|);
`milp/exact` and `slots/exact` are time ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine.methods.falcon import relation_solver  # noqa: E402

COLUMNS = ["problem", "beta", "exact_s", "milp_s", "slots_s", "milp/exact", "slots/exact", "exact_objective",
           "milp_objective", "milp_optimal", "agree", "counts_min_max"]


def make_cost(kind: str, num_fine: int, num_coarse: int, seed: int = 0) -> np.ndarray:
  """[K, C] float64 cost of the given kind (see the module docstring)."""
  rng = np.random.default_rng(seed)
  if kind == "random":
    logits = rng.normal(size=(num_fine, num_coarse))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True) / num_fine
  parent = np.concatenate([rng.permutation(num_coarse), rng.integers(0, num_coarse, num_fine - num_coarse)])
  p = 0.2 * rng.dirichlet(np.ones(num_coarse), size=num_fine)
  p[np.arange(num_fine), parent] += 0.8
  return p / num_fine


def solve_slots(cost: np.ndarray, beta: float) -> np.ndarray:
  """The exact rectangular assignment to slots (c, s), with its cap doubling.

  See docs/methods/falcon.md#relation-solver.
  """
  k, c = cost.shape
  cap = min(2 * -(-k // c) + 2, k - c + 1)
  big = 10.0 * (np.abs(cost).max() + beta * (2 * k + 1) / c) + 1.0
  while True:
    s = np.arange(1, cap + 1)
    full = (-cost[:, :, None] + beta * (2 * s - 1) / c - big * (s == 1)).reshape(k, -1)
    rows, cols = linear_sum_assignment(full)
    assignment = np.empty(k, np.int64)
    assignment[rows] = cols // cap
    if cap == k - c + 1 or np.bincount(assignment, minlength=c).max() < cap:
      return assignment
    cap = min(2 * cap, k - c + 1)


def bench(kind: str, num_fine: int, num_coarse: int, beta: float, args) -> dict:
  cost = make_cost(kind, num_fine, num_coarse)
  exact = relation_solver.solve_relation(cost, beta)
  exact_s = common.median(common.time_calls(lambda: relation_solver.solve_relation(cost, beta), args.repeats))
  few = max(1, args.repeats // 3) if num_fine < 200 else 1
  milp, times = None, []
  for _ in range(few):
    start = time.perf_counter()
    milp = relation_solver.solve_relation(cost, beta, backend="milp", time_limit=args.milp_time_limit)
    times.append(time.perf_counter() - start)
  milp_s = common.median(times)
  slots_s = common.median(common.time_calls(lambda: solve_slots(cost, beta), few, warmup=0))
  slots_objective = relation_solver.relation_objective(cost, solve_slots(cost, beta), beta)
  scale = max(1.0, abs(exact.objective))
  counts = exact.matrix.sum(axis=0)
  row = {"problem": f"{kind} {num_fine}x{num_coarse}", "beta": beta, "exact_s": exact_s, "milp_s": milp_s,
         "slots_s": slots_s, "milp/exact": milp_s / exact_s, "slots/exact": slots_s / exact_s,
         "exact_objective": f"{exact.objective:.12g}", "milp_objective": f"{milp.objective:.12g}",
         "milp_optimal": milp.optimal, "agree": abs(exact.objective - milp.objective) <= 1e-9 * scale,
         "counts_min_max": f"{counts.min()}-{counts.max()}",
         "slots_agree": abs(exact.objective - slots_objective) <= 1e-9 * scale}
  print(row, flush=True)
  return row


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="10x3,100x20,240x30,608x34")
  parser.add_argument("--kinds", default="random,realistic")
  parser.add_argument("--beta", type=float, default=0.1)
  parser.add_argument("--extra-betas", default="5e-5,0", help="more betas at the largest size")
  parser.add_argument("--repeats", type=int, default=9)
  parser.add_argument("--milp-time-limit", type=float, default=120.0)
  parser.add_argument("--out", default="relation_solver", help="results file name")
  parser.add_argument("--out-dir", default=common.RESULTS_DIR)
  args = parser.parse_args()
  sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",")]
  extra = [float(b) for b in args.extra_betas.split(",") if b]
  rows = []
  start = time.perf_counter()
  for kind in args.kinds.split(","):
    for k, c in sizes:
      for beta in [args.beta] + (extra if (k, c) == sizes[-1] else []):
        rows.append(bench(kind, k, c, beta, args))
  notes = (__doc__.split("\n\n", 2)[2] + f"\nAll rows agree with the slot assignment too: "
           f"{all(r['slots_agree'] for r in rows)}. Total benchmark time {time.perf_counter() - start:.0f} s. "
           "Wall-clock seconds on a 2-core CPU shared with other jobs (noisy).")
  common.save(args.out, rows, COLUMNS, notes=notes, out_dir=args.out_dir)


if __name__ == "__main__":
  main()
