"""SCGM E-step: `scgm.estep.balanced_codes` (ott-jax Sinkhorn, float32) against the official float64 loop.

  python benchmarks/estep.py                 # all sizes (about 30 minutes on 2 cores)
  python benchmarks/estep.py --sizes=6000x50 --out=/tmp/estep_smoke   # a one-minute smoke run

Problems, at (N, r) = (60k, 100), (100k, 500), (1M, 500), lam = 25:
  * random: log P = log_softmax(2 * standard normal logits);
  * peaked: `log_posterior` (sigma2 = 0.1, no pi) of 128-d embeddings drawn around r planted unit
    centres (Dirichlet(2) cluster sizes, noise 0.6 / sqrt(128) per coordinate, cos to the centre
    about 0.85), 20 coarse classes, 80% of mu_z near a random (repeated or missing) centre and 20%
    at random directions: the equal-partition constraint then has to move much mass against
    P^lam, which makes the official loop need thousands of iterations, like a trained model's.
Each JAX variant is compiled ahead of time and run once untimed, then timed (median of `--repeats`,
1 call above 10M entries); `ref_agree_%` is the % of
rows whose code equals the official loop's on the same problem (run to its own stopping rule in
this process). `speedup` = reference seconds / variant seconds. Peak memory: for JAX, XLA's
compiled memory analysis (arguments + outputs + temporaries); for the numpy reference,
tracemalloc's peak during the call (numpy reports its buffers to tracemalloc).
The `warm` rows are a second E-step on a perturbed P (embeddings and mu_z moved by 15% of their
noise, as a few epochs of training would) warm-started from the first solve's column potential;
their `agree` column compares with a cold solve of that perturbed P.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ott.geometry import geometry  # noqa: E402
from ott.problems.linear import linear_problem  # noqa: E402
from ott.solvers.linear import sinkhorn  # noqa: E402

from benchmarks import common  # noqa: E402
from coarse2fine.methods.scgm import estep as scgm_estep  # noqa: E402

LAM = 25.0
COLUMNS = ["problem", "variant", "seconds", "iterations", "speedup", "ref_agree_%", "agree_%", "converged",
           "marginal_L1", "peak_MB", "note"]


def make_peaked(n: int, r: int, seed: int = 0, dim: int = 128, coarse: int = 20, spread: float = 0.6,
                move: float = 0.0) -> jax.Array:
  """[N, r] float32 log P of a trained-looking SCGM (see the module docstring); `move` perturbs it."""
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((r, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  cluster = rng.choice(r, size=n, p=rng.dirichlet(np.full(r, 2.0)))
  superclass = rng.integers(0, coarse, r)
  near = int(0.8 * r)
  mu_z = np.concatenate([centres[rng.choice(r, near)] + 0.3 * rng.standard_normal((near, dim)) / np.sqrt(dim),
                         rng.standard_normal((r - near, dim)) / np.sqrt(dim)])
  mu_y = np.stack([centres[superclass == c].mean(0) if np.any(superclass == c) else rng.standard_normal(dim)
                   for c in range(coarse)])
  key = jax.random.key(seed + 1)
  noise = jax.random.normal(key, (n, dim)) * (spread / np.sqrt(dim))
  x = jnp.asarray(centres, jnp.float32)[cluster] + noise
  if move:
    k1, k2 = jax.random.split(jax.random.key(seed + 2))
    x = x + move * spread / np.sqrt(dim) * jax.random.normal(k1, (n, dim))
    mu_z = mu_z + move * 0.3 / np.sqrt(dim) * np.asarray(jax.random.normal(k2, mu_z.shape))
  return jax.jit(scgm_estep.log_posterior)(x, jnp.asarray(superclass[cluster], jnp.int32),
                                            jnp.asarray(mu_y, jnp.float32), jnp.asarray(mu_z, jnp.float32))


def make_random(n: int, r: int, seed: int = 0, move: float = 0.0) -> jax.Array:
  logits = 2.0 * jax.random.normal(jax.random.key(seed), (n, r))
  if move:
    logits = logits + 2.0 * move * jax.random.normal(jax.random.key(seed + 2), (n, r))
  return jax.nn.log_softmax(logits, axis=1)


@functools.partial(jax.jit, static_argnames=("lse_mode", "max_iterations", "momentum"))
def stock_ott(log_p, *, lse_mode: bool, max_iterations: int = 2000, momentum: float = 1.0):
  """ott-jax as documented: a dense [N, r] Geometry (cost -log P or kernel P^lam, row-stabilised)."""
  s = LAM * log_p
  s = s - jnp.max(s, axis=1, keepdims=True)
  geom = (geometry.Geometry(cost_matrix=-s / LAM, epsilon=1 / LAM) if lse_mode
          else geometry.Geometry(kernel_matrix=jnp.exp(s), epsilon=1 / LAM))
  from ott.solvers.linear import acceleration
  solver = sinkhorn.Sinkhorn(lse_mode=lse_mode, threshold=1e-3, max_iterations=max_iterations, implicit_diff=None,
                             momentum=None if momentum == 1.0 else acceleration.Momentum(value=momentum))
  out = solver(linear_problem.LinearProblem(geom))
  codes = jnp.argmax(log_p + out.g[None, :], axis=1)
  return codes, out.n_iters, out.converged, out.errors[jnp.maximum(out.n_iters // 10 - 1, 0)]


def time_jax(fn, log_p, repeats: int, **kw):
  """(median seconds, last output, peak MB) of fn(log_p, **kw), compiled ahead of the timed calls.

  Peak MB is XLA's memory analysis of the compiled call: arguments + outputs + temporaries.
  """
  static = {k: v for k, v in kw.items() if not isinstance(v, jax.Array)}
  dynamic = {k: v for k, v in kw.items() if isinstance(v, jax.Array)}
  compiled = fn.lower(log_p, **kw).compile()
  stats = compiled.memory_analysis()
  peak = float("nan") if stats is None else (
      stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) / 2 ** 20
  del static
  # One untimed call: the first run of a program pays for faulting in its buffers (up to 3x the
  # steady time at 1M x 500); a training run calls the same E-step program again and again.
  jax.block_until_ready(compiled(log_p, **dynamic))
  times, out = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(log_p, **dynamic))
    times.append(time.perf_counter() - start)
  return common.median(times), out, peak


def build_g(log_p: jax.Array, block: int = 50_000) -> np.ndarray:
  """G = P^T ** lam [r, N] float64 as the official code computes it, by blocks of rows (no [N, r] float64 P)."""
  lp = np.asarray(log_p)
  g_mat = np.empty((lp.shape[1], lp.shape[0]), np.float64)
  for i in range(0, lp.shape[0], block):
    g_mat[:, i:i + block] = np.exp(lp[i:i + block].astype(np.float64)).T ** LAM
  return g_mat


def run_reference(log_p, max_iterations=None):
  """Official loop: dict(seconds, iterations, codes, peak_MB, errors); capped runs return codes None."""
  tracemalloc.start()
  start = time.perf_counter()
  g_mat = build_g(log_p)
  build_seconds = time.perf_counter() - start
  errors = []
  codes, iters = scgm_estep.official_sinkhorn_loop(g_mat, max_iterations=max_iterations, errors=errors,
                                                   codes=max_iterations is None)
  seconds = time.perf_counter() - start
  peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
  tracemalloc.stop()
  del g_mat
  return {"seconds": seconds, "build_seconds": build_seconds, "iterations": iters, "codes": codes, "peak_MB": peak,
          "errors": errors}


def bench_problem(kind: str, n: int, r: int, args, ref_iterations_hint: dict) -> list[dict]:
  make = make_peaked if kind == "peaked" else make_random
  log_p = make(n, r)
  name = f"{kind} {n // 1000}k x {r}"
  rows = []
  big = n >= 1_000_000

  # Reference (official loop, float64). At 1M x 500 it is capped and extrapolated.
  if big:
    cap = args.ref_cap
    ref = run_reference(log_p, max_iterations=cap)
    hint = ref_iterations_hint.get((kind, r))
    per_iter = (ref["seconds"] - ref["build_seconds"]) / cap
    est_iters = hint or cap
    ref_seconds = ref["build_seconds"] + per_iter * est_iters
    note = (f"building G ({ref['build_seconds']:.0f} s) + {cap} iterations timed ({per_iter:.2f} s each) "
            f"x {est_iters} iterations (the "
            f"100k x {r} count; the official err sums over N, so 1M needs at least as many): extrapolated; "
            f"last err {ref['errors'][-1][1]:.3g} at iteration {ref['errors'][-1][0]}")
    ref_codes = None
  else:
    ref = run_reference(log_p)
    ref_seconds, ref_codes, est_iters, note = ref["seconds"], ref["codes"], ref["iterations"], ""
    ref_iterations_hint[(kind, r)] = ref["iterations"]
  rows.append({"problem": name, "variant": "reference (numpy float64, official loop)", "seconds": ref_seconds,
               "iterations": est_iters, "speedup": 1.0, "ref_agree_%": 100.0 if ref_codes is not None else "n/a",
               "peak_MB": ref["peak_MB"], "note": note})
  print(rows[-1], flush=True)

  variants = [("balanced_codes (default)", scgm_estep.balanced_codes, {})]
  if not (big and kind == "peaked"):  # ~10 minutes there
    variants += [("balanced_codes epsilon_stages=1 (no epsilon scaling)", scgm_estep.balanced_codes,
                  {"epsilon_stages": 1})]
  if not big:  # at 1M only the default (and the above): each solve there takes minutes
    variants += [("balanced_codes threshold=1e-2", scgm_estep.balanced_codes, {"threshold": 1e-2})]
    variants += [("balanced_codes threshold=1e-3", scgm_estep.balanced_codes, {"threshold": 1e-3})]
    variants += [("balanced_codes threshold=1e-4", scgm_estep.balanced_codes, {"threshold": 1e-4})]
  if r <= 100 or (not big and kind == "random"):  # the log domain is ~10x slower per iteration
    variants += [("balanced_codes lse_mode=True (log domain)", scgm_estep.balanced_codes,
                  {"lse_mode": True, "max_iterations": 3000})]
  if r <= 100:  # these are 10x+ slower per iteration or converge worse; one size shows it
    variants += [("balanced_codes chunk_iterations=1000", scgm_estep.balanced_codes, {"chunk_iterations": 1000})]
    variants += [("stock ott kernel mode, K [N, r] (capped)", stock_ott, {"lse_mode": False,
                                                                          "max_iterations": 300})]
    variants += [("stock ott lse mode", stock_ott, {"lse_mode": True, "max_iterations": 2000})]
    variants += [("balanced_codes momentum=1.2", scgm_estep.balanced_codes, {"momentum": 1.2,
                                                                             "max_iterations": 2000})]
  outputs = {}
  for label, fn, kw in variants:
    repeats = 1 if n * r > 10_000_000 or "lse" in label or "stock" in label else args.repeats
    seconds, out, peak = time_jax(fn, log_p, repeats, **kw)
    if isinstance(out, scgm_estep.EStepResult):
      codes, iters, conv, err = out.codes, out.iterations, out.converged, out.marginal_error
      outputs[label] = out
    else:
      codes, iters, conv, err = out
    codes = np.asarray(codes)
    row = {"problem": name, "variant": label, "seconds": seconds, "iterations": int(iters),
           "speedup": ref_seconds / seconds, "converged": bool(conv), "marginal_L1": float(err),
           "peak_MB": peak}
    if ref_codes is not None:
      row["ref_agree_%"] = 100.0 * float(np.mean(codes == ref_codes))
    if "default" not in label and "balanced_codes (default)" in outputs:
      row["agree_%"] = 100.0 * float(np.mean(codes == np.asarray(outputs["balanced_codes (default)"].codes)))
    rows.append(row)
    print(row, flush=True)

  # Second E-step on a perturbed P: warm start from the first solve's column potential, vs cold
  # (at 1M only warm; its agree_% is then with the first E-step's codes).
  moved = make(n, r, move=0.15)
  first = outputs["balanced_codes (default)"]
  repeats = 1 if n * r > 10_000_000 else args.repeats
  runs = [] if big else [("perturbed P, cold start",) + time_jax(scgm_estep.balanced_codes, moved, repeats)]
  runs += [("perturbed P, warm start",) + time_jax(scgm_estep.balanced_codes, moved, repeats,
                                                   init_column_potential=first.column_potential)]
  base = first.codes if big else runs[0][2].codes
  for label, s, o, peak in runs:
    changed = 100.0 * float(np.mean(np.asarray(o.codes) != np.asarray(first.codes)))
    rows.append({"problem": name, "variant": label, "seconds": s, "iterations": int(o.iterations),
                 "speedup": ref_seconds / s, "converged": bool(o.converged), "marginal_L1": float(o.marginal_error),
                 "agree_%": 100.0 * float(np.mean(np.asarray(o.codes) == np.asarray(base))), "peak_MB": peak,
                 "note": (f"{changed:.1f}% of codes differ from the first E-step" if "cold" in label or big else
                          "agree_% = with the cold start")})
    print(rows[-1], flush=True)
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="60000x100,100000x500,1000000x500")
  parser.add_argument("--kinds", default="random,peaked")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--ref-cap", type=int, default=20, help="official-loop iterations timed at N = 1M")
  parser.add_argument("--ref-iterations", default="",
                      help="official-loop iteration counts to extrapolate 1M with when the 100k problems are not "
                           "run in the same call, e.g. random=231,peaked=10751 (r = 500)")
  parser.add_argument("--out", default="estep")
  args = parser.parse_args()
  rows, hints = [], {}
  for item in filter(None, args.ref_iterations.split(",")):
    kind, count = item.split("=")
    hints[(kind, 500)] = int(count)
  start = time.perf_counter()
  for size in args.sizes.split(","):
    n, r = map(int, size.split("x"))
    for kind in args.kinds.split(","):
      rows += bench_problem(kind, n, r, args, hints)
      # Saved after every problem, so an interrupted run keeps what it measured.
      notes = (__doc__.split("\n\n", 2)[2] + f"\nTotal benchmark time {time.perf_counter() - start:.0f} s. "
               "Times are wall-clock on a 2-core CPU shared with other jobs (noisy); reference and variants "
               "ran in the same process, one after another.")
      common.save(args.out, rows, COLUMNS, notes=notes)


if __name__ == "__main__":
  main()
