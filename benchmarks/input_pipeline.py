r"""The input pipeline against torchvision's, recipe by recipe, side by side in one run.

  python benchmarks/input_pipeline.py --size=224          # generated ImageNet-like JPEG files
  python benchmarks/input_pipeline.py --size=32           # in-memory CIFAR-sized images
  python benchmarks/input_pipeline.py --size=28           # in-memory Fashion-MNIST (when present)
  python benchmarks/input_pipeline.py --size=224 --quick  # fewer files and examples (a smoke run)

Recipes (`--recipes`): crop_flip, weak, strong, autoaugment and falcon (two views and five
neighbours: at 224 px FALCON's ImageNet recipe, views (strong, none) with the neighbours in
'none'; at 28-32 px its CIFAR recipe, (weak, weak) with RandomResizedCrop .08-1). For each:
  * ours: host ms per image (one thread: decode, crop, resize, flip), device ms per global
    batch of 256 (the jitted colour, blur and normalisation, here on this machine's CPU), and
    their sum per example;
  * the reference: the same recipe in torchvision's transforms on PIL images, ending in
    ToTensor + Normalize, per example (a Pillow transcription of torchvision's PIL ops where
    torchvision is not installed);
  * the pipeline as it stood before (`--legacy_commit`, host numpy augmentation of a stored
    centre crop, run from that commit's files in a subprocess), per example;
  * examples/s with 0, 1 and 2 worker processes: our grain pipeline (host stage) and
    torch's DataLoader over the reference recipe.
Then one line per recipe, in the form a checker reads:
  speedup_vs_reference <recipe>: <reference ms per example / ours>
  speedup_vs_legacy <recipe>: <legacy ms per example / ours>
At 224 px it also measures the decoders and resizers the host stage could use, the host and
device forms of RandomPerspective and AutoAugment, and the overlap of host work, transfer and
a step when batches are prefetched to the device. Writes benchmarks/results/
input_pipeline_<size>.{json,md}.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEGACY_COMMIT = "e49951a"  # the last commit whose pipeline augmented on the host, in numpy
RECIPES = ("crop_flip", "weak", "strong", "autoaugment", "falcon")
NEIGHBOURS = 5
REPEATS = 3  # host-stage timings: the median of this many passes, after one warm-up pass
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def recipe_views(recipe: str, size: int) -> tuple[tuple[str, ...], int, float]:
  """(view kinds, neighbours per example, RandomResizedCrop's smallest area) of a recipe at a size."""
  if recipe == "falcon":
    return (("strong", "none"), NEIGHBOURS, 0.2) if size >= 100 else (("weak", "weak"), NEIGHBOURS, 0.08)
  return (recipe,), 0, {"weak": 0.5}.get(recipe, 0.2)


# ------------------------------------------------------------------------------------
# Data: generated JPEG files, or images in memory.


def natural_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """uint8 [H, W, 3]: a smooth colour field, a few discs of flat colour, and grain on half the pixels."""
  from PIL import Image

  small = (rng.random((height // 25 + 2, width // 25 + 2, 3)) * 255).astype(np.uint8)
  image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32)
  yy, xx = np.mgrid[:height, :width]
  for _ in range(6):
    cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(20, 120)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    image[disc] = image[disc] * 0.3 + rng.random(3) * 255 * 0.7
  image += rng.normal(0, 12, image.shape) * (rng.random((height, width, 1)) < 0.5)
  return np.clip(image, 0, 255).astype(np.uint8)


def write_jpegs(folder: str, count: int, seed: int = 0) -> list[str]:
  """`count` 500x375 JPEGs at quality 90 (50 distinct pictures, repeated), paths relative to `folder`."""
  from PIL import Image

  rng = np.random.default_rng(seed)
  encoded = []
  for _ in range(min(count, 50)):
    buffer = io.BytesIO()
    Image.fromarray(natural_image(rng, 375, 500)).save(buffer, format="JPEG", quality=90)
    encoded.append(buffer.getvalue())
  names = []
  for i in range(count):
    name = f"{i:06d}.JPEG"
    with open(os.path.join(folder, name), "wb") as f:
      f.write(encoded[i % len(encoded)])
    names.append(name)
  return names


def file_dataset(folder: str, names: list[str]):
  """BREEDS-like data: lazily decoded files (evaluation view Resize(256) + CenterCrop(224)), 4 x 4 classes."""
  from coarse2fine.data.files.lazy_images import FolderReader, LazyImages
  from coarse2fine.data.splits import HierarchicalData, make_split
  from coarse2fine.data.taxonomy import Taxonomy

  taxonomy = Taxonomy.from_groups("bench", {f"c{c}": [f"c{c}f{k}" for k in range(4)] for c in range(4)})
  images = LazyImages(FolderReader(folder, np.array([n.encode() for n in names])), num=len(names))
  split = make_split(images, fine=np.arange(len(names)) % 16, taxonomy=taxonomy, where="bench")
  return HierarchicalData("bench", taxonomy, split, split, mean=np.asarray(IMAGENET_MEAN, np.float32),
                          std=np.asarray(IMAGENET_STD, np.float32))


def memory_dataset(size: int, count: int):
  """(HierarchicalData, description): Fashion-MNIST at 28 px (when present), synthetic CIFAR-like at 32."""
  from coarse2fine.config_base import base_config
  from coarse2fine.data import load_dataset

  config = base_config().data
  if size == 28:
    config.name = "fashion_mnist"
    return load_dataset(config), "Fashion-MNIST 28x28x1"
  config.name = "synthetic"
  config.synthetic.kind = "images"
  config.synthetic.image_shape = (size, size, 3)
  config.synthetic.num_train = count
  config.synthetic.num_test = 16
  return load_dataset(config), f"synthetic {size}x{size}x3"


def data_config(min_scale: float, size: int):
  from coarse2fine.config_base import base_config

  config = base_config().data
  config.augment.min_scale = min_scale
  config.augment.padding = 4 if size >= 32 else 2
  config.num_threads = 1
  return config


# ------------------------------------------------------------------------------------
# Ours: host stage per image, device stage per global batch.


def neighbour_table(n: int, seed: int = 0):
  from coarse2fine.data.pipeline import NeighbourSampling

  table = np.random.default_rng(seed).integers(0, n, (n, 20)).astype(np.int32)
  return NeighbourSampling(table, NEIGHBOURS)


def ours_host_ms_per_example(data, config, views, neighbours, examples: int) -> float:
  """One thread, no grain: the host stage of `examples` examples (all their views and neighbours)."""
  from coarse2fine.data import pipeline

  transform = pipeline.make_transform(data, config, views, neighbours)
  indices = np.arange(examples) % len(data.train)
  keys = np.stack([np.zeros(examples, int), np.ones(examples, int), np.arange(examples)], 1)
  run = lambda: transform(indices, pipeline.ExampleStreams(keys), keys[:, 1:])
  return 1000 * common.median(common.time_calls(run, repeats=REPEATS, warmup=1)) / examples


def ours_device_ms_per_batch(data, config, views, neighbours, batch: int, repeats: int) -> float:
  """The jitted device stage on a global batch of `batch` host-stage examples (median of `repeats`)."""
  import jax

  from coarse2fine.data import pipeline
  from coarse2fine.data.batch import example_ids

  transform = pipeline.make_transform(data, config, views, neighbours)
  sample = min(batch, 32)
  keys = np.stack([np.zeros(sample, int), np.ones(sample, int), np.arange(sample)], 1)
  host = transform(np.arange(sample) % len(data.train), pipeline.ExampleStreams(keys), keys[:, 1:])
  tile = lambda x: None if x is None else np.resize(x, (batch, *x.shape[1:]))
  host = jax.tree.map(tile, host)._replace(example=example_ids(0, np.arange(batch)))
  augment = jax.jit(pipeline.make_device_augment(data, config, views, seed=0, with_neighbours=neighbours is not None))
  placed = jax.device_put(host)
  run = lambda: jax.block_until_ready(augment(placed))
  return 1000 * common.median(common.time_calls(run, repeats=repeats, warmup=1))


def ours_examples_per_second(data, config, views, neighbours, workers: int, batch: int, batches: int) -> float:
  """Host-stage throughput of the grain pipeline with `workers` processes (one thread each)."""
  from coarse2fine.data import pipeline

  config = config.copy_and_resolve_references()
  config.num_workers = workers
  iterator = iter(pipeline.train_dataset(data, config, views=views, global_batch_size=batch, seed=0,
                                         neighbours=neighbours))
  for _ in range(2 + 2 * workers):  # start-up and worker spawn are not throughput
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------
# The reference: torchvision's transforms on PIL images (or Pillow doing the same ops).


def reference_transform(recipe: str, size: int, views, min_scale: float, channels: int):
  """(transform per view, normalise) in torchvision's transforms, as its PIL backend runs them."""
  from torchvision import transforms as T

  mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.286,), (0.353,))
  kernel = max(3, int(round(0.1 * size)))
  kernel += 1 - kernel % 2
  big = size >= 100
  stored = [T.Resize(256), T.CenterCrop(224)] if big else []  # a file's evaluation view

  def view(kind):
    rrc = [T.RandomResizedCrop(size, scale=(min_scale, 1.0)), T.RandomHorizontalFlip()]
    return T.Compose({
        "none": stored,
        "crop_flip": stored + [T.RandomCrop(size, padding=4 if size >= 32 else 2), T.RandomHorizontalFlip()],
        "weak": rrc,
        "strong": rrc + [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                         T.RandomApply([T.GaussianBlur(kernel, (0.1, 2.0))], p=0.5)],
        "autoaugment": rrc + [T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)],
    }[kind] + [T.ToTensor(), T.Normalize(mean, std)])

  return [view(kind) for kind in views]


class ReferenceDataset:
  """torch Dataset of one example's views (and neighbours in the last view's recipe), as torch tensors."""

  def __init__(self, load, count, transforms, neighbours: int, seed: int = 0):
    self.load, self.count, self.transforms, self.neighbours = load, count, transforms, neighbours
    self.table = np.random.default_rng(seed).integers(0, count, (count, 20))

  def __len__(self):
    return self.count

  def __getitem__(self, i):
    import torch

    image = self.load(i)
    out = [t(image) for t in self.transforms]
    for j in np.random.default_rng(i).permutation(20)[:self.neighbours]:
      out.append(self.transforms[-1](self.load(int(self.table[i, j]))))
    return torch.stack(out)


def reference_ms_per_example(dataset: ReferenceDataset, examples: int) -> float:
  run = lambda: [dataset[i % len(dataset)] for i in range(examples)]
  return 1000 * common.median(common.time_calls(run, repeats=REPEATS, warmup=1)) / examples


def reference_examples_per_second(dataset: ReferenceDataset, workers: int, batch: int, batches: int) -> float:
  import torch

  loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0)
  iterator = iter(loader)
  for _ in range(1 + workers):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------
# The pipeline before this change, from its own commit's files.

LEGACY_SCRIPT = r"""
import json, sys, time
import numpy as np
from coarse2fine.config_base import base_config
from coarse2fine.data import pipeline
args = json.loads(sys.argv[1])
config = base_config().data
config.augment.min_scale = args["min_scale"]
config.augment.padding = args["padding"]
if args["folder"]:
  from coarse2fine.data.datasets import breeds
  from coarse2fine.data.splits import HierarchicalData, make_split
  from coarse2fine.data.taxonomy import Taxonomy
  names = args["names"]
  taxonomy = Taxonomy.from_groups("bench", {f"c{c}": [f"c{c}f{k}" for k in range(4)] for c in range(4)})
  images = breeds.LazyImages(breeds.FolderReader(args["folder"], np.array([n.encode() for n in names])), num=len(names))
  split = make_split(images, fine=np.arange(len(names)) % 16, taxonomy=taxonomy, where="bench")
  data = HierarchicalData("bench", taxonomy, split, split, mean=np.array(args["mean"], np.float32),
                          std=np.array(args["std"], np.float32))
else:
  from coarse2fine.data import load_dataset
  config.name = args["dataset"]
  config.synthetic.kind = "images"
  config.synthetic.image_shape = tuple(args["shape"])
  config.synthetic.num_train = args["count"]
  config.synthetic.num_test = 16
  data = load_dataset(config)
n = len(data.train)
sampling = None
if args["neighbours"]:
  table = np.random.default_rng(0).integers(0, n, (n, 20)).astype(np.int32)
  sampling = pipeline.NeighbourSampling(table, args["neighbours"])
transform = pipeline.make_transform(data, config, tuple(args["views"]), sampling)
examples = args["examples"]
indices = np.arange(examples) % n
keys = np.stack([np.zeros(examples, int), np.ones(examples, int), np.arange(examples)], 1)
transform(indices[:4], pipeline.ExampleStreams(keys[:4]))
start = time.perf_counter()
transform(indices, pipeline.ExampleStreams(keys))
print("LEGACY_MS", 1000 * (time.perf_counter() - start) / examples)
"""


def legacy_tree(commit: str, into: str) -> str | None:
  """Extracts `commit`'s coarse2fine/ into `into`; None (with a note) when git cannot."""
  try:
    archive = subprocess.run(["git", "-C", REPO, "archive", commit, "coarse2fine"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into
  except (OSError, subprocess.CalledProcessError) as error:
    print(f"skipping the legacy pipeline: cannot extract commit {commit} ({error})")
    return None


def legacy_ms_per_example(tree: str, arguments: dict) -> float | None:
  import json

  env = {**os.environ, "PYTHONPATH": tree, "JAX_PLATFORMS": "cpu"}
  done = subprocess.run([sys.executable, "-c", LEGACY_SCRIPT, json.dumps(arguments)], capture_output=True,
                        text=True, env=env, cwd=tree, timeout=1800)
  if done.returncode != 0 or "LEGACY_MS" not in done.stdout:
    print(f"legacy run failed: {done.stderr[-2000:]}")
    return None
  return float(done.stdout.split("LEGACY_MS")[1].split()[0])


# ------------------------------------------------------------------------------------
# 224 px extras: decoders and resizers, host or device ops, overlap.


def codec_rows(folder: str, names: list[str]) -> list[dict]:
  """ms per 500x375 JPEG for each decoder, and per box resize for each resizer, on one core."""
  from PIL import Image

  blobs = [open(os.path.join(folder, n), "rb").read() for n in names[:50]]
  rows = []

  def timed(name, fn, per=len(blobs)):
    seconds = common.median(common.time_calls(lambda: [fn(b) for b in blobs], repeats=3, warmup=1))
    rows.append({"what": name, "ms": 1000 * seconds / per})

  timed("decode: Pillow", lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))
  import simplejpeg

  timed("decode: simplejpeg (libjpeg-turbo)", lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB"))
  timed("decode: simplejpeg at 1/2 scale", lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB", min_factor=2,
                                                                           min_height=188, min_width=250))
  timed("decode: simplejpeg at 7/8 scale", lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB", min_height=320,
                                                                           min_width=420))
  pixels = simplejpeg.decode_jpeg(blobs[0], colorspace="RGB")
  box = (50, 40, 350, 300)
  timed("resize 300x260 box -> 224: Pillow bilinear (antialiased)",
        lambda b: np.asarray(Image.fromarray(pixels).resize((224, 224), Image.Resampling.BILINEAR, box=box)))
  try:
    import cv2

    cv2.setNumThreads(1)
    timed("decode: OpenCV", lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR))
    timed("resize 300x260 box -> 224: OpenCV INTER_LINEAR (aliases)",
          lambda b: cv2.resize(pixels[40:300, 50:350], (224, 224), interpolation=cv2.INTER_LINEAR))
    timed("resize 300x260 box -> 224: OpenCV INTER_AREA",
          lambda b: cv2.resize(pixels[40:300, 50:350], (224, 224), interpolation=cv2.INTER_AREA))
  except ImportError:
    rows.append({"what": "OpenCV", "ms": float("nan"), "note": "not installed"})
  return rows


def host_or_device_rows(batch: int) -> list[dict]:
  """RandomPerspective and AutoAugment at 224 px: host ms per image against device ms per image (batch / n)."""
  import jax
  from PIL import Image

  from coarse2fine.data.augmentation import presets as augment
  from coarse2fine.data.batch import Batch, example_ids

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, 224, 224, 3), np.uint8)
  zeros = np.zeros(batch, np.int32)
  placed = jax.device_put(Batch(views=images[:, None], coarse=zeros, fine=zeros, index=zeros, dataset=zeros,
                                example=example_ids(0, np.arange(batch))))
  rows = []
  for kind, fields, side in (("perspective", {"perspective_p": 1.0}, "perspective_on"),
                             ("autoaugment", {}, "autoaugment_on")):
    host_ops = augment.make_view({"kind": kind, side: "host", **fields}, (224, 224, 3)).host.ops
    count = 32

    def host_ops_alone():  # the op after the crop, on the Pillow image a file's crop leaves
      for i in range(count):
        image, rng = Image.fromarray(images[i]), np.random.default_rng(i)
        for op in host_ops:
          image = op(image, rng)

    seconds = common.median(common.time_calls(host_ops_alone, repeats=3, warmup=1))
    rows.append({"op": kind, "where": "host (Pillow), one thread; flip included", "ms_per_image": 1000 * seconds / count})
    views = [augment.make_view({"kind": kind, side: "device", **fields}, (224, 224, 3))]
    device = jax.jit(augment.device_augment(views, IMAGENET_MEAN, IMAGENET_STD, seed=0))
    seconds = common.median(common.time_calls(lambda: jax.block_until_ready(device(placed)), repeats=3, warmup=1))
    rows.append({"op": kind, "where": f"device (JAX on {jax.default_backend()}), batch {batch}; normalisation "
                 "included", "ms_per_image": 1000 * seconds / batch})
  normalise = jax.jit(augment.device_augment([augment.make_view({"kind": "none"}, (224, 224, 3))], IMAGENET_MEAN,
                                             IMAGENET_STD, seed=0))
  seconds = common.median(common.time_calls(lambda: jax.block_until_ready(normalise(placed)), repeats=3, warmup=1))
  rows.append({"op": "normalisation alone", "where": f"device (JAX on {jax.default_backend()}), batch {batch}",
               "ms_per_image": 1000 * seconds / batch})
  return rows


def overlap_rows(data, config, batch: int, steps: int) -> list[dict]:
  """ms per step of the pipeline feeding a step that, like an accelerator's, keeps no host core busy.

  The stand-in step sleeps `step_ms` in an `io_callback`, so host decoding and the step can
  only overlap if the pipeline works ahead of the loop: in turn (no threads, no prefetch, each
  step waited for) a step costs host + step; overlapped (a host thread and batches prefetched to
  the device) it costs max(host, step).
  """
  import jax
  import jax.numpy as jnp
  from jax.experimental import io_callback

  from coarse2fine.data import pipeline
  from coarse2fine.engine import sharding

  mesh = sharding.make_mesh()
  host_ms = ours_host_ms_per_example(data, config, ("weak",), None, batch) * batch
  step_ms = 0.8 * host_ms

  def sleep(views_sum):
    time.sleep(step_ms / 1000)
    return views_sum

  @jax.jit
  def step(carry, views):
    return carry + io_callback(sleep, jax.ShapeDtypeStruct((), jnp.float32), jnp.sum(views[:1].astype(jnp.float32)),
                               ordered=False)

  rows = [{"setting": "host stage alone (one thread)", "ms_per_step": host_ms},
          {"setting": "step alone (an accelerator's: sleeps, no host core)", "ms_per_step": step_ms}]
  for threads, prefetch, wait, name in ((0, 0, True, "in turn: no host thread, no prefetch, each step waited for"),
                                        (1, 2, False, "overlapped: 1 host thread, 2 batches prefetched to the device")):
    config_run = config.copy_and_resolve_references()
    config_run.num_threads = threads
    host = pipeline.train_dataset(data, config_run, views=("weak",), global_batch_size=batch, seed=0)
    iterator = iter(pipeline.device_batches(host, mesh, prefetch))
    carry = jnp.zeros((), jnp.float32)
    for _ in range(2):
      carry = step(carry, next(iterator).views)
    carry.block_until_ready()
    start = time.perf_counter()
    for _ in range(steps):
      carry = step(carry, next(iterator).views)
      if wait:
        carry.block_until_ready()
    carry.block_until_ready()
    rows.append({"setting": name, "ms_per_step": 1000 * (time.perf_counter() - start) / steps})
  in_turn, overlapped = rows[2]["ms_per_step"], rows[3]["ms_per_step"]
  rows.append({"setting": "hidden: (in turn - overlapped) / step", "ms_per_step": (in_turn - overlapped) / step_ms})
  return rows


# ------------------------------------------------------------------------------------


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=224, choices=(224, 32, 28))
  parser.add_argument("--recipes", default=",".join(RECIPES))
  parser.add_argument("--files", type=int, default=2000, help="JPEG files written at 224 px")
  parser.add_argument("--examples", type=int, default=0, help="examples timed per measurement (0: by size)")
  parser.add_argument("--workers", default="0,1,2")
  parser.add_argument("--legacy_commit", default=LEGACY_COMMIT)
  parser.add_argument("--quick", action="store_true", help="a smoke run: few files, examples and batches")
  parser.add_argument("--out", default="")
  parser.add_argument("--results_dir", default=common.RESULTS_DIR)
  args = parser.parse_args()
  from absl import flags

  flags.FLAGS.mark_as_parsed()  # grain workers read absl flags
  recipes = args.recipes.split(",")
  unknown = set(recipes) - set(RECIPES)
  if unknown:
    raise SystemExit(f"Unknown --recipes {sorted(unknown)}; choose from {RECIPES}.")
  big = args.size == 224
  examples = args.examples or (12 if args.quick else (48 if big else 512))
  throughput_batch, throughput_batches = (16, 2) if args.quick else ((32, 6) if big else (256, 8))
  device_batch = 32 if args.quick else 256
  workers = [int(w) for w in args.workers.split(",")]
  try:
    import torch
    import torchvision  # noqa: F401

    torch.set_num_threads(os.cpu_count())
    have_torchvision = True
  except ImportError:
    have_torchvision = False
    print("torchvision is not installed: the reference rows are skipped (pip install torch torchvision).")

  with tempfile.TemporaryDirectory() as workdir:
    if big:
      names = write_jpegs(workdir, 200 if args.quick else args.files)
      data, description = file_dataset(workdir, names), f"{len(names)} JPEG files 500x375 q90"
      channels = 3
    else:
      data, description = memory_dataset(args.size, 2048 if args.quick else 20000)
      channels = data.input_shape[-1]
    out_size = 224 if big else args.size
    legacy = legacy_tree(args.legacy_commit, tempfile.mkdtemp(dir=workdir)) if args.legacy_commit else None
    rows, lines = [], []
    for recipe in recipes:
      views, neighbours_per_example, min_scale = recipe_views(recipe, args.size)
      config = data_config(min_scale, args.size)
      neighbours = neighbour_table(len(data.train)) if neighbours_per_example else None
      images_per_example = len(views) + neighbours_per_example
      host_ms = ours_host_ms_per_example(data, config, views, neighbours, examples)
      device_ms = ours_device_ms_per_batch(data, config, views, neighbours, device_batch, 2 if args.quick else 5)
      ours_ms = host_ms + device_ms / device_batch
      row = {"recipe": recipe, "images/example": images_per_example,
             "host_ms/image": host_ms / images_per_example, f"device_ms/batch{device_batch}": device_ms,
             "ours_ms/example": ours_ms}
      for w in workers:
        row[f"ours_ex/s_{w}w"] = ours_examples_per_second(data, config, views, neighbours, w, throughput_batch,
                                                          throughput_batches)
      if have_torchvision:
        if big:
          from PIL import Image

          load = lambda i, names=names: Image.open(os.path.join(workdir, names[i])).convert("RGB")
        else:
          from PIL import Image

          stored = data.train.inputs
          load = lambda i, stored=stored: Image.fromarray(stored[i][..., 0] if channels == 1 else stored[i])
        dataset = ReferenceDataset(load, len(data.train), reference_transform(recipe, out_size, views, min_scale,
                                                                              channels), neighbours_per_example)
        reference_ms = reference_ms_per_example(dataset, examples)
        row["reference_ms/example"] = reference_ms
        for w in workers:
          row[f"reference_ex/s_{w}w"] = reference_examples_per_second(dataset, w, throughput_batch,
                                                                      throughput_batches)
        row["speedup_vs_reference"] = reference_ms / ours_ms
        lines.append(f"speedup_vs_reference {recipe}: {reference_ms / ours_ms:.2f}")
      if legacy:
        legacy_ms = legacy_ms_per_example(legacy, {
            "folder": workdir if big else "", "names": names if big else [], "views": list(views),
            "neighbours": neighbours_per_example, "min_scale": min_scale, "padding": config.augment.padding,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "examples": examples,
            "dataset": "fashion_mnist" if args.size == 28 else "synthetic", "shape": list(data.input_shape),
            "count": len(data.train)})
        if legacy_ms is not None:
          row["legacy_ms/example"] = legacy_ms
          row["speedup_vs_legacy"] = legacy_ms / ours_ms
          lines.append(f"speedup_vs_legacy {recipe}: {legacy_ms / ours_ms:.2f}")
      rows.append(row)
      print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    name = args.out or f"input_pipeline_{args.size}"
    notes = (f"{description}; output {out_size} px; host ms: the median of {REPEATS} passes over {examples} "
             f"examples, one thread; device stage = the jitted colour/blur/normalisation on this machine ({common.machine_description()['devices']}),"
             f" per global batch of {device_batch}; examples/s: host stage with 0/1/2 worker processes (ours: grain,"
             f" batch {throughput_batch}; reference: torch DataLoader). Reference: torchvision transforms on PIL "
             f"images + ToTensor + Normalize."
             + (f" Legacy: commit {args.legacy_commit}'s numpy host pipeline." if legacy else ""))
    out_dir = args.results_dir
    common.save(name, rows, columns, notes=notes, out_dir=out_dir)
    if big and not args.quick:
      common.save(name + "_codecs", codec_rows(workdir, names), ["what", "ms"],
                  notes="One core, 50 distinct 500x375 JPEGs at quality 90.", out_dir=out_dir)
      common.save(name + "_host_or_device", host_or_device_rows(device_batch), ["op", "where", "ms_per_image"],
                  notes=f"224 px; the device op on a batch of {device_batch}, on this machine's devices.",
                  out_dir=out_dir)
      common.save(name + "_overlap", overlap_rows(data, data_config(0.5, 224), 32, 8), ["setting", "ms_per_step"],
                  notes="'weak' views, batch 32; the last row is the share of the step hidden behind host work "
                        "(1 = all of it).",
                  out_dir=out_dir)
    for line in lines:
      print(line)


if __name__ == "__main__":
  main()
