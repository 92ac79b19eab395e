"""`coarse2fine.fit` with its defaults on the robustness datasets: are its discovered classes at least k-means?

  python benchmarks/api_defaults.py                          # both methods, every dataset, seeds 0-2
  python benchmarks/api_defaults.py --methods=falcon --datasets=pbmc --seeds=0

What a user gets from `fit(x, coarse, fine=fine, method=M)` with no other argument, on the datasets of
benchmarks/robustness.py that fit on this machine: Fashion-MNIST under `fmnist3` and `fmnist_seasons` on
2,000 training images (drawn with the seed) and PBMC's 700 cells; the full-size datasets
(`--datasets=fmnist3` or `fmnist_seasons`: all 60,000 training images, tens of minutes a fit on a 2-core CPU)
are not in the default set. Every fit is transductive (its report
scores the training examples, `test_fraction=0`), and its report (evaluation/baselines.py) sets the
method's own classes beside k-means inside each coarse class, with as many clusters per coarse class as
the method found, on the standardised inputs and on the model's features. Methods: the default
(`coarse2fine.methods.DEFAULT_METHOD`, FALCON) and SCGM-G. Runs are kept in `--workdir` and reused. Writes
benchmarks/results/api_defaults.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine import api  # noqa: E402
from coarse2fine.data.datasets.registry import load_dataset  # noqa: E402
from coarse2fine.evaluation import baselines  # noqa: E402
from coarse2fine.methods import DEFAULT_METHOD  # noqa: E402

SUBSET = 2000
SECOND = "scgm_g" if DEFAULT_METHOD != "scgm_g" else "falcon"  # the other discovering method measured beside it
DATASETS = ("fmnist3 2k", "fmnist_seasons 2k", "pbmc")


def arrays(dataset: str, seed: int):
  """(x, coarse, fine, coarse_names) a user would hand to `fit`."""
  if dataset == "pbmc":
    data = load_dataset(common.load_config("falcon_pbmc.py", {}).data)
  else:
    taxonomy, *size = dataset.split()  # "fmnist3 2k": a subset drawn with the seed; "fmnist3": all 60k
    if size and size != ["2k"]:
      raise SystemExit(f"Unknown dataset {dataset!r}: a taxonomy, then ' 2k' or nothing (all 60,000 images).")
    subset = {"data.train_examples": SUBSET, "data.split_seed": seed} if size else {}
    data = load_dataset(common.load_config("coarse_fashion_mnist.py", {"data.taxonomy": taxonomy, **subset}).data)
  split, taxonomy = data.train, data.taxonomy
  return np.asarray(split.inputs), np.asarray(split.coarse), np.asarray(split.fine), list(taxonomy.coarse_names)


def fit_report(dataset: str, method: str, seed: int, workdir: str, overrides: dict) -> dict:
  tag = "".join(f"_{k.rsplit('.', 1)[-1]}{v}" for k, v in sorted(overrides.items()))
  rundir = os.path.join(workdir, dataset.replace(" ", "_"), f"{method}{tag}_seed{seed}")
  x, coarse, fine, names = arrays(dataset, seed)
  model = api.fit(x, coarse, method=method, workdir=rundir, fine=fine, coarse_names=names, seed=seed,
                  config_overrides=overrides)
  rows = model.report["rows"]
  own = next(v for k, v in rows.items() if k.endswith("(its discovered classes)"))
  return {"dataset": dataset, "method": method, "seed": seed, "own_acc": own["acc"],
          "inputs_acc": rows[baselines.INPUTS_ROW]["acc"], "features_acc": rows[baselines.FEATURES_ROW]["acc"],
          "inputs_true_counts_acc": true_counts_kmeans_acc(x, coarse, fine, seed),
          # in the taxonomy's coarse order (a report read back from results.json has its keys sorted)
          "clusters_per_coarse": " ".join(str(model.report["clusters_per_coarse"][str(n)]) for n in names)}


def true_counts_kmeans_acc(x: np.ndarray, coarse: np.ndarray, fine: np.ndarray, seed: int) -> float:
  """Hungarian accuracy of k-means inside each coarse class on the standardised inputs with the true number of
  fine classes under each coarse class: an oracle `fit` cannot be (it is told only the total), beside its report's
  k-means with the method's own counts."""
  data = api.build_data(x, coarse, fine=fine)
  children = np.bincount(data.taxonomy.fine_to_coarse, minlength=data.taxonomy.num_coarse)
  inputs = baselines.standardised(data.train.inputs, data.mean, data.std)
  return baselines.scores(baselines.within_coarse_kmeans(inputs, np.asarray(data.train.coarse), children, seed),
                          np.asarray(data.train.fine))["acc"]


COLUMNS = ["dataset", "method", "seeds", "own_acc", "inputs_acc", "features_acc", "inputs_true_counts_acc",
           "lead_over_inputs", "seeds_at_least_inputs", "clusters_per_coarse"]
_DATASET_ORDER = ("fmnist3 2k", "fmnist3", "fmnist_seasons 2k", "fmnist_seasons", "pbmc")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--datasets", default=",".join(DATASETS))
  parser.add_argument("--methods", default=f"{DEFAULT_METHOD},{SECOND}")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--workdir", default="workdirs/api_defaults")
  parser.add_argument("--overrides", default="{}", help='JSON config_overrides, e.g. {"train.num_epochs": 40}: '
                      "a candidate default, saved as api_defaults_candidate")
  args = parser.parse_args()
  rows = []
  for dataset in args.datasets.split(","):
    for method in args.methods.split(","):
      for seed in [int(s) for s in args.seeds.split(",")]:
        rows.append(fit_report(dataset, method, seed, args.workdir, json.loads(args.overrides)))
        print(json.dumps(rows[-1]), flush=True)
  table = []
  for dataset in args.datasets.split(","):
    for method in args.methods.split(","):
      group = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
      lead = [r["own_acc"] - r["inputs_acc"] for r in group]
      table.append({"dataset": dataset, "method": method, "seeds": len(group),
                    "own_acc": statistics.fmean(r["own_acc"] for r in group),
                    "inputs_acc": statistics.fmean(r["inputs_acc"] for r in group),
                    "features_acc": statistics.fmean(r["features_acc"] for r in group),
                    "inputs_true_counts_acc": statistics.fmean(r["inputs_true_counts_acc"] for r in group),
                    "lead_over_inputs": statistics.fmean(lead),
                    "seeds_at_least_inputs": sum(v >= 0 for v in lead),
                    "clusters_per_coarse": "; ".join(r["clusters_per_coarse"] for r in group)})
  candidate = json.loads(args.overrides)
  name = "api_defaults_candidate" if candidate else "api_defaults"
  if not candidate:  # the saved rows of other datasets and methods stay, so that partial runs add up
    kept = common.kept_rows(name, table, ("dataset", "method"))
    for row in (r for r in kept if "inputs_true_counts_acc" not in r):  # saved before the column: no training
      row["inputs_true_counts_acc"] = statistics.fmean(  # needed; the saved rows ran on seeds 0..n-1
          true_counts_kmeans_acc(*arrays(row["dataset"], seed)[:3], seed) for seed in range(row["seeds"]))
    table = kept + table
    table.sort(key=lambda r: (_DATASET_ORDER.index(r["dataset"]) if r["dataset"] in _DATASET_ORDER else 99,
                              r["method"] != DEFAULT_METHOD))
  common.save(name, table, COLUMNS,
              notes=f"coarse2fine.fit with its defaults{' and ' + args.overrides if candidate else ''}, "
                    "transductive; Hungarian accuracy (%) of the method's "
                    "classes (each example's among its coarse class's children) and of k-means inside each "
                    "coarse class with the method's numbers of clusters, on the standardised inputs and on the "
                    "model's features (fit's report, evaluation/baselines.py), and of k-means on the inputs with "
                    "the true number of fine classes under each coarse class (`inputs_true_counts_acc`: an oracle, "
                    "told what fit is not); means over seeds.")


if __name__ == "__main__":
  main()
