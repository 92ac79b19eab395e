"""Fine-grained retrieval on Fashion-MNIST (fmnist3): MaskCon and its family, by Recall@K on fine labels.

  python benchmarks/retrieval_quality.py --stage=select   # every candidate on a validation split
  python benchmarks/retrieval_quality.py                  # test: each method at its best validation setting
  python benchmarks/retrieval_quality.py --seeds=0,1,2    # the same over seeds: mean and spread
  python benchmarks/retrieval_quality.py --stage=select --taxonomy=fmnist_seasons   # the grid on the other taxonomy

Equal budgets: every run trains the same randomly initialised ConvNet for 10 epochs on the
same fixed 20k-image subset of the training set (batch 256, SGD 0.05 with a 1-epoch warm-up
and cosine decay, weight decay 5e-4; configs/maskcon_fashion_mnist.py, whose ConvNet keeps its
last 3x3 map rather than averaging it). Recall@K (%) is
computed on the L2-normalised backbone features of the evaluation split, each image
querying all others (docs/evaluation.md#retrieval-recallk-maskcon). Candidates (w, T2, views) are scored on a validation
split (10% of the training set, stratified by coarse class; the 20k subset is drawn from
the rest); each method then runs on test with its best validation setting by Recall@1, as
the paper picks w per dataset. SupFINE (fine labels) is the upper reference; `raw pixels`
retrieves with the L2-normalised pixels themselves, the floor. Runs are kept in `--workdir`
and reused. Writes benchmarks/results/retrieval_quality{_select,}.{json,md} (fmnist3), or with
`--taxonomy=fmnist_seasons` retrieval_quality{_select,}_fmnist_seasons.{json,md} (its own validation choice).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine.engine import loop  # noqa: E402

CONFIG = "maskcon_fashion_mnist.py"
KS = (1, 2, 5, 10)
STRONG = {"data.views": ("strong", "weak")}  # the paper's query / key augmentations
MILD = {"data.views": ("crop_flip", "crop_flip")}  # pad-2 crop and flip for both views
# method -> {candidate name: overrides}; the method's mode is set by the config argument.
# The grid narrowed from a first selection with a mean-pooled ConvNet (results/retrieval_quality_select_meanpool.md):
# there T2 0.05 and w 0.5 trailed for MaskCon, w 0.5 for Grafit and CoIns, and the strong view helped most members.
CANDIDATES = {
    "maskcon": {
        "w1_t0.1_strong": {"maskcon.w": 1.0, "maskcon.t2": 0.1, **STRONG},
        "w1_t0.2_strong": {"maskcon.w": 1.0, "maskcon.t2": 0.2, **STRONG},
        "w0.8_t0.1_strong": {"maskcon.w": 0.8, "maskcon.t2": 0.1, **STRONG},
        "w1_t0.1": {"maskcon.w": 1.0, "maskcon.t2": 0.1, **MILD},
        # second round, around the first round's best
        "w0.9_t0.1_strong": {"maskcon.w": 0.9, "maskcon.t2": 0.1, **STRONG},
        "w0.7_t0.1_strong": {"maskcon.w": 0.7, "maskcon.t2": 0.1, **STRONG},
        "w0.6_t0.1_strong": {"maskcon.w": 0.6, "maskcon.t2": 0.1, **STRONG},
        "w0.8_t0.05_strong": {"maskcon.w": 0.8, "maskcon.t2": 0.05, **STRONG},
        "w0.8_t0.2_strong": {"maskcon.w": 0.8, "maskcon.t2": 0.2, **STRONG},
        "w0.8_t0.1_t1_0.2_strong": {"maskcon.w": 0.8, "maskcon.t2": 0.1, "maskcon.t1": 0.2, **STRONG},
    },
    "selfcon": {"default": MILD, "strong": STRONG},
    "grafit": {
        "w0.8": {"maskcon.w": 0.8, **MILD},
        "w0.8_strong": {"maskcon.w": 0.8, **STRONG},
        **{f"w{w}": {"maskcon.w": w, **MILD} for w in (0.9, 0.7, 0.6)},
    },
    "supcon": {"default": MILD, "strong": STRONG},
    "coins": {
        "w0.8": {"maskcon.w": 0.8, **MILD},
        "w0.8_strong": {"maskcon.w": 0.8, **STRONG},
        **{f"w{w}_strong": {"maskcon.w": w, **STRONG} for w in (0.9, 0.7, 0.6)},
    },
    "supce": {"default": MILD, "strong": STRONG},
    "supfine": {"default": MILD},
}
VALIDATION = {"data.val_fraction": 0.1, "eval.split": "val"}


DEFAULT_TAXONOMY = "fmnist3"  # the config's; runs and results of another taxonomy carry its name


def _suffix(taxonomy: str) -> str:
  return "" if taxonomy == DEFAULT_TAXONOMY else f"_{taxonomy}"


def run(method: str, candidate: str, split: str, workdir: str, seed: int = 0,
        taxonomy: str = DEFAULT_TAXONOMY) -> dict:
  overrides = {**CANDIDATES[method][candidate], **(VALIDATION if split == "val" else {}), "seed": seed,
               "data.taxonomy": taxonomy}
  config = common.load_config(f"{CONFIG}:{method}", overrides)
  rundir = os.path.join(workdir + _suffix(taxonomy), split,
                        f"{method}__{candidate}" + (f"__seed{seed}" if seed else ""))
  path = os.path.join(rundir, "results.json")
  if not os.path.exists(path):
    loop.train_and_evaluate(config, rundir)
  with open(path) as f:
    metrics = json.load(f)["metrics"]
  return {"method": method, "setting": candidate, **{f"R@{k}": metrics[f"retrieval/recall@{k}"] for k in KS}}


def raw_pixels(split: str, taxonomy: str = DEFAULT_TAXONOMY) -> dict:
  """Recall@K of the L2-normalised raw pixels of the evaluation split (the validation split depends on the
  taxonomy: it is stratified by coarse class)."""
  from coarse2fine.data import load_dataset
  from coarse2fine.evaluation import retrieval
  config = common.load_config(CONFIG, {**(VALIDATION if split == "val" else {}), "data.taxonomy": taxonomy})
  data = load_dataset(config.data)
  evaluated = data.val if split == "val" else data.test
  pixels = evaluated.inputs.reshape(len(evaluated), -1).astype(np.float32)
  pixels /= np.linalg.norm(pixels, axis=1, keepdims=True)
  recalls = retrieval.recall_at_k(pixels, evaluated.fine, ks=KS)
  return {"method": "raw pixels", "setting": "-", **{f"R@{k}": recalls[f"retrieval/recall@{k}"] for k in KS}}


def chosen_on_validation(taxonomy: str = DEFAULT_TAXONOMY) -> dict:
  path = os.path.join(common.RESULTS_DIR, f"retrieval_quality_select{_suffix(taxonomy)}.json")
  if not os.path.exists(path):
    raise SystemExit(f"Run the selection first: python benchmarks/retrieval_quality.py --stage=select "
                     f"--taxonomy={taxonomy}")
  with open(path) as f:
    rows = [r for r in json.load(f)["rows"] if r["method"] in CANDIDATES]
  best = {}
  for row in rows:
    if row["method"] not in best or row["R@1"] > best[row["method"]]["R@1"]:
      best[row["method"]] = row
  return {method: row["setting"] for method, row in best.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--stage", choices=("select", "final"), default="final")
  parser.add_argument("--workdir", default="workdirs/retrieval_quality")
  parser.add_argument("--only", default="", help="comma-separated methods")
  parser.add_argument("--seeds", default="0", help="final stage: comma-separated seeds (data order, init)")
  parser.add_argument("--out", default="", help="results name (default retrieval_quality[_select][_TAXONOMY])")
  parser.add_argument("--taxonomy", default=DEFAULT_TAXONOMY, choices=("fmnist3", "fmnist_seasons"))
  args = parser.parse_args()
  methods = [m for m in CANDIDATES if not args.only or m in args.only.split(",")]
  if args.stage == "select":
    split, output = "val", "retrieval_quality_select"
    plan = [(m, c) for m in methods for c in CANDIDATES[m]]
  else:
    split, output = "test", "retrieval_quality"
    chosen = chosen_on_validation(args.taxonomy)
    plan = [(m, chosen[m]) for m in methods if m in chosen]
  seeds = [int(x) for x in args.seeds.split(",")] if split == "test" else [0]
  rows = []
  for method, candidate in plan:
    per_seed = [run(method, candidate, split, args.workdir, seed, args.taxonomy) for seed in seeds]
    row = {"method": method, "setting": candidate, "seeds": len(seeds)}
    for k in KS:
      values = [r[f"R@{k}"] for r in per_seed]
      row[f"R@{k}"] = float(np.mean(values))
      if len(values) > 1:
        row[f"R@{k}_sd"] = float(np.std(values, ddof=1))
    if len(seeds) > 1:
      row["per_seed_R@1"] = " ".join(f"{r['R@1']:.2f}" for r in per_seed)
    rows.append(row)
    print(json.dumps(rows[-1]), flush=True)
  rows.append(raw_pixels(split, args.taxonomy))
  columns = ["method", "setting", "seeds", *[c for k in KS for c in (f"R@{k}", f"R@{k}_sd")], "per_seed_R@1"]
  columns = [c for c in columns if any(c in r for r in rows)]
  notes = (f"Split: {split}. " if split == "val" else "") + f"Taxonomy: {args.taxonomy}. " + \
      __doc__.split("\n\n", 2)[2].strip()
  common.save(args.out or output + _suffix(args.taxonomy), rows, columns, notes=notes)


if __name__ == "__main__":
  main()
