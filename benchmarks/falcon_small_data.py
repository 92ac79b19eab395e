"""FALCON at 2,000 training images: is its recipe too short, and for whom? Epochs chosen on validation.

  python benchmarks/falcon_small_data.py                       # every candidate, both taxonomies, seeds 0-1
  python benchmarks/falcon_small_data.py --only=falcon,coarse --seeds=0 --taxonomies=fmnist3
  python benchmarks/falcon_small_data.py --stage=table         # the table of the runs that exist, nothing trained

At 2,000 images FALCON's recipe (10 epochs of batch 256, benchmarks/discovery_quality.py's budget)
trains 70 steps, against 780 on the 20k images it was chosen on, and `benchmarks/results/robustness.md`
has it behind k-means on `coarse`'s features in both 2k cells. The candidates train FALCON, SCAN-C
and `coarse` (+ k-means inside each coarse class) for the recipe's 10 epochs and for 30 and 60 on the
same images, FALCON with the hooks of benchmarks/robustness.py's 2k cells (a relation solve every 3
steps, a warm-up of a 20th of the run). Every run holds out 10% of the 60k training images as a
validation split (`data.split_seed` = the seed draws the 2,000 from the rest) and is scored there:
the fine classes found within each coarse class (FALCON's own classes, SCAN-C's clusters, k-means with
the true counts on `coarse`'s features; Hungarian accuracy %). Runs are kept in `--workdir` and
reused. Writes benchmarks/results/falcon_small_data.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common, discovery_quality, robustness  # noqa: E402

SUBSET = 2000
TAXONOMIES = ("fmnist3", "fmnist_seasons")
STEPS_PER_EPOCH = SUBSET // discovery_quality.BUDGET["train.batch_size"]  # 7 at batch 256 (the last one dropped)
OWN, SCAN, KMEANS = robustness.OWN_WITHIN, "discovery/acc", robustness.WITHIN

# base name -> (config file, overrides, metric); each runs for every epoch count in EPOCHS
BASES = {
    "falcon": ("falcon_fashion_mnist.py", robustness.SMALL_FALCON, OWN),
    "scan_c": ("scan_fashion_mnist.py:c", {}, SCAN),
    "coarse": ("coarse_fashion_mnist.py", robustness.KMEANS_ONLY, KMEANS),
}
EPOCHS = (10, 30, 60)
CANDIDATES = {f"{base}/e{epochs}": (base, epochs) for base in BASES for epochs in EPOCHS}


def run(name: str, taxonomy: str, seed: int, workdir: str, train: bool = True) -> Optional[dict]:
  base, epochs = CANDIDATES[name]
  filename, overrides, metric = BASES[base]
  settings = {**discovery_quality.BUDGET, **overrides, "train.num_epochs": epochs, "data.taxonomy": taxonomy,
              "data.train_examples": SUBSET, "data.split_seed": seed, "data.val_fraction": 0.1, "eval.split": "val",
              "seed": seed}
  if base == "falcon":  # a 20th of the run, as `fit` and the robustness cells set it
    settings["falcon.warmup_steps"] = max(1, round(epochs * STEPS_PER_EPOCH / 20))
  rundir = os.path.join(workdir, taxonomy, f"{name.replace('/', '__')}_seed{seed}")
  metrics = common.kept_run(rundir, filename, settings, train)
  if metrics is None:
    return None
  return {"taxonomy": taxonomy, "run": name, "seed": seed, "discovery_acc": metrics[metric],
          "coarse_top1": metrics.get("val/coarse_top1")}


def summary(rows: list[dict]) -> list[dict]:
  """Mean and sd over seeds per (taxonomy, candidate), in the order of TAXONOMIES and CANDIDATES, with the
  per-seed scores."""
  order = {(tax, name): i for i, (tax, name) in enumerate((t, n) for t in TAXONOMIES for n in CANDIDATES)}
  rows = sorted(rows, key=lambda r: order[(r["taxonomy"], r["run"])])
  out = common.seed_summary(rows, ("taxonomy", "run"), ("discovery_acc", "coarse_top1"))
  for row in out:
    row["per_seed"] = " ".join(f"{r['discovery_acc']:.1f}" for r in rows
                               if (r["taxonomy"], r["run"]) == (row["taxonomy"], row["run"]))
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--stage", choices=("run", "table"), default="run")
  parser.add_argument("--workdir", default="workdirs/falcon_small_data")
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--taxonomies", default=",".join(TAXONOMIES))
  parser.add_argument("--only", default="", help="comma-separated candidate names (e.g. falcon/e30)")
  args = parser.parse_args()
  names = [n for n in CANDIDATES if not args.only or n in args.only.split(",")]
  rows = []
  for taxonomy in args.taxonomies.split(","):
    for seed in [int(s) for s in args.seeds.split(",")]:
      for name in names:
        row = run(name, taxonomy, seed, args.workdir, train=args.stage == "run")
        if row is not None:
          rows.append(row)
          print(json.dumps(row), flush=True)
  common.save("falcon_small_data", summary(rows),
              ["taxonomy", "run", "seeds", "discovery_acc", "discovery_acc_sd", "per_seed", "coarse_top1"],
              notes="Fashion-MNIST, 2,000 training images, validation split (6,000 images); discovery_acc: the fine "
                    "classes found within each coarse class (FALCON's own, SCAN-C's clusters, k-means with the "
                    "true counts on coarse's features), Hungarian accuracy %; coarse_top1 where the run has a "
                    "coarse classifier; mean and sd over seeds; `/eN`: N epochs of 7 steps.")


if __name__ == "__main__":
  main()
