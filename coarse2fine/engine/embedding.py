"""Eval-mode features of arrays from a run's encoder or from pretrained weights (`python -m coarse2fine.embed`).

Both batch the inputs like the evaluator: global batches of a multiple of the devices, sharded
along the batch axis, the last one padded and cut off.
"""

from __future__ import annotations

import json
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from coarse2fine import models, storage
from coarse2fine.data.augmentation import device as device_augment
from coarse2fine.engine import runs, sharding
from coarse2fine.evaluation.evaluator import make_predict_step
from coarse2fine.models import pretrained

RESNETS = ("resnet18", "resnet34", "resnet50")


def batched(fn: Callable, x: np.ndarray, mesh, batch_size: int) -> np.ndarray:
  """fn(global batch) -> [b, D] over `x` [N, ...], in order: [N, D] float32."""
  batch = sharding.eval_batch_size(batch_size, mesh)
  n = len(x)
  padded = np.concatenate([x, np.zeros((-n % batch, *x.shape[1:]), x.dtype)])
  chunks = [np.asarray(jax.device_get(fn(sharding.global_batch(padded[i:i + batch], mesh))))
            for i in range(0, len(padded), batch)]
  return np.concatenate(chunks)[:n].astype(np.float32)


def _run_data(workdir: str, config):
  """The data a run's method is rebuilt from: the API's stub (api_meta.json) or the run's dataset."""
  from coarse2fine import api  # noqa: PLC0415 -- api imports the engine
  from coarse2fine.data import load_dataset

  meta_path = storage.join(workdir, api.META_FILE)
  if storage.isfile(meta_path):
    return api._stub_data(json.loads(storage.read_text(meta_path)))
  return load_dataset(config.data)


def embed_run(workdir: str, x: np.ndarray, key: str = "features", batch_size: int = 256) -> np.ndarray:
  """[N, D] float32 `key` outputs ("features" or "embedding") of the newest checkpoint in `workdir`, eval mode.

  uint8 images are normalised as the run normalised its inputs; float inputs are used as given.
  """
  config = runs.load_run_config(workdir)
  data = _run_data(workdir, config)
  if tuple(x.shape[1:]) != tuple(data.input_shape):
    raise ValueError(f"The run in {workdir} was trained on inputs of shape {tuple(data.input_shape)}; the inputs "
                     f"have {tuple(x.shape[1:])}. Resize them first.")
  run = runs.setup_run(config, data, for_training=False)
  state = runs.restore_newest(workdir, config, run.state)
  if x.dtype == np.uint8:
    predict = make_predict_step(run.method, run.mesh, run.data)
  else:
    predict = jax.jit(run.method.predict, out_shardings=sharding.replicated(run.mesh))
  probe = jax.eval_shape(predict, state, jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype))
  if key not in probe:
    raise ValueError(f"Method {config.method!r} of {workdir} predicts no {key!r}; it has {sorted(probe)}.")
  return batched(lambda batch: predict(state, batch)[key], x, run.mesh, batch_size)


def embed_pretrained(init_from: str, encoder: str, x: np.ndarray, encoder_args: Optional[dict] = None,
                     batch_size: int = 256) -> np.ndarray:
  """[N, D] float32 eval-mode features of `encoder` with the weights `init_from` names.

  uint8 images: ImageNet's mean and std for torchvision, timm and MoCo v3 weights, x / 255 for
  `npz:`; float inputs are used as given. ResNets get `stem="imagenet"` for those three sources
  unless `encoder_args` is given.
  """
  spec = pretrained.parse_spec(init_from)
  if spec is None:
    raise ValueError("init_from is empty: name the weights, e.g. torchvision:resnet50-0676ba61.pth.")
  if spec.source == "checkpoint":
    raise ValueError(f"init_from={init_from!r}: for a run's encoder use --workdir={spec.location}, which also "
                     "normalises as that run did.")
  if encoder not in models.ENCODERS:
    raise ValueError(f"Unknown encoder {encoder!r}; choose one of {sorted(models.ENCODERS)}.")
  if encoder_args is None:
    encoder_args = {"stem": "imagenet"} if spec.source in pretrained.TORCH_LAYOUT and encoder in RESNETS else {}
  module = models.build_encoder(encoder, **encoder_args)
  weights = pretrained.load_source(init_from)
  sample = jax.ShapeDtypeStruct((1, *x.shape[1:]), jnp.float32)
  shapes = jax.eval_shape(lambda s: module.init(jax.random.PRNGKey(0), s, train=False), sample)
  params, batch_stats = pretrained.match(weights, shapes["params"], shapes.get("batch_stats", {}), encoder)
  mesh = sharding.make_mesh()
  variables = sharding.replicate({"params": params, "batch_stats": batch_stats}, mesh)
  if x.dtype == np.uint8:
    imagenet = pretrained.normalization_for(init_from) == "imagenet"
    mean = pretrained.IMAGENET_MEAN if imagenet else (0.0,) * x.shape[-1]
    std = pretrained.IMAGENET_STD if imagenet else (1.0,) * x.shape[-1]
  else:
    mean = std = None

  def features(variables, batch):
    inputs = batch if mean is None else device_augment.normalise(batch, mean, std)
    return module.apply(variables, inputs, train=False)

  step = jax.jit(features, out_shardings=sharding.replicated(mesh))
  return batched(lambda batch: step(variables, batch), x, mesh, batch_size)
