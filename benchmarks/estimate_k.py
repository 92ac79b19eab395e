"""The estimated number of fine classes (`num_fine="estimate"`) against the truth, then FALCON with it.

  python benchmarks/estimate_k.py --stage=estimate [--pretrained=<MoCo v3 workdir of configs/pretrain_fashion_mnist.py>]
  python benchmarks/estimate_k.py --stage=estimate --criteria=silhouette --seeds=0,1,2 --output=estimate_k_seeds_a
  python benchmarks/estimate_k.py --stage=estimate --criteria=eigengap --seeds=0,1,2 --max_examples=2000 \
      --output=estimate_k_seeds_b                 # the two merged into estimate_k_seeds.{json,md}
  python benchmarks/estimate_k.py --stage=falcon --seeds=0,1

`estimate`: K_c per coarse class from `coarse2fine.methods.common.estimate_k` with each criterion, against
the true children, on fmnist3 and fmnist_seasons (the 20k-image training subset of
configs/falcon_fashion_mnist.py), PBMC (700 cells, `pbmc_lineages`) and generated vectors with uneven
children (`data.synthetic.children`). Features: the raw inputs (L2-normalised, 32 principal directions,
at most `--max_examples` per coarse class, `n per class`), and for Fashion-MNIST also a MoCo v3 ConvNet's features
(`--pretrained`, `checkpoint:` features as `estimate_k.features` reads them). `abs err` is
sum_c |K_c - true K_c|. Writes benchmarks/results/estimate_k.{json,md}.

`falcon`: configs/falcon_fashion_mnist.py on fmnist3 under benchmarks/discovery_quality.py's budget (20k images,
10 epochs), with `falcon.num_fine="estimate"` on the raw inputs (as the run's own neighbours): the default
(silhouette, 1000 per class) and the runner-up (eigengap, one draw of 2000 per class), against the true K = 10;
test-split discovery accuracy / ARI / NMI and the relation's accuracy (against the true M, so below 100 whenever
K differs from 10).
Writes benchmarks/results/estimate_k_falcon.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common, discovery_quality  # noqa: E402
from coarse2fine.config_base import base_config, fashion_mnist_cpu  # noqa: E402
from coarse2fine.data import load_dataset  # noqa: E402
from coarse2fine.engine.runs import features_from_checkpoint  # noqa: E402
from coarse2fine.methods.common import estimate_k  # noqa: E402

UNEVEN = (1, 2, 4, 6)  # generated children per coarse class
EIGENGAP = {"estimate_k.criterion": "eigengap", "estimate_k.max_examples": 2000}  # the runner-up, one draw


def dataset(name: str):
  config = base_config()
  if name.startswith("fmnist"):
    config = fashion_mnist_cpu(config)
    config.data.taxonomy = name
    config.data.train_examples = 20000  # the subset configs/falcon_fashion_mnist.py trains on
  elif name == "pbmc":
    config.data.name = "pbmc"
  else:
    config.data.name = "synthetic"
    config.data.synthetic.children = UNEVEN
    config.data.synthetic.num_train = 4096
    config.data.synthetic.fine_scale = 1.0  # fine centres closer than the default 2.0
  return load_dataset(config.data)


def estimate_rows(args) -> list[dict]:
  rows = []
  criteria = args.criteria.split(",")
  seeds = [int(s) for s in args.seeds.split(",")]
  for name in ("fmnist3", "fmnist_seasons", "pbmc", "synthetic_uneven"):
    data = dataset(name)
    true = np.bincount(data.taxonomy.fine_to_coarse, minlength=data.num_coarse)
    sources = {"inputs": data.train.inputs}
    if name.startswith("fmnist") and args.pretrained:
      start = time.perf_counter()
      sources["MoCo v3 features"] = features_from_checkpoint(args.pretrained, data, batch_size=1000)
      print(f"{name}: MoCo v3 features in {time.perf_counter() - start:.0f} s", flush=True)
    for source, features in sources.items():
      for criterion, seed in [(c, s) for c in criteria for s in seeds]:
        if criterion == "ded" and name.startswith("fmnist") and not args.ded_fmnist:
          continue  # t-SNE on 3 x 1000 images takes minutes on 2 shared cores
        found = estimate_k.estimate_children(features, data.train.coarse, data.num_coarse, k_max=args.k_max,
                                             criterion=criterion, max_examples=args.max_examples, seed=seed,
                                             repeats=args.repeats)
        row = {"data": name, "features": source, "criterion": criterion, "n per class": args.max_examples,
               "repeats": args.repeats, "seed": seed,
               "estimate": " ".join(map(str, found.per_coarse)), "true": " ".join(map(str, true)),
               "total": found.total, "true total": int(true.sum()),
               "abs err": int(np.abs(found.per_coarse - true).sum()), "seconds": round(found.seconds, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
  return rows


def falcon_rows(args) -> list[dict]:
  estimate = {"falcon.num_fine": "estimate"}
  runs = {"falcon, K by silhouette (default)": ("falcon_fashion_mnist.py", estimate, "discovery/clusters_"),
          "falcon, K by eigengap": ("falcon_fashion_mnist.py", {**estimate, **EIGENGAP}, "discovery/clusters_"),
          "falcon, true K": ("falcon_fashion_mnist.py", {}, "discovery/clusters_")}
  rows = []
  for name, spec in runs.items():
    per_seed = []
    for seed in [int(s) for s in args.seeds.split(",")]:
      start = time.perf_counter()
      result = discovery_quality.run(name, seed, args.workdir, runs)
      slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
      with open(os.path.join(args.workdir, "test", f"{slug}_seed{seed}", "results.json")) as f:
        saved = json.load(f)
      estimate = saved.get("num_fine_estimate")
      result["K"] = estimate["total"] if estimate else 10
      result["K per coarse"] = " ".join(map(str, estimate["per_coarse"])) if estimate else "4 3 3"
      result["seconds"] = round(time.perf_counter() - start)
      per_seed.append(result)
      print(name, seed, json.dumps(result), flush=True)
    row = discovery_quality.summarise(name, per_seed)
    row["K"] = " / ".join(str(r["K"]) for r in per_seed)
    row["K per coarse"] = " / ".join(r["K per coarse"] for r in per_seed)
    rows.append(row)
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--stage", choices=("estimate", "falcon"), default="estimate")
  parser.add_argument("--criteria", default=",".join(estimate_k.CRITERIA))
  parser.add_argument("--k_max", type=int, default=10)
  parser.add_argument("--max_examples", type=int, default=1000)
  parser.add_argument("--pretrained", default="", help="workdir of a MoCo v3 run of configs/pretrain_fashion_mnist.py")
  parser.add_argument("--ded_fmnist", action="store_true", help="also run the slow t-SNE criterion on Fashion-MNIST")
  parser.add_argument("--seeds", default="0", help="estimate: seeds of the draws; falcon: training seeds")
  parser.add_argument("--repeats", type=int, default=1, help="estimate: median over this many draws")
  parser.add_argument("--workdir", default="workdirs/estimate_k")
  parser.add_argument("--output", default="", help="results name (default estimate_k / estimate_k_falcon)")
  args = parser.parse_args()
  if args.stage == "estimate":
    rows = estimate_rows(args)
    columns = ["data", "features", "criterion", "n per class", "repeats", "seed", "estimate", "true", "total", "true total", "abs err", "seconds"]
    common.save(args.output or "estimate_k", rows, columns, notes=__doc__.split("\n\n", 2)[2].split("\n\n`falcon`")[0].strip())
  else:
    rows = falcon_rows(args)
    columns = ["method", "seeds", "K", "K per coarse", "acc", "acc_sd", "ari", "ari_sd", "nmi", "nmi_sd",
               "relation_acc", "ged", "coarse_top1", "per_seed_acc"]
    columns = [c for c in columns if any(c in r for r in rows)]
    common.save(args.output or "estimate_k_falcon", rows, columns, notes=__doc__.split("`falcon`: ", 1)[1].strip())


if __name__ == "__main__":
  main()
