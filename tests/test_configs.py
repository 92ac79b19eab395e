"""Every config file loads, names things that exist, and the paper configs carry the paper's numbers."""

import glob
import importlib.util
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from coarse2fine import config_base
from coarse2fine.data import load_dataset
from coarse2fine.data.augmentation import presets as augment
from coarse2fine.engine import loop, runs
from coarse2fine.methods import METHODS, build_method
from coarse2fine.methods.common.network import build_encoder
from coarse2fine.models import ENCODERS

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
FILES = sorted(glob.glob(os.path.join(CONFIG_DIR, "*.py")))


def _fields(config, prefix=""):
  """The dotted names of every leaf field of a ConfigDict."""
  names = set()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      names |= _fields(value, f"{prefix}{key}.")
    else:
      names.add(prefix + key)
  return names


def _load(path, *arg):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*arg)


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_config_is_valid(path):
  config = _load(path)
  runs.validate_config(config)
  assert config.model.encoder in ENCODERS
  build_encoder(config.model)  # every encoder_args field is one the encoder has
  # Every other field the config sets is one base_config defines: an unlocked ConfigDict would
  # otherwise take a misspelt name (say `optimizer.warmup_epoch`) as a new field nothing reads.
  known = _fields(config_base.base_config())
  unknown = [name for name in _fields(config) if name not in known and not name.startswith("model.encoder_args.")]
  assert not unknown, f"fields base_config does not define: {unknown}"


def test_every_registered_method_has_a_cpu_fashion_mnist_config():
  fashion = [f for f in FILES if f.endswith("_fashion_mnist.py")]
  arguments = {"scan_fashion_mnist.py": ("c",), "fsc_fashion_mnist.py": ("softmax,coarse",)}
  covered = {_load(f).method for f in fashion}
  covered |= {_load(f, arg).method for f in fashion for arg in arguments.get(os.path.basename(f), ())}
  # The library's own methods (tests register a toy one from outside, which may share this worker).
  library = {name for name, cls in METHODS.items() if cls.__module__.startswith("coarse2fine.")}
  assert len(library) >= 12 and covered >= library, f"methods without a Fashion-MNIST config: {library - covered}"


# Arguments of the paper configs: each picks a dataset variant or a family member. Its own
# paper values are rows `file:argument` of the docs' paper-settings tables (tests/test_docs.py);
# every other field must stay as the default argument sets it (and as the table lists it).
ARGUMENTS = {
    "scgm_breeds.py": ("nonliving26", "entity13", "entity30", "living17,a"),
    "scgm_cifar100.py": ("a",),
    "scgm_tiered.py": ("a",),
    "falcon_breeds.py": ("nonliving26", "entity13", "entity30"),
    "falcon_cifar100.py": ("cifar68", "cifar_si", "t1t2"),
    "maskcon_cifar100.py": ("grafit", "coins", "selfcon", "supcon", "supce", "supfine"),
    "maskcon_cifartoy.py": ("bad", "good,grafit", "bad,grafit", "bad,coins"),
    "maskcon_sop.py": ("split2", "split2,coins"),
    "maskcon_cars196.py": ("coins",),
    "maskcon_imagenet32.py": ("selfcon",),
}
# What an argument may change: the dataset (variant, taxonomy, size), the method and what it
# reads (SCGM-A's second view and queue), and a member's own weights.
ARGUMENT_FIELDS = ("method", "data.", "falcon.lambda_entropy", "falcon.beta", "train.num_epochs", "maskcon.mode",
                   "maskcon.w", "maskcon.t2")


@pytest.mark.parametrize("name,arg", [(n, a) for n, args in sorted(ARGUMENTS.items()) for a in args])
def test_arguments_change_only_their_own_fields(name, arg):
  default, chosen = _load(os.path.join(CONFIG_DIR, name)), _load(os.path.join(CONFIG_DIR, name), arg)
  flat_default, flat_chosen = _flat(default), _flat(chosen)
  changed = sorted(k for k in flat_default if flat_default[k] != flat_chosen.get(k))
  unexpected = [k for k in changed if not k.startswith(ARGUMENT_FIELDS)]
  if chosen.method == "scgm_a" and default.method == "scgm_g":
    unexpected = [k for k in unexpected if k != "model.embedder"]
  assert not unexpected, f"{name}:{arg} changes {unexpected}"
  if name.startswith("scgm_"):
    assert chosen.method == ("scgm_a" if arg == "a" or arg.endswith(",a") else "scgm_g")
    assert len(chosen.data.views) == (2 if chosen.method == "scgm_a" else 1)
  if name.startswith("maskcon_"):
    for kind in chosen.data.views:  # each view builds from the config's augmentation spec
      spec = dict(chosen.data.augment.to_dict(), kind=kind)
      augment.make_view(spec, (224, 224, 3) if chosen.model.encoder_args.stem == "imagenet" else (32, 32, 3))


def _flat(config, prefix=""):
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


@pytest.mark.parametrize("name", ["fsc_cub2011.py", "fsc_cars196.py"])
def test_fsc_retrieval_argument_sets_only_the_unseen_class_protocol(name):
  """`:retrieval` / `:<head>,retrieval`: SoftTriple's zero-shot protocol, the recipe otherwise unchanged."""
  path = os.path.join(CONFIG_DIR, name)
  for head_arg, retrieval_arg in (("fsc", "retrieval"), ("softtriple", "softtriple,retrieval")):
    default, chosen = _flat(_load(path, head_arg)), _flat(_load(path, retrieval_arg))
    changed = {k: chosen[k] for k in default if default[k] != chosen[k]}
    assert changed == {"data.split_protocol": "unseen_classes", "eval.protocols": ("retrieval",)}
    assert chosen["eval.retrieval_ks"] == (1, 2, 4, 8) and chosen["fsc.head"] == head_arg
    runs.validate_config(_load(path, retrieval_arg))
  for bad in ("retrieval,retrieval", "softmax,fsc", "triplet,retrieval"):
    with pytest.raises(ValueError, match=rf"{name} takes '<head>', 'retrieval' or '<head>,retrieval'"):
      _load(path, bad)


def test_scgm_breeds_names_a_bad_dataset():
  with pytest.raises(ValueError, match="dataset in"):
    _load(os.path.join(CONFIG_DIR, "scgm_breeds.py"), "living18")


def test_maskcon_configs_name_bad_arguments():
  with pytest.raises(ValueError, match="good|bad"):
    _load(os.path.join(CONFIG_DIR, "maskcon_cifartoy.py"), "ugly")
  with pytest.raises(ValueError, match="mode"):
    _load(os.path.join(CONFIG_DIR, "maskcon_cifar100.py"), "moco")


def test_the_pretraining_config_takes_maskcon_flattened_layout():
  """configs/pretrain_fashion_mnist.py's docstring: `--config.model.encoder_args.pool=flatten` pretrains through
  the flattened last map, MaskCon's layout: 28 -> 14 -> 7 -> 3 px after three 2x2 pools, x 128 channels."""
  path = os.path.join(CONFIG_DIR, "pretrain_fashion_mnist.py")
  for pool, dim in (("mean", 128), ("flatten", 3 * 3 * 128)):
    config = config_base.load_config(path, {"model.encoder_args.pool": pool})
    encoder = build_encoder(config.model)
    variables = encoder.init(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28, 1)), train=False)
    assert encoder.apply(variables, jnp.zeros((2, 28, 28, 1)), train=False).shape == (2, dim)


FASHION_RUNS = [(os.path.basename(f), arg) for f in FILES if f.endswith("_fashion_mnist.py")
                for arg in {"scan_fashion_mnist.py": ("c",), "fsc_fashion_mnist.py": ("fsc,fine",)}.get(
                    os.path.basename(f), (None,))]


@pytest.mark.parametrize("name,arg", FASHION_RUNS, ids=[n + (f":{a}" if a else "") for n, a in FASHION_RUNS])
def test_every_fashion_mnist_config_takes_the_smallcnn(name, arg):
  """`--config.model.encoder=smallcnn` on each CPU config: the method's network initialises (heads sized
  from the 128-d output, or the flattened map where the config pools so) and runs on 28 x 28 x 1 images
  (shapes only: traced, not compiled)."""
  config = _load(os.path.join(CONFIG_DIR, name), *([arg] if arg else []))
  config.model.encoder = "smallcnn"
  config.data.name = "synthetic"  # Fashion-MNIST's shape, without its files
  config.data.synthetic.update(kind="images", image_shape=(28, 28, 1), num_train=4096, num_test=32, dim=8)
  data = load_dataset(config.data)
  model = build_method(config, data).model()
  x = jnp.zeros((4, 28, 28, 1), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
  encoder = variables["params"]["encoder"]
  assert sum(leaf.size for leaf in jax.tree_util.tree_leaves(encoder)) == 139_168
  outputs = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert outputs["features"].shape == (4, 7 * 7 * 128 if config.model.encoder_args.get("pool") == "flatten" else 128)


def test_a_fashion_mnist_config_trains_on_the_smallcnn(tmp_path):
  """A few real steps with `--config.model.encoder=smallcnn` (PyTorch-initialised heads): the run finishes and
  its loss and metrics are finite."""
  config = _load(os.path.join(CONFIG_DIR, "coarse_plus_fashion_mnist.py"))
  config.model.encoder = "smallcnn"
  config.data.name = "synthetic"  # small images, without Fashion-MNIST's files
  config.data.synthetic.update(kind="images", image_shape=(8, 8, 1), num_train=96, num_test=32, dim=8)
  config.train.update(num_epochs=1, batch_size=32, log_every_steps=1)  # 3 steps
  config.eval.update(protocols=("classification",), batch_size=32)
  config.logging.progress = False
  results = loop.train_and_evaluate(config, str(tmp_path))
  assert results["steps"] == 3
  with open(tmp_path / "metrics.jsonl") as f:
    losses = [row["train/loss"] for row in map(json.loads, f) if "train/loss" in row]
  assert losses and all(math.isfinite(loss) for loss in losses)
  accuracy = [value for name, value in results["metrics"].items() if name.endswith("coarse_top1")]
  assert accuracy and all(0.0 <= value <= 100.0 for value in accuracy)  # percent
