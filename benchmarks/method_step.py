"""Step time of each method's jitted train step over its reference's, same encoder and batch.

  python benchmarks/method_step.py                       # FALCON, SCAN-C, MaskCon, F-SC
  python benchmarks/method_step.py --methods=falcon --rounds=10

Each method runs from its CPU config (`configs/<method>_fashion_mnist.py`, real Fashion-MNIST).
The reference is the same config with only the method changed: plain cross-entropy on the
coarse labels (`coarse`, one view) for FALCON and SCAN-C, SupCE (MaskCon's cross-entropy
member, which skips the key encoder and queue) for MaskCon, the SoftMax head for F-SC;
encoder, batch size and optimizer are identical. One batch
per method comes from the real input pipeline (host views, sampled neighbours); the
timed loop then calls the jitted step (device augmentation included) on it (donated state, blocking on the result) and
measures neither data loading nor host hooks. Methods are timed in interleaved rounds, so
machine noise falls on all of them alike; the figure is the median ms per step over rounds,
and the ratio is against the reference of the same run. Writes
benchmarks/results/method_step.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

COARSE = {"method": "coarse", "data.views": ("crop_flip",)}
# method -> (config, reference name, overrides that make the reference, target ratio from its issue or None)
METHODS = {
    "falcon": ("falcon_fashion_mnist.py", "coarse", COARSE, 3.5),
    "scan_c": ("scan_fashion_mnist.py:c", "coarse", COARSE, None),
    "maskcon": ("maskcon_fashion_mnist.py", "supce", {"maskcon.mode": "supce"}, 1.5),
    "fsc": ("fsc_fashion_mnist.py", "softmax", {"fsc.head": "softmax"}, None),
}


def timed_step(config):
  """A zero-argument function running one jitted train step of `config` on one fixed pipeline batch."""
  import jax

  from coarse2fine.data import pipeline
  from coarse2fine.engine import runs, sharding
  from coarse2fine.methods import make_train_step

  run = runs.setup_run(config)
  neighbours = run.method.neighbour_sampling()
  batches = pipeline.train_dataset(run.data, config.data, views=run.method.views,
                                   global_batch_size=config.train.batch_size, seed=config.seed, neighbours=neighbours)
  batch = sharding.global_batch(next(iter(batches)), run.mesh)
  augment = pipeline.make_device_augment(run.data, config.data, run.method.views, config.seed,
                                         with_neighbours=neighbours is not None)
  step = jax.jit(make_train_step(run.method, run.schedule, augment), donate_argnums=(0,))
  holder = {"state": run.state}

  def call():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics)

  call()  # compile
  return call


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--steps", type=int, default=5, help="steps per method per round")
  parser.add_argument("--train_examples", type=int, default=4096, help="training subset (neighbour mining)")
  args = parser.parse_args()
  names = args.methods.split(",")
  unknown = set(names) - set(METHODS)
  if unknown:
    raise SystemExit(f"Unknown --methods {sorted(unknown)}; choose from {sorted(METHODS)}.")

  calls, references = {}, {}
  for name in names:
    filename, _, reference_overrides, _ = METHODS[name]
    overrides = {"data.train_examples": args.train_examples}
    calls[name] = timed_step(common.load_config(filename, overrides))
    references[name] = timed_step(common.load_config(filename, {**overrides, **reference_overrides}))

  per_step = {f"{n}/{kind}": [] for n in names for kind in ("method", "reference")}
  for _ in range(args.rounds):
    for name in names:
      for kind, call in (("method", calls[name]), ("reference", references[name])):
        start = time.perf_counter()
        for _ in range(args.steps):
          call()
        per_step[f"{name}/{kind}"].append((time.perf_counter() - start) / args.steps)

  rows = []
  for name in names:
    filename, reference_name, _, target = METHODS[name]
    method_ms = 1e3 * common.median(per_step[f"{name}/method"])
    reference_ms = 1e3 * common.median(per_step[f"{name}/reference"])
    ratios = [m / r for m, r in zip(per_step[f"{name}/method"], per_step[f"{name}/reference"])]
    rows.append({"method": name, "config": filename, "reference": reference_name, "method_ms": round(method_ms, 2),
                 "reference_ms": round(reference_ms, 2), "ratio": round(method_ms / reference_ms, 3),
                 "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3), "target": target})
  columns = ["method", "config", "reference", "method_ms", "reference_ms", "ratio", "ratio_min", "ratio_max", "target"]
  notes = (f"Median ms per step over {args.rounds} interleaved rounds of {args.steps} steps; ratio = method / "
           "reference, ratio_min/max over rounds. " + __doc__.split("\n\n", 2)[2].strip())
  common.save("method_step", rows, columns, notes=notes)


if __name__ == "__main__":
  main()
