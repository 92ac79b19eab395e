"""Cost of keying every example's augmentation draws (the pipeline's per-example generators).

  python benchmarks/example_streams.py [--rounds=7] [--batch=256]

The pipeline gives each example its own random stream, keyed by (seed, global batch,
position), so that any number of processes reads exactly the batches of one process
(`pipeline.ExampleStreams`: one Philox generator re-keyed per example). This times the
batch transform with those streams against the same transform sharing one generator across
the batch (the earlier scheme), in interleaved rounds on the same indices; the ratio is
keyed / shared. Synthetic 28x28x1 (Fashion-MNIST-sized) and 32x32x3
images, `crop_flip` and `strong` views. Writes benchmarks/results/example_streams.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from coarse2fine.config_base import base_config  # noqa: E402
from coarse2fine.data import load_dataset, pipeline  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--batch", type=int, default=256)
  args = parser.parse_args()
  rows = []
  for shape in ((28, 28, 1), (32, 32, 3)):
    config = base_config().data
    config.name = "synthetic"
    config.synthetic.kind = "images"
    config.synthetic.image_shape = shape
    config.synthetic.num_train = 4 * args.batch
    data = load_dataset(config)
    indices = np.random.default_rng(0).permutation(len(data.train))[:args.batch]
    keys = np.stack([np.zeros(args.batch, int), np.ones(args.batch, int), np.arange(args.batch)], axis=1)
    for view in ("crop_flip", "strong"):
      transform = pipeline.make_transform(data, config, (view,))
      example = keys[:, 1:3]
      calls = {"keyed": lambda: transform(indices, pipeline.ExampleStreams(keys), example),
               "shared": lambda: transform(indices, [np.random.default_rng(0)] * args.batch, example)}
      times = {name: [] for name in calls}
      for _ in range(args.rounds):
        for name, call in calls.items():
          start = time.perf_counter()
          call()
          times[name].append(time.perf_counter() - start)
      keyed, shared = (1e6 * common.median(times[n]) / args.batch for n in ("keyed", "shared"))
      rows.append({"images": "x".join(map(str, shape)), "view": view, "keyed_us_per_example": round(keyed, 1),
                   "shared_us_per_example": round(shared, 1), "ratio": round(keyed / shared, 3)})
      print(rows[-1], flush=True)
  common.save("example_streams", rows, list(rows[0]),
              notes=f"Median over {args.rounds} interleaved rounds of one batch of {args.batch}. " +
              __doc__.split("\n\n", 2)[2].strip())


if __name__ == "__main__":
  main()
