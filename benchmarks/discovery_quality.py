"""Fine-class discovery on Fashion-MNIST (fmnist3): FALCON against SCAN-C, SCAN and k-means on `coarse`.

  python benchmarks/discovery_quality.py                 # one seed (about 6 minutes on 2 cores)
  python benchmarks/discovery_quality.py --seeds=0,1,2   # mean and spread over seeds

Equal budgets: every run trains the same randomly initialised ConvNet for 10 epochs on the
same fixed 20k-image subset of the training set (batch 256, SGD 0.1, cosine; the recipe of
configs/falcon_fashion_mnist.py) and is evaluated on the 10k test images. FALCON and SCAN-C
mine 20 neighbours per image within its coarse class on the raw pixels, SCAN over all
images. `coarse` is cross-entropy on the coarse labels; its clusters are k-means (K = 10)
on its features (`discovery/kmeans_*`), parents by majority coarse label. Metrics in
percent: Hungarian clustering accuracy, ARI, NMI, and for the relation M, accuracy and GED
(the official node-id GED) against the true fmnist3 taxonomy; only FALCON infers M from
training data: SCAN, SCAN-C and k-means get each cluster's majority coarse label on the test
split itself, so their relation figures are an upper bound. Runs are kept in
`--workdir` and reused. Writes benchmarks/results/discovery_quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine import train  # noqa: E402

BUDGET = {"data.train_examples": 20000, "train.num_epochs": 10, "train.batch_size": 256, "optimizer.lr": 0.1,
          "optimizer.weight_decay": 0.0, "optimizer.schedule": "cosine"}
# name -> (config, overrides, metric prefix of its clusters)
RUNS = {
    "falcon": ("falcon_fashion_mnist.py", {}, "discovery/clusters_"),
    "scan_c": ("scan_fashion_mnist.py:c", {}, "discovery/clusters_"),
    "scan": ("scan_fashion_mnist.py", {}, "discovery/clusters_"),
    "coarse + k-means": ("coarse_fashion_mnist.py", {"eval.protocols": ("classification", "kmeans")},
                         "discovery/kmeans_"),
}
METRICS = ("acc", "ari", "nmi", "relation_acc", "ged")


def run(name: str, seed: int, workdir: str) -> dict:
  filename, overrides, prefix = RUNS[name]
  config = common.load_config(filename, {**BUDGET, **overrides, "seed": seed})
  rundir = os.path.join(workdir, f"{name.replace(' ', '').replace('+', '_')}_seed{seed}")
  path = os.path.join(rundir, "results.json")
  if not os.path.exists(path):
    train.train_and_evaluate(config, rundir)
  with open(path) as f:
    metrics = json.load(f)["metrics"]
  return {m: metrics[prefix + m] for m in METRICS if prefix + m in metrics} | {
      "coarse_top1": metrics.get("test/coarse_top1")}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--workdir", default="workdirs/discovery_quality")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  rows = []
  for name in RUNS:
    per_seed = [run(name, seed, args.workdir) for seed in seeds]
    row = {"method": name, "seeds": len(seeds)}
    for key in (*METRICS, "coarse_top1"):
      values = [r[key] for r in per_seed if r.get(key) is not None]
      if values:
        row[key] = statistics.mean(values)
        if len(values) > 1:
          row[f"{key}_sd"] = statistics.stdev(values)
    rows.append(row)
    print(json.dumps(row), flush=True)
  columns = ["method", "seeds", *[c for m in (*METRICS, "coarse_top1") for c in (m, f"{m}_sd")]]
  columns = [c for c in columns if any(c in r for r in rows)]
  common.save("discovery_quality", rows, columns, notes=__doc__.split("\n\n", 2)[2].strip())


if __name__ == "__main__":
  main()
