r"""What only an accelerator can show, in one run: train steps, E-step, neighbour mining, few-shot, PyTorch.

  python benchmarks/device_suite.py                    # the accelerator sizes (benchmarks/device_suite.sh)
  python benchmarks/device_suite.py --small --out_suffix=_cpu   # the same code at CPU sizes, as a check

Sections (`--sections`):
  steps       each method's jitted train step (ResNet-50, bfloat16, a global batch of 256 at 224 px):
              with the device augmentation inside the step (uint8 views in), and for coarse and
              FALCON also on pre-augmented float views, which shows what the augmentation costs;
  torch_step  PyTorch's ResNet-50 step on the same batch (channels-last, bfloat16 autocast, SGD),
              where torch and torchvision are installed;
  estep       SCGM's E-step (`scgm.estep.balanced_codes`) at n = 1M, r = 500;
  neighbours  within-group neighbour mining (`common.neighbours.mine_neighbours`) at 1M x 2048, 20 groups;
  fewshot     the few-shot protocol's batched logistic regressions, 1000 all-way 1-shot episodes.
Every figure is the median of timed calls after a compiled warm-up. Writes
benchmarks/results/device_<section><suffix>.{json,md} (suffix `_gpu` by default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

SECTIONS = ("steps", "torch_step", "estep", "neighbours", "fewshot")
# method -> (views, extra config fields, time the pre-augmented variant too)
METHOD_SETUPS = {
    "coarse": (("strong",), {}, True),
    "scgm_g": (("strong",), {"model.embedder": "mlp"}, False),
    "falcon": (("strong", "none"), {"falcon.neighbours": 20, "falcon.neighbours_used": 5}, True),
    "maskcon": (("strong", "weak"), {"maskcon.queue_size": 8192}, False),
    "fsc": (("weak",), {}, False),
}


def sizes(small: bool) -> dict:
  if small:
    return {"batch": 8, "image": 32, "encoder": "resnet18", "dtype": "float32", "steps": 2, "n_estep": 20_000,
            "r": 50, "n_nb": 20_000, "d_nb": 64, "episodes": 20}
  return {"batch": 256, "image": 224, "encoder": "resnet50", "dtype": "bfloat16", "steps": 10, "n_estep": 1_000_000,
          "r": 500, "n_nb": 1_000_000, "d_nb": 2048, "episodes": 1000}


def _median_ms(call, steps: int) -> float:
  return 1000 * common.median(common.time_calls(call, repeats=steps, warmup=2))


# ------------------------------------------------------------------------------------
# Train steps.


def method_config(method: str, s: dict):
  from coarse2fine.config_base import base_config

  views, fields, _ = METHOD_SETUPS[method]
  config = base_config()
  config.method = method
  config.data.name = "synthetic"
  config.data.synthetic.kind = "images"
  config.data.synthetic.image_shape = (s["image"], s["image"], 3)
  config.data.synthetic.num_train = max(4 * s["batch"], 128)  # FALCON mines 20 neighbours within each coarse class
  config.data.synthetic.num_test = 16
  config.data.views = views
  config.data.augment.min_scale = 0.2
  config.model.encoder = s["encoder"]
  config.model.encoder_args.stem = "imagenet"
  config.model.dtype = s["dtype"]
  config.train.batch_size = s["batch"]
  config.eval.batch_size = s["batch"]
  config.scgm.num_subclasses = 100
  for dotted, value in fields.items():
    group, key = dotted.split(".")
    config[group][key] = value
  if method == "maskcon":
    config.maskcon.queue_size = max(4 * s["batch"], min(8192, config.maskcon.queue_size))
  return config


def step_rows(s: dict) -> list[dict]:
  import jax

  from coarse2fine.data import pipeline
  from coarse2fine.engine import runs, sharding
  from coarse2fine.methods import make_train_step

  rows = []
  for method, (views, _, pre_augmented) in METHOD_SETUPS.items():
    config = method_config(method, s)
    run = runs.setup_run(config)
    neighbours = run.method.neighbour_sampling()
    host = next(iter(pipeline.train_dataset(run.data, config.data, views=run.method.views,
                                            global_batch_size=config.train.batch_size, seed=0,
                                            neighbours=neighbours)))
    batch = sharding.global_batch(host, run.mesh)
    augment = pipeline.make_device_augment(run.data, config.data, run.method.views, config.seed,
                                           with_neighbours=neighbours is not None)
    variants = {"device augmentation": (augment, batch)}
    if pre_augmented:
      variants["pre-augmented"] = (lambda b: b, jax.jit(augment)(batch))
    for name, (augment_fn, inputs) in variants.items():
      step = jax.jit(make_train_step(run.method, run.schedule, augment_fn), donate_argnums=(0,))
      holder = {"state": jax.tree.map(lambda x: x.copy(), run.state)}

      def call():
        holder["state"], metrics = step(holder["state"], inputs)
        jax.block_until_ready(metrics["train/loss"])

      start = time.perf_counter()
      call()
      compile_s = time.perf_counter() - start
      ms = _median_ms(call, s["steps"])
      rows.append({"method": method, "inputs": name, "views": "+".join(views) + (" +5 nb" if neighbours else ""),
                   "ms_per_step": ms, "examples_per_s": 1000 * s["batch"] / ms, "compile_s": compile_s})
      print(rows[-1], flush=True)
  for method in METHOD_SETUPS:
    timed = {r["inputs"]: r["ms_per_step"] for r in rows if r["method"] == method}
    if "pre-augmented" in timed:
      for r in rows:
        if r["method"] == method:
          r["augmentation_overhead_%"] = 100 * (timed["device augmentation"] / timed["pre-augmented"] - 1)
  return rows


def torch_step_rows(s: dict) -> list[dict]:
  try:
    import torch
    import torchvision
  except ImportError:
    print("torch_step: torch/torchvision not installed, skipped")
    return []
  device = "cuda" if torch.cuda.is_available() else "cpu"
  model = getattr(torchvision.models, s["encoder"])(num_classes=1000).to(device).to(memory_format=torch.channels_last)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  x = torch.randn(s["batch"], 3, s["image"], s["image"], device=device).to(memory_format=torch.channels_last)
  y = torch.randint(0, 1000, (s["batch"],), device=device)
  dtype = torch.bfloat16 if s["dtype"] == "bfloat16" else torch.float32

  def call():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
      loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    if device == "cuda":
      torch.cuda.synchronize()

  ms = _median_ms(call, s["steps"])
  row = {"framework": f"PyTorch {torch.__version__} ({device}, channels-last, {s['dtype']} autocast)",
         "ms_per_step": ms, "examples_per_s": 1000 * s["batch"] / ms}
  print(row, flush=True)
  return [row]


# ------------------------------------------------------------------------------------
# E-step, neighbour mining, few-shot.


def estep_rows(s: dict) -> list[dict]:
  import jax

  from coarse2fine.methods.scgm import estep as scgm_estep

  n, r = s["n_estep"], s["r"]
  log_p = jax.nn.log_softmax(2.0 * jax.random.normal(jax.random.PRNGKey(0), (n, r)), axis=1)
  solve = jax.jit(lambda lp: scgm_estep.balanced_codes(lp, lam=25.0))
  jax.block_until_ready(solve(log_p))
  result = {}

  def call():
    result["out"] = jax.block_until_ready(solve(log_p))

  ms = _median_ms(call, 3)
  out = result["out"]
  return [{"n": n, "r": r, "ms": ms, "iterations": int(out.iterations), "converged": bool(out.converged)}]


def neighbour_rows(s: dict) -> list[dict]:
  import jax

  from coarse2fine.methods.common import neighbours

  n, d = s["n_nb"], s["d_nb"]
  features = jax.random.normal(jax.random.PRNGKey(1), (n, d), jax.numpy.float32)
  groups = np.sort(np.random.default_rng(0).integers(0, 20, n))
  start = time.perf_counter()
  neighbours.mine_neighbours(features, groups, k=20)
  first = time.perf_counter() - start
  ms = _median_ms(lambda: neighbours.mine_neighbours(features, groups, k=20), 2)
  return [{"n": n, "d": d, "groups": 20, "k": 20, "first_call_s": first, "ms": ms}]


def fewshot_rows(s: dict) -> list[dict]:
  from benchmarks import fewshot_eval
  from coarse2fine.evaluation import fewshot

  emb, fine = fewshot_eval.make_pool()
  fine_to_coarse = np.arange(100) // 10
  episodes = fewshot.sample_episodes(fine, fine_to_coarse, "allway", None, k_shot=1, n_query=15,
                                     num_episodes=s["episodes"])
  support_x = fewshot_eval.noisy_support(episodes, emb, 5)
  support_y, support_mask = fewshot.tile_support(episodes, 5)
  timed = fewshot_eval.time_solver(support_x, support_y, support_mask, episodes.class_mask, emb, episodes.query_idx,
                                   repeats=3)
  return [{"setting": "all-way 1-shot, 100 classes, 5 copies", "episodes": s["episodes"],
           "s": timed["seconds"], "ms_per_episode": 1000 * timed["seconds"] / s["episodes"],
           "compile_s": timed["compile_seconds"]}]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sections", default=",".join(SECTIONS))
  parser.add_argument("--small", action="store_true", help="CPU-sized problems, to check the script")
  parser.add_argument("--out_suffix", default="_gpu")
  parser.add_argument("--out_dir", default=common.RESULTS_DIR)
  args = parser.parse_args()
  sections = args.sections.split(",")
  unknown = set(sections) - set(SECTIONS)
  if unknown:
    raise SystemExit(f"Unknown --sections {sorted(unknown)}; choose from {SECTIONS}.")
  s = sizes(args.small)
  runners = {"steps": step_rows, "torch_step": torch_step_rows, "estep": estep_rows, "neighbours": neighbour_rows,
             "fewshot": fewshot_rows}
  for section in sections:
    start = time.perf_counter()
    rows = runners[section](s)
    if rows:
      common.save(f"device_{section}{args.out_suffix}", rows, list(dict.fromkeys(k for r in rows for k in r)),
                  notes=f"sizes {s}; section time {time.perf_counter() - start:.0f} s.", out_dir=args.out_dir)


if __name__ == "__main__":
  main()
