"""SCGM E-step: the posterior over sub-classes and its balanced (equal-partition) rounding.

See docs/methods/scgm.md#e-step-target. `log_posterior` builds
log P[i, k] = log p(z=k | v_i) + log p(y_i | z=k) from embeddings and the two sets of means;
`balanced_codes` solves

  min_Q  -( <Q, log P> + (1/lam) H(Q) )   s.t.  Q 1 = 1/N,  Q^T 1 = 1/r,

whose minimiser is Q = diag(u) P^lam diag(w), and rounds it to hard codes argmax_k Q[i, k].
That is ott-jax's entropic OT with cost -log P and epsilon = 1/lam. Writing the column dual
potential g (cost units), Q[i, k] is proportional along row i to exp(lam (log P[i, k] + g[k])),
so the codes are argmax_k (log P[i, k] + g[k]) and depend on g alone.

`reference_sinkhorn_knopp` transcribes the official float64 loop for the tests and the benchmark.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import acceleration, sinkhorn

from coarse2fine.methods.common.normalize import l2_normalize


def log_mixing_weights(coarse: jax.Array, mu_y: jax.Array, mu_z: jax.Array, sigmabar2: float = 1.0) -> jax.Array:
  """log pi^i_k = log_softmax_k(cos(mu_z[k], mu_y[y_i]) / sigmabar2).

  The paper's mixing weights (docs/methods/scgm.md#generative-model-and-notation).

  coarse: [N] int32; mu_y: [C, e]; mu_z: [r, e] (unnormalised). Returns [N, r] float32.
  """
  b = l2_normalize(mu_y.astype(jnp.float32)) @ l2_normalize(mu_z.astype(jnp.float32)).T / sigmabar2  # [C, r]
  return jax.nn.log_softmax(b, axis=1)[coarse]


def log_posterior(embeddings: jax.Array, coarse: jax.Array, mu_y: jax.Array, mu_z: jax.Array, *,
                  sigma2: float = 0.1, sigmabar2: float = 1.0, use_pi: bool = False) -> jax.Array:
  """log P[i, k] = log p(z=k | v_i) + log p(y_i | z=k), the E-step's input (docs/methods/scgm.md#e-step-target).

  embeddings: [N, e]; coarse: [N] int32; mu_y: [C, e]; mu_z: [r, e], none normalised.
  use_pi=False is the official code (no mixing weights); use_pi=True is the paper's 2.1, where
  p(z=k | v_i) = softmax_k(cos(v_i, mu_z[k]) / sigma2 + log pi^i_k). Returns [N, r] float32.
  """
  mu_z = l2_normalize(mu_z.astype(jnp.float32))
  mu_y = l2_normalize(mu_y.astype(jnp.float32))
  a = l2_normalize(embeddings.astype(jnp.float32)) @ mu_z.T / sigma2  # [N, r]
  if use_pi:
    a = a + log_mixing_weights(coarse, mu_y, mu_z, sigmabar2)
  b = mu_y @ mu_z.T / sigmabar2  # [C, r]
  log_p_yz = b - jax.nn.logsumexp(b, axis=0, keepdims=True)  # normalised over coarse classes, per k
  return jax.nn.log_softmax(a, axis=1) + log_p_yz[coarse]


class EStepResult(NamedTuple):
  """Balanced hard codes of N samples over r sub-classes."""

  codes: jax.Array  # [N] int32, argmax_k Q[i, k]
  column_potential: jax.Array  # [r] float32, g (cost units, max 0): Q[i, k] ~ exp(lam (log P[i, k] + g[k]))
  iterations: jax.Array  # [] int32, Sinkhorn iterations (one = a column then a row update)
  converged: jax.Array  # [] bool, marginal_error < threshold
  marginal_error: jax.Array  # [] float32, L1 norm of Q^T 1 - 1/r (Q has mass 1), after the last row update


def _row_normalised(log_p: jax.Array, g: jax.Array, lam: float) -> jax.Array:
  """lam (log P + g) minus its row log-sum-exp: [N, r] float32, each row's exp sums to 1.

  A per-row shift is absorbed into the row potential, so it leaves the solution unchanged; this
  one makes every row's largest kernel entry at most 1 and at least 1/r (no overflow, no empty row).
  A row max would be ~15x cheaper on CPU (no exponentials) but, measured, float32 kernel
  iterations from max-shifted rows stall on peaked P (10k iterations instead of 2k).
  """
  s = lam * (log_p + g[None, :])
  return s - jax.nn.logsumexp(s, axis=1, keepdims=True)


def first_argmax(x: jax.Array) -> jax.Array:
  """argmax over the last axis (first index on ties) as a max and a min: [..., r] -> [...] int32.

  Same result as jnp.argmax; XLA on CPU runs argmax's paired (value, index) reduction
  unvectorised, ~30x slower than these two plain reductions on [1M, 500].
  """
  top = jnp.max(x, axis=-1, keepdims=True)
  index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
  return jnp.min(jnp.where(x == top, index, x.shape[-1]), axis=-1)


def _column_step(s: jax.Array, g: jax.Array, lam: float) -> jax.Array:
  """One log-domain column update of g given row-normalised s: columns then carry mass 1/r each.

  Columns whose kernel underflows in float32 (a sub-class far from every sample) get their mass
  back here, in the log domain, before the kernel is exponentiated.
  """
  r = s.shape[1]
  n = s.shape[0]
  return g - (jax.nn.logsumexp(s, axis=0) - jnp.log(n / r)) / lam


@jax.tree_util.register_pytree_node_class
class _TransposedKernel(geometry.Geometry):
  """An ott `Geometry` whose kernel K [N, r] is stored transposed, as K^T [r, N] float32.

  XLA on CPU computes K^T u with K row-major [N, r] by transposing K (~15x slower than K v);
  with K^T stored row-major both products, K^T u and v^T K^T, stream memory once (~14 ms each
  at N = 100k, r = 500 on 2 cores). `apply_kernel` also skips the base class's
  `kernel ** (epsilon / eps)`, a full-matrix power per product when epsilon is not a compile-time
  constant; here epsilon is fixed (no schedule), so the exponent is always 1.
  """

  @property
  def shape(self) -> tuple[int, int]:
    r, n = self._kernel_matrix.shape
    return n, r

  @property
  def kernel_matrix(self) -> jax.Array:
    return self._kernel_matrix.T

  def apply_kernel(self, vec: jax.Array, eps: Optional[float] = None, axis: int = 0) -> jax.Array:
    del eps  # a fixed epsilon: see the class docstring
    return vec @ self._kernel_matrix if axis == 1 else self._kernel_matrix @ vec


STALLS = 1  # kernel chunks without progress before a log-domain run


def _recentre(g: jax.Array) -> jax.Array:
  return g - jnp.max(g)


def _solver(lse_mode: bool, threshold: float, inner_iterations: int, max_iterations: int,
            momentum: float) -> sinkhorn.Sinkhorn:
  return sinkhorn.Sinkhorn(
      lse_mode=lse_mode, threshold=threshold, inner_iterations=inner_iterations,
      max_iterations=max_iterations,
      momentum=None if momentum == 1.0 else acceleration.Momentum(value=momentum),
      implicit_diff=None)  # the result is under stop_gradient; no backward pass to set up


@functools.partial(jax.jit, static_argnames=("lam", "lse_mode", "threshold", "inner_iterations",
                                             "chunk_iterations", "log_domain_iterations", "max_iterations",
                                             "momentum", "epsilon_stages", "stage_threshold"))
def balanced_codes(log_p: jax.Array, *, lam: float = 25.0, init_column_potential: Optional[jax.Array] = None,
                   lse_mode: bool = False, threshold: float = 3e-3, inner_iterations: int = 10,
                   chunk_iterations: int = 100, log_domain_iterations: int = 20, max_iterations: int = 10000,
                   momentum: float = 1.0, epsilon_stages: int = 4, stage_threshold: float = 1e-2) -> EStepResult:
  """Balanced posterior by Sinkhorn through ott-jax, rounded to hard codes.

  See docs/methods/scgm.md#e-step-ott-jax-sinkhorn.

  log_p: [N, r] float32 log-posterior (`log_posterior`), may be sharded along rows; lam: the
  inverse entropic temperature (static). init_column_potential: [r] g of a previous E-step to
  warm-start from. Returns an `EStepResult` under stop_gradient.

  Default (lse_mode=False): log-stabilised kernel Sinkhorn in float32. Every `chunk_iterations`
  iterations the current potentials are absorbed into the kernel, K = exp(lam (log P + g) - f - c)
  with f the row log-sum-exp and c the column max, after one exact log-domain column update, and
  ott's kernel-mode Sinkhorn (two matrix-vector products per iteration, no exponentials) runs from
  scalings of ones on K stored transposed (`_TransposedKernel`). The absorption keeps the scalings
  near 1, so float32 neither overflows nor loses a row or column to underflow however peaked
  P^lam is (Schmitzer's stabilised scaling algorithm). On a 2-core CPU an iteration costs about
  as much as streaming K twice (~30 ms at N = 100k, r = 500, vs ~55 ms for the float64 numpy
  loop and ~300 ms for ott's log-domain mode, which evaluates N r exponentials per
  half-iteration; ott's stock dense `Geometry` in kernel mode costs ~600 ms because XLA
  transposes K for K^T u). Float32 kernel iterations can stall on very peaked P (the error stays
  flat while float64 iterations still progress); a chunk that does not reduce the error at all is
  followed by `log_domain_iterations` iterations of ott's log-domain Sinkhorn, which do progress.
  lse_mode=True instead runs ott's log-domain Sinkhorn for the whole solve (slow; the oracle).
  Measured in benchmarks/estep.py: larger chunks converge in more iterations (1000: 2-3x) or not
  at all (no absorption); momentum (over-relaxation) diverged or stalled in kernel mode.

  Stopping: ott's error, the L1 norm of the column marginal minus 1/r, checked every
  `inner_iterations`, below `threshold` (3e-3: ~0.3% relative error per column mass, where
  >= 99% of the codes already match the official loop's; 1e-3 costs 2-4x more iterations on
  peaked P for a few tenths of a percent more agreement; the official
  rule, sum_i |w_i/w'_i - 1| <= 0.1, is N times the L1 row error, far below float32 resolution at
  N = 1M). `momentum` != 1 sets ott's constant over-relaxation weight (not recommended).
  `iterations` counts kernel and log-domain iterations alike.

  Epsilon scaling (cold starts that do not converge within their first chunk at lam): the
  problem is then solved, to `stage_threshold`, at lam / 2^(epsilon_stages - 1), then at twice
  that, ..., each stage warm-started from the previous stage's column potential (g is in cost
  units, so it carries over between lams), and the last stage at lam to `threshold`. A smaller
  lam is a smoother kernel, solved in few iterations, and its g is close to the next stage's: on
  peaked P (trained-model-like) 4 stages cut the total iterations 4-7x (benchmarks/estep.py:
  1990 -> 275 at N = 100k, r = 500); random P converges within the first chunk (~50
  iterations), where the stages' set-up passes (a few full passes over [N, r] each) would cost
  up to 2x. epsilon_stages=1 turns it off; a
  warm start (`init_column_potential`) skips the stages. `max_iterations` bounds each stage.
  When the threshold is not met within `max_iterations`, `converged` is False and the codes are
  those of the last iterate.
  """
  log_p = jax.lax.stop_gradient(log_p.astype(jnp.float32))
  n, r = log_p.shape
  g = (jnp.zeros((r,), jnp.float32) if init_column_potential is None
       else jax.lax.stop_gradient(init_column_potential.astype(jnp.float32)))

  if lse_mode:
    eps = 1.0 / lam
    uniform = (jnp.full((n,), 1.0 / n, jnp.float32), jnp.full((r,), 1.0 / r, jnp.float32))
    s = _row_normalised(log_p, g, lam)
    geom = geometry.Geometry(cost_matrix=-s * eps, epsilon=eps)
    out = _solver(True, threshold, inner_iterations, max_iterations, momentum)(
        linear_problem.LinearProblem(geom, *uniform))
    g = _recentre(g + out.g)
    err = out.errors[jnp.maximum(out.n_iters // inner_iterations - 1, 0)]
    return _result(log_p, g, out.n_iters, err, threshold)

  solve = functools.partial(_stabilised_kernel_solve, log_p, inner_iterations=inner_iterations,
                            chunk_iterations=chunk_iterations, log_domain_iterations=log_domain_iterations,
                            momentum=momentum)
  if init_column_potential is not None or epsilon_stages <= 1:
    g, iterations, err = solve(g, lam, threshold, max_iterations=max_iterations)
    return _result(log_p, g, iterations, err, threshold)

  # A first chunk at lam: problems that converge within it (random-like P, ~50 iterations)
  # never pay the stages' set-up passes; the others continue from its g with the stages.
  g, probe_iterations, probe_err = solve(g, lam, threshold, max_iterations=chunk_iterations)

  def staged(g):
    iterations = probe_iterations
    for stage in range(epsilon_stages - 1, 0, -1):
      g, stage_iterations, _ = solve(g, lam / 2 ** stage, stage_threshold, max_iterations=max_iterations)
      iterations = iterations + stage_iterations
    g, stage_iterations, err = solve(g, lam, threshold, max_iterations=max_iterations)
    return g, iterations + stage_iterations, err

  g, iterations, err = jax.lax.cond(probe_err < threshold, lambda g: (g, probe_iterations, probe_err), staged, g)
  return _result(log_p, g, iterations, err, threshold)


def _stabilised_kernel_solve(log_p: jax.Array, g: jax.Array, lam: float, threshold: float, *,
                             inner_iterations: int, chunk_iterations: int, log_domain_iterations: int,
                             max_iterations: int, momentum: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The chunked, absorbed kernel-mode Sinkhorn of `balanced_codes` at one lam, from g.

  Returns (g [r], iterations [] int32, marginal error [] float32).
  """
  n, r = log_p.shape
  eps = 1.0 / lam
  uniform = (jnp.full((n,), 1.0 / n, jnp.float32), jnp.full((r,), 1.0 / r, jnp.float32))
  kernel_solver = _solver(False, threshold, inner_iterations, chunk_iterations, momentum)
  lse_solver = _solver(True, threshold, inner_iterations, log_domain_iterations, momentum)

  def kernel_chunk(s):
    # Each column scaled to max 1 as well: no column of the float32 kernel is all zeros (a zero
    # column freezes its scaling for the whole chunk), and every row keeps max >= 1/r since the
    # column maxima are <= 0. The shift goes into the returned potential.
    col_max = jnp.max(s, axis=0)
    kernel_t = jnp.exp(s - col_max[None, :]).T
    out = kernel_solver(linear_problem.LinearProblem(_TransposedKernel(kernel_matrix=kernel_t, epsilon=eps),
                                                     *uniform))
    # out.g = eps log(column scaling), absorbed into g: the next chunk restarts from scalings 1.
    return jnp.where(jnp.isfinite(out.g), out.g, 0.0) - col_max / lam, out.n_iters, out.errors

  def lse_chunk(g):
    s = _row_normalised(log_p, g, lam)
    out = lse_solver(linear_problem.LinearProblem(geometry.Geometry(cost_matrix=-s * eps, epsilon=eps), *uniform))
    return _recentre(g + jnp.where(jnp.isfinite(out.g), out.g, 0.0)), out.n_iters

  def chunk(carry):
    g, iters, _, stalls = carry
    # float32 kernel iterations can stop making progress where float64 ones (and the log domain)
    # still do: after a chunk that did not reduce the error, a short log-domain run (waiting for
    # two such chunks in a row was not enough to get out of a stall on a 20k x 100 problem).
    # (Only this branch sits in a cond; the kernel loop stays outside.)
    g, lse_iters = jax.lax.cond(stalls >= STALLS, lse_chunk, lambda g: (g, jnp.int32(0)), g)
    g = _column_step(_row_normalised(log_p, g, lam), g, lam)
    dg, n_iters, errors = kernel_chunk(_row_normalised(log_p, g, lam))
    err = errors[jnp.maximum(n_iters // inner_iterations - 1, 0)].astype(jnp.float32)
    stalled = (err >= errors[0]) & (n_iters >= chunk_iterations)
    stalls = jnp.where(stalled, jnp.where(stalls >= STALLS, 1, stalls + 1), 0).astype(jnp.int32)
    return _recentre(g + dg), (iters + lse_iters + n_iters + 1).astype(jnp.int32), err, stalls

  def more(carry):
    _, iters, err, _ = carry
    return (iters < max_iterations) & ~(err < threshold)

  g, iters, err, _ = jax.lax.while_loop(more, chunk, (g, jnp.int32(0), jnp.float32(jnp.inf), jnp.int32(0)))
  return g, iters, err


def _result(log_p, g, iters, err, threshold) -> EStepResult:
  codes = first_argmax(log_p + g[None, :])
  return jax.lax.stop_gradient(EStepResult(codes=codes, column_potential=g, iterations=jnp.int32(iters),
                                           converged=err < threshold, marginal_error=err.astype(jnp.float32)))


def transport_plan(log_p: jax.Array, column_potential: jax.Array, lam: float = 25.0) -> jax.Array:
  """Q [N, r] float32 of total mass 1 from the column potential (row potential eliminated exactly).

  Its row marginals are 1/N by construction; its column marginals are 1/r at the fixed point.
  """
  n = log_p.shape[0]
  return jnp.exp(_row_normalised(log_p.astype(jnp.float32), column_potential, lam)) / n


def reference_sinkhorn_knopp(p: np.ndarray, lam: float = 25.0) -> tuple[np.ndarray, int]:
  """The official float64 Sinkhorn loop, transcribed: (codes [N] int64, iterations).

  See the Sinkhorn point of docs/methods/scgm.md#departures-from-the-paper-and-the-official-code.

  p: [N, r] probabilities (P, not log P). Stops when nansum(|w / w_new - 1|), checked every 10
  iterations, is <= 0.1.
  """
  return official_sinkhorn_loop(np.asarray(p, np.float64).T ** lam)


def official_sinkhorn_loop(g_mat: np.ndarray, max_iterations: Optional[int] = None, errors: Optional[list] = None,
                           codes: bool = True) -> tuple[Optional[np.ndarray], int]:
  """The loop of `reference_sinkhorn_knopp` on G = P^T ** lam [r, N] float64, built by the caller.

  max_iterations caps it (for timing runs too long to finish); `errors`, if given, receives
  (iteration, err) at every check. codes=False skips the final [r, N] plan (returns None).
  """
  r, n = g_mat.shape
  u = np.ones(r) / r
  w = np.ones(n) / n
  it, err = 0, np.inf
  while err > 0.1 and (max_iterations is None or it < max_iterations):
    u = (1 / r) / (g_mat @ w)
    w_new = (1 / n) / (g_mat.T @ u)
    if it % 10 == 0:
      err = np.nansum(np.abs(w / w_new - 1))
      if errors is not None:
        errors.append((it, float(err)))
    w = w_new
    it += 1
  if not codes:
    return None, it
  q = (g_mat * w[None, :]) * u[:, None]
  return np.nanargmax(q, axis=0), it
