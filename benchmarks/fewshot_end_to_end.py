"""Seconds for the full few-shot evaluation of a trained Fashion-MNIST (fmnist3) model.

  python benchmarks/fewshot_end_to_end.py --workdir=workdirs/coarse_fmnist

Three settings (5-way, all-way, intra-class; 1-shot), 1000 episodes each, 5 augmented
copies of every support image, embedding included: what `eval.protocols=("fewshot",)`
costs at the end of a run. The workdir must hold a run of
`configs/coarse_fashion_mnist.py`; without a checkpoint the script trains one first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine.engine import loop, runs  # noqa: E402
from coarse2fine.engine.checkpointing import Checkpointer  # noqa: E402
from coarse2fine.evaluation.evaluator import Evaluator  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "coarse_fashion_mnist.py")


def load_config():
  spec = importlib.util.spec_from_file_location("config", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--episodes", type=int, default=1000)
  args = parser.parse_args()
  config = load_config()
  config.logging.progress = False
  if Checkpointer(args.workdir, config).latest_step() is None:
    print(f"no checkpoint in {args.workdir}: training {CONFIG} first")
    loop.train_and_evaluate(config, args.workdir)
  config.eval.protocols = ("fewshot",)
  config.eval.fewshot_episodes = args.episodes
  run = runs.setup_run(config)
  checkpointer = Checkpointer(args.workdir, config)
  state, _ = checkpointer.restore(runs.abstract_like(run.state))
  checkpointer.close()
  evaluator = Evaluator(run.method, run.data, run.mesh, config)
  rows = []
  for attempt in ("first call (compiles)", "second call"):
    start = time.perf_counter()
    metrics = evaluator(state)
    seconds = time.perf_counter() - start
    rows.append({"call": attempt, "seconds": seconds, **{k.split("/")[1]: v for k, v in metrics.items()}})
    print(rows[-1], flush=True)
  columns = ["call", "seconds", "5way_1shot", "5way_1shot_ci95", "allway_1shot", "allway_1shot_ci95",
             "intra_1shot", "intra_1shot_ci95"]
  common.save("fewshot_end_to_end", rows, columns,
              notes=f"coarse baseline on fmnist3, {args.episodes} episodes per setting, 5 augmented copies "
                    f"(crop_flip), embeddings of the 10k test images included.")


if __name__ == "__main__":
  main()
