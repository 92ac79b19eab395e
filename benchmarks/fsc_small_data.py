"""F-SC against SoftMax and SoftTriple with little data: why it trails, and the setting chosen on validation.

  python benchmarks/fsc_small_data.py                          # every candidate, 2k images, seeds 0-2
  python benchmarks/fsc_small_data.py --only=softmax,fsc/s3 --seeds=0
  python benchmarks/fsc_small_data.py --subset=20000 --seeds=0,1  # fsc_quality's 20k-image budget
  python benchmarks/fsc_small_data.py --stage=table            # the table of the runs that exist, nothing trained

F-SC's logits are w_{i,k}.x with the sub-centres fixed at their draw and no bias
(docs/methods/fsc.md#losses). At the paper's sigma^2 = 1e-3 and kaiming-uniform bound, |w| is
about sqrt(2) and the s sub-centres of a class nearly coincide, so the logits' range grows only
with |x|, which the encoder's weight decay holds down, while SoftMax's trainable head and
SoftTriple's lambda = 20 scale theirs freely. The candidates scale F-SC's logits
(`fsc.logit_scale`), drop the compactness term (beta 0) and draw the sub-centres with a larger
spread (sigma^2 0.1: |w| about 3.8, sub-centres of a class far apart), against SoftMax and
SoftTriple with the same ConvNet and budget (configs/fsc_fashion_mnist.py), on fine labels
(F-SC's own protocol, top-1) and on fmnist3's coarse labels (the fine classes the sub-centres
find within each coarse class, against SoftTriple's centres and k-means on SoftMax's features).
Every run trains on a subset of the training set (`data.split_seed` = the seed) with 10% of the
60k training images held out as a validation split, and is scored on that split, with the last
logged training loss and batch accuracy (is the head underfitting?). Runs are kept in
`--workdir` and reused; candidates not run keep their saved rows. Writes
benchmarks/results/fsc_small_data[_SUBSET].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

SUBSET = 2000
TOP1, OWN, KMEANS = "val/fine_top1", "discovery/clusters_within_acc", "discovery/kmeans_within_acc"

# name -> (head, label, overrides of configs/fsc_fashion_mnist.py:HEAD,LABEL). Fine labels: F-SC's own protocol
# (top-1); coarse labels (fmnist3): the fine classes its sub-centres find within each coarse class, against
# SoftTriple's centres and k-means on SoftMax's features (benchmarks/robustness.py's sub-centre rows).
CANDIDATES = {
    "softmax": ("softmax", "fine", {}),
    "softtriple": ("softtriple", "fine", {}),
    "fsc": ("fsc", "fine", {}),
    "fsc/beta0": ("fsc", "fine", {"fsc.beta": 0.0}),
    "fsc/sigma2_0.1": ("fsc", "fine", {"fsc.sigma2": 0.1}),
    "fsc/s2": ("fsc", "fine", {"fsc.logit_scale": 2.0}),
    "fsc/s3": ("fsc", "fine", {"fsc.logit_scale": 3.0}),
    "fsc/s5": ("fsc", "fine", {"fsc.logit_scale": 5.0}),
    "fsc/s10": ("fsc", "fine", {"fsc.logit_scale": 10.0}),
    "fsc/s30": ("fsc", "fine", {"fsc.logit_scale": 30.0}),
    "fsc/s10_beta0": ("fsc", "fine", {"fsc.logit_scale": 10.0, "fsc.beta": 0.0}),
    "fsc/s3_beta0": ("fsc", "fine", {"fsc.logit_scale": 3.0, "fsc.beta": 0.0}),
    # around sigma^2 0.1, for the full training set (--subset=0), where it still trails SoftMax and SoftTriple
    "fsc/sigma2_0.3": ("fsc", "fine", {"fsc.sigma2": 0.3}),
    "fsc/sigma2_1": ("fsc", "fine", {"fsc.sigma2": 1.0}),
    "fsc/sigma2_0.1_s2": ("fsc", "fine", {"fsc.sigma2": 0.1, "fsc.logit_scale": 2.0}),
    "fsc/sigma2_0.1_beta0": ("fsc", "fine", {"fsc.sigma2": 0.1, "fsc.beta": 0.0}),
    "softmax (coarse)": ("softmax", "coarse", {}),
    "softtriple (coarse)": ("softtriple", "coarse", {}),
    "fsc (coarse)": ("fsc", "coarse", {}),
    "fsc (coarse)/s3": ("fsc", "coarse", {"fsc.logit_scale": 3.0}),
    "fsc (coarse)/sigma2_0.1": ("fsc", "coarse", {"fsc.sigma2": 0.1}),
}


def run(name: str, seed: int, workdir: str, subset: int, train: bool = True) -> Optional[dict]:
  head, label, overrides = CANDIDATES[name]
  settings = {**overrides, "data.train_examples": subset, "data.split_seed": seed, "data.val_fraction": 0.1,
              "eval.split": "val", "seed": seed}
  if label == "coarse":
    settings["eval.protocols"] = ("classification", "clusters", "kmeans") if head != "softmax" else (
        "classification", "kmeans")
  rundir = os.path.join(workdir, f"train{subset or 'all'}", f"{_slug(name)}_seed{seed}")
  metrics = common.kept_run(rundir, f"fsc_fashion_mnist.py:{head},{label}", settings, train)
  if metrics is None:
    return None
  last = common.last_logged_step(rundir)
  return {"run": name, "seed": seed, "val_top1": metrics.get(TOP1),
          "subclasses_acc": metrics.get(OWN, metrics.get(KMEANS)) if label == "coarse" else None,
          "train_loss": last.get("train/loss"), "train_accuracy": last.get(f"train/{label}_accuracy")}


def _slug(name: str) -> str:
  return name.replace("/", "__").replace(" (coarse)", "_coarse")


def _order(row: dict) -> int:
  return list(CANDIDATES).index(row["run"])


def summary(rows: list[dict]) -> list[dict]:
  """Mean and sd over seeds per candidate, in the order of CANDIDATES."""
  return common.seed_summary(sorted(rows, key=_order), ("run",),
                             ("val_top1", "subclasses_acc", "train_loss", "train_accuracy"))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--stage", choices=("run", "table"), default="run")
  parser.add_argument("--workdir", default="workdirs/fsc_small_data")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--only", default="", help="comma-separated candidate names")
  parser.add_argument("--subset", type=int, default=SUBSET, help="training images (0: all 54k left by validation)")
  args = parser.parse_args()
  names = [n for n in CANDIDATES if not args.only or n in args.only.split(",")]
  rows = []
  for seed in [int(s) for s in args.seeds.split(",")]:
    for name in names:
      row = run(name, seed, args.workdir, args.subset, train=args.stage == "run")
      if row is not None:
        rows.append(row)
        print(json.dumps(row), flush=True)
  columns = ["run", "seeds", "val_top1", "val_top1_sd", "subclasses_acc", "subclasses_acc_sd", "train_loss",
             "train_accuracy"]
  size = f"{args.subset:,}" if args.subset else "all 54,000"
  name = "fsc_small_data" + ("" if args.subset == SUBSET else f"_{args.subset or 'full'}")
  table = summary(rows)
  table = sorted(common.kept_rows(name, table, ("run",)) + table, key=_order)  # + saved rows of candidates not run now
  common.save(name, table, columns,
              notes=f"Fashion-MNIST, {size} training images, validation split (6,000 images); val_top1: fine top-1 "
                    "(%) of the heads trained on the 10 fine classes; subclasses_acc: of the heads trained on "
                    "fmnist3's "
                    "3 coarse classes, the fine classes found within each coarse class (the sub-centres' for fsc and "
                    "softtriple, k-means with the true counts on softmax's features; Hungarian accuracy %); "
                    "train_loss and train_accuracy: the last logged step's (training batch accuracy, a fraction); "
                    "mean and sd over seeds.")


if __name__ == "__main__":
  main()
