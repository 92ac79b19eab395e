"""Command line: encoder features of an `.npy` of images (or vectors), in eval mode.

  python -m coarse2fine.embed --workdir=DIR [--key=features|embedding] --inputs=x.npy --out=z.npy
  python -m coarse2fine.embed --init_from=SPEC --encoder=NAME [--encoder_args='{"stem": "cifar"}'] \\
      --inputs=x.npy --out=z.npy

With `--workdir`, the newest checkpoint of a coarse2fine run gives `--key`'s outputs ("features":
the encoder's; "embedding": what the method evaluates, e.g. after its embedder). With
`--init_from` (a `model.init_from` spec, docs/pretrained.md), pretrained weights alone give the
encoder features; torchvision, timm and MoCo v3 weights get `stem="imagenet"` unless
`--encoder_args` says otherwise. uint8 images [N, H, W, C] are normalised as the run does (its
dataset's or ImageNet's mean and std) or as the weights' source expects (ImageNet's for
torchvision, timm and MoCo v3; x / 255 for `npz:`); float32 inputs are used as given. Writes
float32 [N, D] to `--out` (a temporary file, then renamed), batched and sharded over the devices.
"""

from __future__ import annotations

import io
import json

import numpy as np
from absl import app, flags, logging

from coarse2fine.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("inputs", None, "An .npy of [N, H, W, C] uint8 or float32 images, or [N, F] vectors.")
flags.DEFINE_string("out", None, "Where the float32 [N, D] features go (.npy).")
flags.DEFINE_string("workdir", None, "A training run's workdir: its newest checkpoint's encoder.")
flags.DEFINE_enum("key", "features", ["features", "embedding"], "--workdir: the encoder's features, or the "
                  "method's embedding.")
flags.DEFINE_string("init_from", None, "Pretrained weights alone: torchvision:/timm:/moco_v3:<file>, npz:<file>, "
                    "checkpoint:<workdir>.")
flags.DEFINE_string("encoder", None, "--init_from: a name in coarse2fine.models.ENCODERS, e.g. resnet50.")
flags.DEFINE_string("encoder_args", None, "--init_from: the encoder's keyword arguments as JSON, e.g. "
                    "'{\"stem\": \"cifar\", \"stem_padding\": 2}'.")
flags.DEFINE_integer("batch_size", 256, "Global batch (rounded up to a multiple of the devices).")
flags.mark_flags_as_required(["inputs", "out"])


def _check_flags() -> None:
  if (FLAGS.workdir is None) == (FLAGS.init_from is None):
    raise app.UsageError("Give either --workdir=DIR (a run's encoder) or --init_from=SPEC --encoder=NAME.")
  if FLAGS.init_from is not None and not FLAGS.encoder:
    raise app.UsageError("--init_from needs --encoder=NAME (e.g. resnet18, resnet50).")
  if FLAGS.workdir is not None and (FLAGS.encoder or FLAGS.encoder_args):
    raise app.UsageError("--encoder and --encoder_args go with --init_from; a --workdir run has its own.")
  if not FLAGS.out.endswith(".npy"):
    raise app.UsageError(f"--out={FLAGS.out!r}: give a path ending in .npy.")


def read_inputs(path: str) -> np.ndarray:
  """The inputs, checked before any model is built: uint8 or float32, [N, H, W, C] or [N, F], N > 0."""
  from coarse2fine import storage

  if not storage.isfile(path):
    raise FileNotFoundError(f"--inputs={path!r}: no such file.")
  x = np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
  if x.ndim not in (2, 4) or len(x) == 0:
    raise ValueError(f"--inputs: expected [N, H, W, C] images or [N, F] vectors with N > 0, got shape {x.shape}.")
  if x.dtype not in (np.uint8, np.float32):
    raise ValueError(f"--inputs: expected uint8 images or float32 inputs, got {x.dtype}; convert with "
                     ".astype(np.float32) (used as given) or .astype(np.uint8) (normalised).")
  if x.dtype == np.float32 and not np.isfinite(x).all():
    raise ValueError(f"--inputs: {int((~np.isfinite(x)).sum())} values are NaN or infinite.")
  return x


def write_npy_atomically(path: str, array: np.ndarray) -> None:
  """The whole file or none: a temporary file renamed into place (an object store writes whole objects)."""
  from coarse2fine import storage

  buffer = io.BytesIO()
  np.save(buffer, array)
  storage.write_bytes_atomically(path, buffer.getvalue())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  _check_flags()
  encoder_args = None
  if FLAGS.encoder_args:
    try:
      encoder_args = json.loads(FLAGS.encoder_args)
    except json.JSONDecodeError as error:
      raise app.UsageError(f"--encoder_args is not JSON ({error}); e.g. '{{\"stem\": \"imagenet\"}}'.") from None
  x = read_inputs(FLAGS.inputs)
  from coarse2fine.engine import embedding  # after the flags: JAX starts here

  if FLAGS.workdir is not None:
    z = embedding.embed_run(FLAGS.workdir, x, key=FLAGS.key, batch_size=FLAGS.batch_size)
  else:
    z = embedding.embed_pretrained(FLAGS.init_from, FLAGS.encoder, x, encoder_args=encoder_args,
                                   batch_size=FLAGS.batch_size)
  write_npy_atomically(FLAGS.out, z)
  print(f"{FLAGS.out}: {z.shape[0]} x {z.shape[1]} float32")


def run() -> None:
  common.run(main)


if __name__ == "__main__":
  run()
