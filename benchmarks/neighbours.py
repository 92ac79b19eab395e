"""Neighbour mining: `neighbours.mine_neighbours` (JAX, float32) against a float64 numpy brute force.

  python benchmarks/neighbours.py                          # all rows (about 10 minutes on 2 cores)
  python benchmarks/neighbours.py --sizes=10000 --dims=128 --out=/tmp/nb_smoke   # a smoke run

Data: the Fashion-MNIST training images (Debian's dataset-fashion-mnist), flattened pixels in
[0, 1] (D = 784) or a fixed Gaussian random projection of them to D = 128; N = 10k is the
first 10k images. Groups: the `fmnist3` coarse classes (24k / 18k / 18k at N = 60k), or none
(one group, as SCAN mines). k = 20, rows L2-normalised, self excluded by index.
`jax_first_s` is the first call (compilation included), `jax_s` the median of `--repeats`
further calls, both including the transfer of X to the device and of the result back.
The reference normalises in float64 and, per group and per block of 2048 queries, takes
the k largest of Q @ K^T by `argpartition` then sorts them by (-similarity, index); rows with
a tie across the k-th place fall back to a stable argsort. `speedup` = reference s / jax_s.
`same_set_%`: rows whose 20 neighbours are the same set as the reference's; `same_order_%`:
the same list in the same order; `max_sim_gap`: over all rows, the largest difference
between the float64 similarities of the JAX list and of the reference list, rank by rank
(a gap near 1e-7 means the differences are float32 near-ties, not mistakes).
1M extrapolation: with a fixed number of groups, the window grows like N, so the work is
N x window x D, i.e. quadratic in N: seconds(1M) = seconds(60k) x (1M / 60k)^2.
`peak_MB_1M` is XLA's memory analysis (arguments + outputs + temporaries) of the program
compiled, not run, for N = 1M with the same group proportions and the default block size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import ml_collections
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import common  # noqa: E402
from coarse2fine.data.datasets import fashion_mnist  # noqa: E402
from coarse2fine.methods.common import neighbours  # noqa: E402

K = 20
COLUMNS = ["N", "D", "groups", "block", "window", "jax_first_s", "jax_s", "numpy_f64_s", "speedup", "same_set_%",
           "same_order_%", "max_sim_gap", "jax_1M_est_s", "numpy_1M_est_s", "peak_MB_1M"]


def load_features() -> tuple[np.ndarray, np.ndarray]:
  """Fashion-MNIST train pixels [60000, 784] float32 in [0, 1] and fmnist3 coarse labels [60000]."""
  data = fashion_mnist.load(ml_collections.ConfigDict({"dir": "", "taxonomy": "fmnist3"}))
  x = np.asarray(data.train.inputs).reshape(len(data.train.coarse), -1).astype(np.float32) / 255
  return x, np.asarray(data.train.coarse, np.int32)


def normalized64(x: np.ndarray) -> np.ndarray:
  x = x.astype(np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def reference(x: np.ndarray, groups: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
  """[N, k] exact neighbours in float64, ties by lower index (see the module docstring)."""
  xn = normalized64(x)
  out = np.empty((len(x), k), np.int64)
  for g in np.unique(groups):
    members = np.flatnonzero(groups == g)
    keys = xn[members]
    for start in range(0, len(members), block):
      rows = np.arange(start, min(start + block, len(members)))
      sims = xn[members[rows]] @ keys.T
      sims[np.arange(len(rows)), rows] = -np.inf  # self, by index
      part = np.argpartition(-sims, k, axis=1)[:, :k + 1]  # k largest, then the (k+1)-th
      vals = np.take_along_axis(sims, part, 1)
      top = np.lexsort((part, -vals), axis=1)  # by -similarity, then index
      part, vals = np.take_along_axis(part, top, 1), np.take_along_axis(vals, top, 1)
      chosen = part[:, :k]
      for r in np.flatnonzero(vals[:, k - 1] == vals[:, k]):  # a tie across the k-th place
        chosen[r] = np.argsort(-sims[r], kind="stable")[:k]
      out[members[rows]] = members[chosen]
  return out


def agreement(x: np.ndarray, got: np.ndarray, want: np.ndarray) -> dict:
  same_set = np.all(np.sort(got, 1) == np.sort(want, 1), axis=1)
  xn = normalized64(x)

  def sims(idx):  # [N, k] float64 similarity of each row to its listed neighbours
    return np.concatenate([np.einsum("nd,nkd->nk", xn[i:i + 5000], xn[idx[i:i + 5000]])
                           for i in range(0, len(x), 5000)])

  gap = float(np.max(np.abs(sims(got) - sims(want))))
  same_order = np.all(got == want, axis=1)
  return {"same_set_%": 100.0 * float(np.mean(same_set)), "same_order_%": 100.0 * float(np.mean(same_order)),
          "max_sim_gap": f"{gap:.1e}"}


def peak_mb_1m(groups: np.ndarray | None, d: int) -> float:
  """XLA's memory estimate of the default-block program at N = 1M (compiled only)."""
  n = 1_000_000
  big = None if groups is None else np.sort(groups[np.linspace(0, len(groups) - 1, n).astype(int)])
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
  plan = neighbours.make_plan(big, n, 1)
  # The jitted program mine_neighbours would run, lowered without data.
  fn = neighbours._miner(mesh, K, plan.block_size, plan.window, True, "highest", None)  # pylint: disable=W0212
  spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)  # noqa: E731
  stats = fn.lower(jax.ShapeDtypeStruct((n, d), np.float32), *map(spec, plan[:4])).compile().memory_analysis()
  if stats is None:
    return float("nan")
  return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) / 2 ** 20


def bench(x: np.ndarray, groups: np.ndarray | None, label: str, args, block_size=None) -> dict:
  n, d = x.shape
  plan = neighbours.make_plan(groups, n, 1, block_size)
  start = time.perf_counter()
  got = neighbours.mine_neighbours(x, groups, K, block_size=block_size)
  first = time.perf_counter() - start
  times = common.time_calls(lambda: neighbours.mine_neighbours(x, groups, K, block_size=block_size),
                            repeats=args.repeats, warmup=0)
  row = {"N": n, "D": d, "groups": label, "block": plan.block_size, "window": plan.window, "jax_first_s": first,
         "jax_s": common.median(times)}
  if block_size is None:
    start = time.perf_counter()
    want = reference(x, np.zeros(n, np.int32) if groups is None else groups, K)
    row["numpy_f64_s"] = time.perf_counter() - start
    row["speedup"] = row["numpy_f64_s"] / row["jax_s"]
    row.update(agreement(x, got, want))
    if n == 60_000:
      scale = (1_000_000 / n) ** 2
      row["jax_1M_est_s"], row["numpy_1M_est_s"] = row["jax_s"] * scale, row["numpy_f64_s"] * scale
      row["peak_MB_1M"] = peak_mb_1m(groups, d)
  print(row, flush=True)
  return row


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="10000,60000")
  parser.add_argument("--dims", default="128,784")
  parser.add_argument("--groupings", default="fmnist3,none")
  parser.add_argument("--block-sweep", default="256,512,2048", help="extra block sizes at 60k x 784, fmnist3")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--out", default="neighbours")
  args = parser.parse_args()
  pixels, coarse = load_features()
  projection = np.random.default_rng(0).standard_normal((784, 128)).astype(np.float32) / np.sqrt(128)
  features = {784: pixels, 128: pixels @ projection}
  rows, start = [], time.perf_counter()

  def save():
    notes = (__doc__.split("\n\n", 2)[2] + f"\nTotal benchmark time {time.perf_counter() - start:.0f} s. "
             f"Machine: {os.cpu_count()} CPU cores shared with other jobs (noisy wall-clock); reference and JAX "
             "ran in the same process, one after the other. Rows with only JAX times are the block-size sweep.")
    common.save(args.out, rows, COLUMNS, notes=notes)

  for n in map(int, args.sizes.split(",")):
    for d in map(int, args.dims.split(",")):
      for grouping in args.groupings.split(","):
        rows.append(bench(features[d][:n], coarse[:n] if grouping == "fmnist3" else None, grouping, args))
        save()  # after every row, so an interrupted run keeps what it measured
  if args.block_sweep and 60000 in map(int, args.sizes.split(",")) and 784 in map(int, args.dims.split(",")):
    for block in map(int, args.block_sweep.split(",")):
      rows.append(bench(features[784], coarse, "fmnist3", args, block_size=block))
      save()


if __name__ == "__main__":
  main()
