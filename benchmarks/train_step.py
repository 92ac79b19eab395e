"""Examples/s of the jitted train step (forward, backward, SGD update), against PyTorch.

  python benchmarks/train_step.py                 # all cases, default XLA settings
  python benchmarks/train_step.py --variants      # also XLA/JAX variants, one subprocess each

Cases: ConvNet and ResNet-18 (CIFAR stem), batch 256, on 28x28x1 and 32x32x3 inputs,
10 classes, cross-entropy, SGD with momentum and weight decay. The JAX step is the
library's own (`make_train_step` of the `fine` baseline). Where PyTorch is installed the
same network's step is timed in the same run and `torch/jax` is the time ratio (> 1: JAX
is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import common  # noqa: E402

CASES = [
    ("convnet", (28, 28, 1)),
    ("convnet", (32, 32, 3)),
    ("resnet18", (28, 28, 1)),
    ("resnet18", (32, 32, 3)),
]
# Variants that must be set before JAX starts, so each runs in its own process.
VARIANTS = {
    "default": {},
    "bfloat16": {"dtype": "bfloat16"},
    "batch128": {"batch_size": 128},
    "batch512": {"batch_size": 512},
    "no_thunk_runtime": {"env": {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false"}},
    "fast_math": {"env": {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}},
    "one_eigen_thread": {"env": {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}},
    # oneDNN is what PyTorch's CPU convolutions use; XNNPACK is XLA's newer CPU kernel library.
    "onednn": {"env": {"XLA_FLAGS": "--xla_cpu_use_onednn=true"}},
    "onednn_custom_call": {"env": {"XLA_FLAGS": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true"}},
    "xnnpack": {"env": {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}},
}


# ----------------------------------------------------------------------------- JAX
def jax_examples_per_second(encoder: str, shape, batch_size: int, steps: int, dtype: str = "float32") -> float:
  import jax

  from coarse2fine.config_base import base_config
  from coarse2fine.data.batch import Batch, example_ids
  from coarse2fine.data.splits import HierarchicalData, make_split
  from coarse2fine.data.taxonomy import Taxonomy
  from coarse2fine.engine import optim, sharding
  from coarse2fine.engine.runs import create_train_state
  from coarse2fine.methods import build_method, make_train_step

  config = base_config()
  config.method = "fine"
  config.model.encoder = encoder
  config.model.dtype = dtype
  taxonomy = Taxonomy.from_groups("bench", {"a": [str(i) for i in range(5)], "b": [str(i) for i in range(5, 10)]})
  rng = np.random.default_rng(0)
  fake = make_split(np.zeros((batch_size, *shape), np.uint8), fine=rng.integers(0, 10, batch_size),
                    taxonomy=taxonomy, where="bench")
  data = HierarchicalData("bench", taxonomy, fake, fake)
  method = build_method(config, data)
  mesh = sharding.make_mesh()
  schedule = optim.make_schedule(config.optimizer, 100, 100)
  state = create_train_state(method, config, shape, mesh, schedule)
  step = jax.jit(make_train_step(method, schedule, lambda batch: batch), donate_argnums=(0,))  # pre-augmented
  zeros = np.zeros(batch_size, np.int32)
  batch = sharding.global_batch(Batch(
      views=rng.normal(size=(batch_size, 1, *shape)).astype(np.float32), coarse=fake.coarse, fine=fake.fine,
      index=zeros, dataset=zeros, example=example_ids(0, np.arange(batch_size))), mesh)
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics["train/loss"])

  times = common.time_calls(run, repeats=steps, warmup=1)
  return batch_size / common.median(times)


# ----------------------------------------------------------------------------- PyTorch
def torch_examples_per_second(encoder: str, shape, batch_size: int, steps: int) -> float:
  import torch
  from torch import nn

  def conv_bn_relu(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

  class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.body = nn.Sequential(*conv_bn_relu(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                nn.BatchNorm2d(cout))
      self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                    if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
      return torch.relu(self.body(x) + self.short(x))

  h, w, c = shape
  if encoder == "convnet":  # mirrors coarse2fine.models.ConvNet: space-to-depth, 3 stages, max-pools
    layers = [nn.PixelUnshuffle(2)] + conv_bn_relu(4 * c, 32) + [nn.MaxPool2d(2)]
    layers += conv_bn_relu(32, 64) + [nn.MaxPool2d(2)] + conv_bn_relu(64, 128)
    dim = 128
  else:  # ResNet-18 with the CIFAR stem
    layers = conv_bn_relu(c, 64)
    cin = 64
    for i, width in enumerate((64, 128, 256, 512)):
      layers += [Basic(cin, width, 1 if i == 0 else 2), Basic(width, width, 1)]
      cin = width
    dim = 512
  model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, 10))
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  x = torch.randn(batch_size, c, h, w)
  y = torch.randint(0, 10, (batch_size,))
  loss_fn = nn.CrossEntropyLoss()

  def run():
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()

  times = common.time_calls(run, repeats=steps, warmup=1)
  return batch_size / common.median(times)


# Variants are timed on one case per network: a ResNet-18 step takes tens of seconds here.
VARIANT_CASES = [("convnet", (28, 28, 1)), ("resnet18", (32, 32, 3))]


def steps_for(encoder: str) -> int:
  return 20 if encoder == "convnet" else 2


def run_cases(batch_size: int, dtype: str, with_torch: bool, cases=CASES) -> list[dict]:
  rows = []
  for encoder, shape in cases:
    row = {"model": encoder, "input": "x".join(map(str, shape)), "batch": batch_size, "dtype": dtype}
    row["jax ex/s"] = jax_examples_per_second(encoder, shape, batch_size, steps_for(encoder), dtype)
    if with_torch:
      row["torch ex/s"] = torch_examples_per_second(encoder, shape, batch_size, steps_for(encoder))
      row["torch/jax time"] = row["jax ex/s"] / row["torch ex/s"]
    rows.append(row)
    print(json.dumps(row), flush=True)
  return rows


def torch_available() -> bool:
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--variants", action="store_true", help="also time XLA/JAX variants in subprocesses")
  parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
  parser.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:  # one variant, JAX only, rows printed as JSON on the last line
    spec = VARIANTS[args.child]
    rows = run_cases(spec.get("batch_size", 256), spec.get("dtype", "float32"), with_torch=False,
                     cases=VARIANT_CASES)
    print("ROWS" + json.dumps(rows))
    return

  with_torch = torch_available()
  if with_torch:
    import torch

    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
  rows = [dict(r, variant="default") for r in run_cases(256, "float32", with_torch)]
  columns = ["variant", "model", "input", "batch", "dtype", "jax ex/s", "torch ex/s", "torch/jax time"]
  if args.variants:
    baseline = {(r["model"], r["input"]): r["jax ex/s"] for r in rows}
    chosen = args.only.split(",") if args.only else list(VARIANTS)
    for name, spec in VARIANTS.items():
      if name == "default" or name not in chosen:
        continue
      env = {**os.environ, **spec.get("env", {})}
      done = subprocess.run([sys.executable, __file__, f"--child={name}"], capture_output=True, text=True, env=env)
      if done.returncode != 0:
        rows.append({"variant": name, "model": "failed: " + done.stderr.strip().splitlines()[-1][:80]})
        continue
      for row in json.loads(done.stdout.split("ROWS")[-1]):
        row["variant"] = name
        row["vs default"] = row["jax ex/s"] / baseline[(row["model"], row["input"])]
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns.append("vs default")
  common.save("train_step" + (f"_{args.only.replace(',', '_')}" if args.only else ""), rows, columns,
              notes="Median over timed steps (20 ConvNet, 2 ResNet-18) after 1 warm-up step. torch/jax time > 1 means JAX is faster.")


if __name__ == "__main__":
  main()
