"""Pretrained encoder weights: `model.init_from` specs, their files, and loading them into a Flax encoder.

A spec is `<source>:<location>`:

  torchvision:<file>  a torchvision ResNet-18/34/50 state dict (`.pth`, `.pt` or `.safetensors`)
  timm:<file>         a timm ResNet state dict (timm's ResNets use torchvision's tensor names)
  moco_v3:<file>      a MoCo v3 checkpoint: the official release (a dict whose "state_dict" keys start with
                      `module.base_encoder.`) or solo-learn's (`backbone.`); the rest (momentum encoder,
                      projector, predictor) is not used
  checkpoint:<dir>    the encoder of a coarse2fine run: params["encoder"] and batch_stats["encoder"] of the
                      newest checkpoint in that workdir
  npz:<file>          (or a plain path ending in `.npz`) named arrays in Flax layout: `params/<path>` and
                      `batch_stats/<path>`, paths inside the encoder joined by "/", e.g.
                      `params/stem_conv/kernel`, `batch_stats/stage1_block1/BatchNorm_0/mean`
                      (`save_npz` writes one)

A file given by a bare name (no "/") is looked up in the weights folder: `$C2F_WEIGHTS_DIR`, or
`~/.cache/coarse2fine/weights`. `.safetensors` and `.npz` are read with numpy alone; `.pth` needs
PyTorch, once: its tensors are cached as an `.npz` keyed by the file's sha256 in `$C2F_CACHE_DIR`
(default `~/.cache/coarse2fine/converted`). torchvision, timm and MoCo v3 weights expect inputs
normalised with ImageNet's mean and std (`normalization_for`). docs/pretrained.md has the details.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
from typing import Any, Optional

import numpy as np
from absl import logging

SOURCES = ("torchvision", "timm", "moco_v3", "checkpoint", "npz")
TORCH_LAYOUT = ("torchvision", "timm", "moco_v3")  # tensor names of torchvision's ResNet
IMAGENET_SOURCES = TORCH_LAYOUT  # trained on ImageNet-normalised inputs
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("auto", "dataset", "imagenet")
MOCO_PREFIXES = ("module.base_encoder.", "backbone.")  # the official release, solo-learn
TRUST_PICKLE_ENV = "C2F_TRUST_PICKLED_WEIGHTS"

# Files the paper configs name, and where they come from (printed when one is missing).
KNOWN_FILES = {
    "resnet18-f37072fd.pth": "torchvision's ResNet-18 ImageNet weights, torchvision.models.ResNet18_Weights."
                             "IMAGENET1K_V1 (its url: https://download.pytorch.org/models/resnet18-f37072fd.pth)",
    "r-50-1000ep.pth.tar": "MoCo v3's ResNet-50, 1000 epochs (r-50-1000ep.pth.tar from the facebookresearch/moco-v3 "
                           "release, 'Pre-trained checkpoints' in its README)",
    "mocov3_resnet18_cifar100.ckpt": "solo-learn's MoCo v3 ResNet-18 trained on CIFAR-100 (the solo-learn model zoo, "
                                     "'CIFAR-100' table, MoCo V3 row; save the .ckpt under this name)",
}


# ----------------------------------------------------------------------------- specs and files

@dataclasses.dataclass(frozen=True)
class Spec:
  source: str  # one of SOURCES
  location: str  # as written in the spec


def parse_spec(spec: str) -> Optional[Spec]:
  """The parsed `model.init_from`, or None for "" (random initialisation)."""
  spec = (spec or "").strip()
  if not spec:
    return None
  source, sep, location = spec.partition(":")
  if not sep and spec.endswith(".npz"):
    return Spec("npz", spec)
  if not sep or source not in SOURCES or not location:
    raise ValueError(f"model.init_from={spec!r} is not <source>:<file or workdir> with a source in {list(SOURCES)} "
                     "(or a path ending in .npz); e.g. 'torchvision:resnet18-f37072fd.pth', or '' for random weights.")
  return Spec(source, location)


def weights_dir() -> str:
  return os.environ.get("C2F_WEIGHTS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "coarse2fine",
                                                           "weights")


def cache_dir() -> str:
  return os.environ.get("C2F_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "coarse2fine",
                                                         "converted")


def resolve_path(spec: Spec) -> str:
  """The file or workdir `spec` names: a bare file name lives in the weights folder."""
  location = os.path.expanduser(spec.location)
  if spec.source != "checkpoint" and "/" not in location and os.sep not in location:
    return os.path.join(weights_dir(), location)
  return location


def check_available(init_from: str) -> None:
  """Fails at once, naming which weights to get and where to put them, when `init_from`'s file is absent."""
  spec = parse_spec(init_from)
  if spec is None:
    return
  path = resolve_path(spec)
  from coarse2fine import storage

  if spec.source == "checkpoint":
    if not storage.isdir(storage.join(path, "checkpoints")):
      raise FileNotFoundError(f"model.init_from={init_from!r}: {path} has no checkpoints folder; train that run "
                              "first or fix the path.")
    return
  if storage.isfile(path):
    return
  name = os.path.basename(path.rstrip("/"))
  what = KNOWN_FILES.get(name, f"the {spec.source} weights file {name}")
  raise FileNotFoundError(
      f"model.init_from={init_from!r}: no file {path}. Get {what} and put it there (bare file names are looked up "
      f"in $C2F_WEIGHTS_DIR, else ~/.cache/coarse2fine/weights), or train from random weights on purpose with "
      f"--config.model.init_from=\"\".")


def read_bytes(path: str) -> bytes:
  """The one place weight files are read: local paths or object-store URLs (`coarse2fine.storage`)."""
  from coarse2fine import storage

  return storage.read_bytes(path)


def _write_npz_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
  from coarse2fine import storage

  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  storage.write_bytes_atomically(path, buffer.getvalue())


def _npz_arrays(data: bytes) -> dict[str, np.ndarray]:
  with np.load(io.BytesIO(data), allow_pickle=False) as npz:
    return {key: npz[key] for key in npz.files}


def _torch_tensors(data: bytes, path: str) -> dict[str, np.ndarray]:
  """The tensors of a PyTorch pickle (a state dict, or a checkpoint dict holding one) as numpy arrays."""
  try:
    import torch
  except ImportError:
    raise ImportError(f"Reading {path} (a PyTorch pickle) needs PyTorch: pip install -e '.[torch]' (or pip install "
                      "torch), or convert the file to .safetensors elsewhere.") from None
  trusted = os.environ.get(TRUST_PICKLE_ENV) == "1"
  try:
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=not trusted)
  except Exception as error:  # noqa: BLE001 -- torch raises several kinds for a refused pickle
    first = str(error).strip().split("\n")[0][:200]
    raise ValueError(
        f"{path}: PyTorch refused to load it with weights_only=True ({first}). If you trust the file, set "
        f"{TRUST_PICKLE_ENV}=1 to unpickle it fully (this runs code from the file), or save its state dict "
        "as .safetensors.") from None
  for key in ("state_dict", "model", "model_state_dict"):
    if isinstance(obj, dict) and isinstance(obj.get(key), dict):
      obj = obj[key]
      break
  if not isinstance(obj, dict):
    raise ValueError(f"{path}: expected a state dict (or a dict with 'state_dict'), got {type(obj).__name__}.")
  arrays = {}
  for key, value in obj.items():
    if isinstance(value, torch.Tensor):
      value = value.detach().cpu()
      arrays[str(key)] = (value.float() if value.is_floating_point() else value).numpy()
  return arrays


def read_tensors(path: str) -> dict[str, np.ndarray]:
  """Named arrays of a `.safetensors`, `.npz` or PyTorch (`.pth`, `.pt`, `.tar`, `.ckpt`) file.

  A PyTorch file is converted once: its arrays are cached as `<cache_dir>/<sha256>.npz`.
  """
  data = read_bytes(path)
  if path.endswith(".safetensors"):
    from safetensors.numpy import load as load_safetensors

    return dict(load_safetensors(data))
  if path.endswith(".npz"):
    return _npz_arrays(data)
  cached = os.path.join(cache_dir(), hashlib.sha256(data).hexdigest() + ".npz")
  if os.path.isfile(cached):
    return _npz_arrays(read_bytes(cached))
  arrays = _torch_tensors(data, path)
  try:
    _write_npz_atomically(cached, arrays)
  except OSError as error:  # a read-only cache costs a conversion next time, nothing more
    logging.warning("Could not cache the converted %s in %s: %s", path, cached, error)
  return arrays


# ----------------------------------------------------------------------------- loaded weights

@dataclasses.dataclass
class Source:
  """Weights read from a spec, before they meet an encoder.

  `tensors`: name -> array, in the source's layout (torchvision names after the prefix is stripped,
  or `params/...` / `batch_stats/...` Flax paths); `foreign`: names outside the encoder (a MoCo
  checkpoint's momentum encoder, projector, predictor), never loaded.
  """

  spec: str
  source: str
  tensors: dict[str, np.ndarray]
  foreign: tuple[str, ...] = ()


def _flatten(tree: Any, prefix: str, leaf=np.asarray) -> dict[str, Any]:
  """{"prefix/a/b": leaf(value)} of a nested dict."""
  flat = {}
  if isinstance(tree, dict) or hasattr(tree, "items"):
    for key, value in tree.items():
      flat.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key), leaf))
  else:
    flat[prefix] = leaf(tree)
  return flat


def _checkpoint_tensors(workdir: str) -> dict[str, np.ndarray]:
  from coarse2fine.engine.checkpointing import Checkpointer
  from coarse2fine.engine.runs import load_run_config

  checkpointer = Checkpointer(workdir, load_run_config(workdir))
  try:
    state = checkpointer.read_state()
  finally:
    checkpointer.close()
  tensors = {}
  for collection in ("params", "batch_stats"):
    encoder = (state.get(collection) or {}).get("encoder")
    if encoder is None and collection == "params":
      raise ValueError(f"The checkpoint in {workdir} has no params['encoder']: is it a coarse2fine run?")
    tensors.update(_flatten(encoder or {}, collection))
  return tensors


def load_source(init_from: str) -> Source:
  """Reads the weights `init_from` names (see the module docstring); checks the file first."""
  check_available(init_from)
  spec = parse_spec(init_from)
  path = resolve_path(spec)
  if spec.source == "checkpoint":
    return Source(init_from, spec.source, _checkpoint_tensors(path))
  tensors = read_tensors(path)
  if spec.source == "npz":
    bad = [name for name in tensors if not name.startswith(("params/", "batch_stats/"))]
    if bad:
      raise ValueError(f"{path}: array {bad[0]!r} is not named params/<path> or batch_stats/<path> (Flax layout, "
                       "docs/pretrained.md#npz); torchvision-named tensors load with 'torchvision:<file>'.")
    return Source(init_from, spec.source, tensors)
  foreign: tuple[str, ...] = ()
  if spec.source == "moco_v3":
    prefix = next((p for p in MOCO_PREFIXES if any(name.startswith(p) for name in tensors)), None)
    if prefix is None:
      raise ValueError(f"{path}: no tensor name starts with {' or '.join(MOCO_PREFIXES)} (MoCo v3's official or "
                       f"solo-learn's layout), e.g. {sorted(tensors)[:3]}; a plain ResNet state dict loads with "
                       "'torchvision:<file>'.")
    foreign = tuple(sorted(name for name in tensors if not name.startswith(prefix)))
    tensors = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
  return Source(init_from, spec.source, tensors, foreign)


# ----------------------------------------------------------------------------- matching an encoder

_BLOCK = re.compile(r"stage(\d+)_block(\d+)$")
_NUMBERED = re.compile(r"(Conv|BatchNorm)_(\d+)$")
_BN_NAMES = {("params", "scale"): "weight", ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
             ("batch_stats", "var"): "running_var"}


def torch_name(collection: str, path: str) -> Optional[str]:
  """torchvision's ResNet tensor name of the Flax ResNet leaf `collection`/`path`, or None if it has none."""
  *modules, leaf = path.split("/")
  parts = []
  for module in modules:
    block, numbered = _BLOCK.match(module), _NUMBERED.match(module)
    if module == "stem_conv":
      parts.append("conv1")
    elif module == "stem_bn":
      parts.append("bn1")
    elif block:
      parts.append(f"layer{block.group(1)}.{int(block.group(2)) - 1}")
    elif numbered:
      parts.append(f"{'conv' if numbered.group(1) == 'Conv' else 'bn'}{int(numbered.group(2)) + 1}")
    elif module == "proj_conv":
      parts.append("downsample.0")
    elif module == "proj_bn":
      parts.append("downsample.1")
    else:
      return None
  if not parts:
    return None
  if leaf == "kernel" and collection == "params":
    suffix = "weight"
  else:
    suffix = _BN_NAMES.get((collection, leaf))
    if suffix is None:
      return None
  return ".".join(parts + [suffix])


def _to_flax(name: str, value: np.ndarray) -> np.ndarray:
  """A torch tensor in the Flax layout: conv weights [O, I, kh, kw] -> [kh, kw, I, O]."""
  return np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value


def _unused_in_torch_layout(name: str) -> bool:
  return name.startswith("fc.") or name.endswith("num_batches_tracked")


def match(source: Source, params: Any, batch_stats: Any, encoder: str = "",
          keep_fresh: tuple[str, ...] = ()) -> tuple[dict, dict]:
  """(params, batch_stats) of the encoder, filled from `source` as float32 numpy arrays.

  `params`, `batch_stats`: the encoder's freshly initialised trees (arrays or shape structs).
  Every leaf must be in the source with its shape; a source tensor the encoder lacks is an error,
  except names that are unused by design (torchvision's `fc.*` and `num_batches_tracked`, a MoCo
  checkpoint's other parts), which one log line lists. `keep_fresh` (`model.init_fresh`): encoder
  submodules, by Flax name (e.g. "stem_conv"), that keep the values in `params`/`batch_stats`
  (which must then be arrays) and whose source tensors are not used.
  """
  shape_of = lambda leaf: tuple(leaf.shape)
  targets = {**_flatten(params, "params", shape_of), **_flatten(batch_stats, "batch_stats", shape_of)}
  torch_layout = source.source in TORCH_LAYOUT
  what = f"model.init_from={source.spec!r}"
  loaded, used = {}, set()
  fresh = {**_flatten(params, "params"), **_flatten(batch_stats, "batch_stats")} if keep_fresh else {}
  submodules = {flat.split("/")[1] for flat in targets}
  if set(keep_fresh) - submodules:
    raise ValueError(f"model.init_fresh names {sorted(set(keep_fresh) - submodules)}, which the encoder lacks; its "
                     f"submodules: {sorted(submodules)}.")
  for flat, shape in targets.items():
    collection, path = flat.split("/", 1)
    if path.split("/")[0] in keep_fresh:
      loaded[flat] = np.asarray(fresh[flat], np.float32)
      skipped = torch_name(collection, path) if torch_layout else flat
      used.add(skipped)
      continue
    if torch_layout:
      name = torch_name(collection, path)
      if name is None:
        raise ValueError(f"{what}: the encoder{f' {encoder!r}' if encoder else ''} has {flat}, which has no "
                         "torchvision ResNet counterpart; torchvision, timm and MoCo v3 weights load into resnet18, "
                         "resnet34 and resnet50 only.")
    else:
      name = flat
    if name not in source.tensors:
      raise ValueError(f"{what}: tensor {name!r} (for the encoder's {flat}) is missing from the weights; check "
                       "model.encoder and model.encoder_args against the network the file holds.")
    value = _to_flax(name, source.tensors[name]) if torch_layout else source.tensors[name]
    if tuple(value.shape) != tuple(shape):
      raise ValueError(f"{what}: tensor {name!r} has shape {tuple(value.shape)} (Flax layout) but the encoder's "
                       f"{flat} is {tuple(shape)}; check model.encoder and model.encoder_args (e.g. stem, "
                       "stem_padding, num_filters).")
    loaded[flat] = np.asarray(value, np.float32)
    used.add(name)
  leftover = sorted(set(source.tensors) - used)
  unused = [name for name in leftover if torch_layout and _unused_in_torch_layout(name)]
  unexpected = [name for name in leftover if name not in unused]
  if unexpected:
    raise ValueError(f"{what}: {len(unexpected)} tensor(s) the encoder has no place for, e.g. {unexpected[:3]}; the "
                     "file holds another network than model.encoder"
                     f"{f'={encoder!r}' if encoder else ''} with these encoder_args.")
  counters = [name for name in unused if name.endswith("num_batches_tracked")]
  ignored = [name for name in unused if name not in counters] + list(source.foreign)
  listed = ", ".join(ignored[:10]) + (f", ... ({len(ignored)} in all)" if len(ignored) > 10 else "")
  logging.warning("%s: loaded %d encoder tensors; not used: %s%s.", what, len(loaded), listed or "none",
                  f" and {len(counters)} BatchNorm num_batches_tracked" if counters else "")
  return _nest(loaded, "params", params), _nest(loaded, "batch_stats", batch_stats)


def _nest(flat: dict[str, np.ndarray], prefix: str, like: Any) -> Any:
  if isinstance(like, dict) or hasattr(like, "items"):
    return {key: _nest(flat, f"{prefix}/{key}", value) for key, value in like.items()}
  return flat[prefix]


def save_npz(path: str, params: Any, batch_stats: Any = None) -> str:
  """Writes an encoder's variables as an `.npz` that `init_from='npz:<path>'` loads (whole, or not at all)."""
  _write_npz_atomically(path, {**_flatten(params, "params"), **_flatten(batch_stats or {}, "batch_stats")})
  return path


# ----------------------------------------------------------------------------- input normalisation

def normalization_for(init_from: str) -> str:
  """"imagenet" for torchvision, timm and MoCo v3 weights, a run's own for `checkpoint:`, else "dataset"."""
  spec = parse_spec(init_from)
  if spec is None or spec.source == "npz":
    return "dataset"
  if spec.source in IMAGENET_SOURCES:
    return "imagenet"
  from coarse2fine.engine.runs import load_run_config

  return resolved_normalization(load_run_config(resolve_path(spec)))


def resolved_normalization(config) -> str:
  """`data.normalization` of a config, "auto" resolved by `model.init_from` (configs without it: "dataset")."""
  value = config.data.get("normalization", "dataset")
  if value not in NORMALIZATIONS:
    raise ValueError(f"data.normalization={value!r}; choose one of {list(NORMALIZATIONS)}.")
  return normalization_for(config.model.get("init_from", "")) if value == "auto" else value


def with_resolved_normalization(config):
  """A copy of `config` whose `data.normalization` is "dataset" or "imagenet": what a run records."""
  import copy

  config = copy.deepcopy(config)
  if "normalization" in config.data:
    config.data.normalization = resolved_normalization(config)
  return config


def apply_normalization(data, config):
  """`data` with ImageNet's mean and std when the config's normalisation resolves to "imagenet"."""
  if resolved_normalization(config) != "imagenet":
    return data
  if not data.is_image or data.input_shape[-1] != 3:
    raise ValueError(f"data.normalization resolves to 'imagenet', which needs RGB images, but {data.name!r} has "
                     f"inputs of shape {data.input_shape}; set data.normalization='dataset'.")
  return dataclasses.replace(data, mean=np.asarray(IMAGENET_MEAN, np.float32),
                             std=np.asarray(IMAGENET_STD, np.float32))
