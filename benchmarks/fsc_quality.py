"""F-SC against SoftMax, centre loss and SoftTriple on Fashion-MNIST, on fine and on coarse labels.

  python benchmarks/fsc_quality.py                  # 4 heads x 2 label levels x 3 seeds
  python benchmarks/fsc_quality.py --seeds=0 --only=fsc,softmax
  python benchmarks/fsc_quality.py --stage=ablation  # F-SC's parts, fine labels, seed 0

Equal budgets: every head trains the same randomly initialised ConvNet
(configs/fsc_fashion_mnist.py: 6 epochs of batch 128, SGD 0.05 with cosine decay, weight
decay 5e-4, pad-2 crop and flip) on the same fixed 20k-image subset of the training set;
each head keeps its paper's defaults (F-SC s 4, sigma^2 1e-3, beta 1e-4; centre loss
lambda .003, alpha .5; SoftTriple K 4, lambda 20, gamma .1, delta .01, tau .2). Fine labels
(10 classes): test top-1. Coarse labels (fmnist3, 3 classes): coarse top-1, and the fine
structure the features keep: discovery by the head's own sub-centres (fsc, softtriple:
`clusters`, 12 sub-classes for 10 fine classes, Hungarian-matched), k-means within each
coarse class on the backbone features, SCGM's 1-shot few-shot (300 episodes) and Recall@1.
A second table counts trainable parameters, optimizer-state values and fixed (method-state)
values of each head. `--stage=ablation` varies one F-SC setting at a time on fine labels.
Runs are kept in `--workdir` and reused. Writes benchmarks/results/fsc_quality{,_counts,_ablation}.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine.engine import loop, runs  # noqa: E402

CONFIG = "fsc_fashion_mnist.py"
HEADS = ("fsc", "softmax", "centre", "softtriple")
BUDGET = {"data.train_examples": 20000, "eval.fewshot_episodes": 300, "fsc.num_sub": 4}
FINE_METRICS = {"top-1": "test/fine_top1"}
COARSE_METRICS = {
    "coarse top-1": "test/coarse_top1",
    "sub-centre acc": "discovery/clusters_acc",
    "sub-centre ARI": "discovery/clusters_ari",
    "sub-centre NMI": "discovery/clusters_nmi",
    "k-means-within acc": "discovery/kmeans_within_acc",
    "k-means-within ARI": "discovery/kmeans_within_ari",
    "5-way 1-shot": "fewshot/5way_1shot",
    "intra 1-shot": "fewshot/intra_1shot",
    "R@1": "retrieval/recall@1",
}


# F-SC variants of the ablation: name -> overrides of the paper defaults.
ABLATIONS = {
    "paper defaults (s 4, beta 1e-4, logit assignment, kaiming-uniform centres)": {},
    "beta 0 (no compactness term)": {"fsc.beta": 0.0},
    "s 1 (one fixed centre per class)": {"fsc.num_sub": 1},
    "euclidean assignment": {"fsc.assign": "euclidean"},
    "linear-default centre bound 1/sqrt(d)": {"fsc.centre_init": "linear_default"},
}


def run(head: str, label: str, seed: int, workdir: str, overrides: dict | None = None, tag: str = "") -> dict:
  config = common.load_config(f"{CONFIG}:{head},{label}", {**BUDGET, **(overrides or {}), "seed": seed})
  rundir = os.path.join(workdir, f"{head}_{label}{tag}_seed{seed}")
  path = os.path.join(rundir, "results.json")
  if not os.path.exists(path):
    loop.train_and_evaluate(config, rundir)
  with open(path) as f:
    return json.load(f)["metrics"]


def summarise(head: str, label: str, per_seed: list[dict], names: dict) -> dict:
  row = {"head": head, "labels": label, "seeds": len(per_seed)}
  for column, key in names.items():
    values = [m[key] for m in per_seed if key in m]
    if values:
      row[column] = float(np.mean(values))
      if len(values) > 1:
        row[column + " sd"] = float(np.std(values, ddof=1))
  return row


def counts(head: str) -> dict:
  """Trainable parameters, optimizer-state values and fixed method-state values of a head (coarse labels)."""
  import jax

  from coarse2fine.data import load_dataset
  from coarse2fine.engine import optim, sharding
  from coarse2fine.methods import build_method

  config = common.load_config(f"{CONFIG}:{head},coarse", BUDGET)
  data = load_dataset(config.data)
  method = build_method(config, data)
  state = runs.create_train_state(method, config, data.input_shape, sharding.make_mesh(),
                                   optim.make_schedule(config.optimizer, 10, 100))
  size = lambda tree: sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree.leaves(tree))
  head_params = {k: v for k, v in state.params.items() if k != "encoder"}
  return {"head": head, "trainable params": size(state.params), "of which head": size(head_params),
          "optimizer-state values": size(state.opt_state), "fixed values (method state)": size(state.extra)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--stage", choices=("compare", "ablation"), default="compare")
  parser.add_argument("--workdir", default="workdirs/fsc_quality")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--only", default="", help="comma-separated heads")
  args = parser.parse_args()
  heads = [h for h in HEADS if not args.only or h in args.only.split(",")]
  seeds = [int(s) for s in args.seeds.split(",")]
  notes = __doc__.split("\n\n", 2)[2].strip()
  if args.stage == "ablation":
    rows = []
    for index, (name, overrides) in enumerate(ABLATIONS.items()):
      per_seed = [run("fsc", "fine", s, args.workdir, overrides, tag=f"_ablation{index}" if index else "")
                  for s in seeds]
      rows.append({"variant": name, **summarise("fsc", "fine", per_seed, FINE_METRICS)})
      print(json.dumps(rows[-1]), flush=True)
    common.save("fsc_quality_ablation", rows, ["variant", "seeds", "top-1", "top-1 sd"], notes=notes)
    return

  fine_rows, coarse_rows = [], []
  for label, rows, names in (("fine", fine_rows, FINE_METRICS), ("coarse", coarse_rows, COARSE_METRICS)):
    for head in heads:
      rows.append(summarise(head, label, [run(head, label, s, args.workdir) for s in seeds], names))
      print(json.dumps(rows[-1]), flush=True)
  columns = lambda names: ["head", "labels", "seeds", *[c for n in names for c in (n, n + " sd")]]
  used = lambda cols, rows: [c for c in cols if any(c in r for r in rows)]
  rows = fine_rows + coarse_rows
  common.save("fsc_quality", rows, used(columns({**FINE_METRICS, **COARSE_METRICS}), rows), notes=notes)
  count_rows = [counts(h) for h in heads]
  common.save("fsc_quality_counts", count_rows, list(count_rows[0]),
              notes="Counts for the fmnist3 (coarse, 3 classes) ConvNet of configs/fsc_fashion_mnist.py; "
                    "SGD with momentum keeps one value per parameter plus a step counter.")


if __name__ == "__main__":
  main()
