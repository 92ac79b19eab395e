"""Every config file loads, names things that exist, and the paper configs carry the paper's numbers."""

import glob
import importlib.util
import os

import ml_collections
import pytest

from coarse2fine import config_base, train
from coarse2fine.data import augment
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
  train.validate_config(config)
  assert config.model.encoder in ENCODERS
  build_encoder(config.model)  # every encoder_args field is one the encoder has
  # Every other field the config sets is one base_config defines: an unlocked ConfigDict would
  # otherwise take a misspelt name (say `optimizer.warmup_epoch`) as a new field nothing reads.
  known = _fields(config_base.base_config())
  unknown = [name for name in _fields(config) if name not in known and not name.startswith("model.encoder_args.")]
  assert not unknown, f"fields base_config does not define: {unknown}"


def test_every_method_has_a_cpu_fashion_mnist_config():
  names = {os.path.basename(f) for f in FILES}
  for method in ("coarse", "coarse_plus", "fine", "fine_plus", "scgm", "scgm_a", "ancor", "falcon", "scan", "maskcon"):
    assert f"{method}_fashion_mnist.py" in names


@pytest.mark.parametrize("arg", ["living17", "nonliving26", "entity13", "entity30", "living17,a"])
def test_scgm_breeds_has_the_paper_hyperparameters(arg):
  config = _load(os.path.join(CONFIG_DIR, "scgm_breeds.py"), arg)
  assert config.data.variant == arg.split(",")[0]
  assert config.method == ("scgm_a" if arg.endswith(",a") else "scgm_g")
  assert (config.model.encoder, config.train.batch_size, config.optimizer.lr) == ("resnet50", 256, 0.03)
  assert (config.optimizer.momentum, config.optimizer.weight_decay) == (0.9, 1e-4)
  assert (config.optimizer.schedule, config.optimizer.restart_epochs, config.train.num_epochs) == (
      "cosine_restarts", 20, 200)
  hp = config.scgm
  assert (hp.num_subclasses, hp.gamma, hp.sigma2, hp.lam, hp.estep_every_epochs) == (100, 0.5, 0.1, 25.0, 5)
  assert config.model.embedding_dim == 128
  with pytest.raises(ValueError, match="dataset in"):
    _load(os.path.join(CONFIG_DIR, "scgm_breeds.py"), "living18")


@pytest.mark.parametrize("name,encoder,batch,lr", [("scgm_cifar100.py", "resnet12", 1024, 0.12),
                                                   ("scgm_tiered.py", "resnet12", 512, 0.12)])
def test_scgm_cifar_and_tiered_hyperparameters(name, encoder, batch, lr):
  for arg in ("g", "a"):
    config = _load(os.path.join(CONFIG_DIR, name), arg)
    assert config.method == f"scgm_{arg}"
    assert (config.model.encoder, config.train.batch_size, config.optimizer.lr) == (encoder, batch, lr)
    assert (config.scgm.num_subclasses, config.scgm.gamma, config.scgm.sigma2, config.scgm.lam) == (100, 0.5, 0.1, 25.0)
    assert len(config.data.views) == (2 if arg == "a" else 1)


# (config file:arg) -> (mode, w, T2) from the paper's best settings (docs/methods/maskcon.md#paper-benchmarks)
MASKCON_SETTINGS = {
    "maskcon_cifar100.py:maskcon": ("maskcon", 1.0, 0.05),
    "maskcon_cifar100.py:grafit": ("grafit", 0.8, 0.05),
    "maskcon_cifar100.py:coins": ("coins", 0.5, 0.05),
    "maskcon_cifartoy.py:good": ("maskcon", 1.0, 0.05),
    "maskcon_cifartoy.py:good,grafit": ("grafit", 0.5, 0.05),
    "maskcon_cifartoy.py:bad,grafit": ("grafit", 0.8, 0.05),
    "maskcon_cifartoy.py:bad,coins": ("coins", 0.8, 0.05),
    "maskcon_sop.py:split1": ("maskcon", 0.8, 0.1),
    "maskcon_sop.py:split2": ("maskcon", 0.5, 0.05),
    "maskcon_sop.py:split2,coins": ("coins", 0.2, 0.05),
    "maskcon_cars196.py:maskcon": ("maskcon", 1.0, 0.1),
    "maskcon_cars196.py:coins": ("coins", 1.0, 0.1),
    "maskcon_imagenet32.py:selfcon": ("selfcon", 0.5, 0.05),
}


# (query, key) augmentation kinds of the official code's views (docs/methods/maskcon.md#paper-settings)
MASKCON_VIEWS = {
    "maskcon_cifar100.py": ("autoaugment", "weak"),
    "maskcon_cifartoy.py": ("autoaugment", "weak"),
    "maskcon_imagenet32.py": ("autoaugment", "weak"),
    "maskcon_cars196.py": ("strong_perspective", "weak_perspective"),
    "maskcon_sop.py": ("perspective", "weak_perspective"),
}


@pytest.mark.parametrize("name", sorted(MASKCON_SETTINGS))
def test_maskcon_paper_settings(name):
  filename, arg = name.split(":")
  config = _load(os.path.join(CONFIG_DIR, filename), arg)
  mode, w, t2 = MASKCON_SETTINGS[name]
  big = filename in ("maskcon_cars196.py", "maskcon_sop.py")
  assert (config.maskcon.mode, config.maskcon.w, config.maskcon.t2) == (mode, w, t2)
  assert (config.maskcon.t1, config.maskcon.queue_size, config.maskcon.momentum) == (0.1, 8192, 0.99)
  assert config.data.views == MASKCON_VIEWS[filename] and config.eval.features == "features"
  for kind in config.data.views:  # each view builds from the config's augmentation spec
    spec = dict(config.data.augment.to_dict(), kind=kind)
    augment.make_view(spec, (224, 224, 3) if big else (32, 32, 3))
  assert config.seed == 1228 and config.optimizer.lr == 0.02 and config.optimizer.warmup_epochs == 5
  assert config.model.encoder_args.stem == ("imagenet" if big else "cifar")
  assert (config.train.num_epochs, config.train.batch_size) == ((100, 256) if "imagenet32" in filename else (200, 128))


def test_maskcon_configs_name_bad_arguments():
  with pytest.raises(ValueError, match="good|bad"):
    _load(os.path.join(CONFIG_DIR, "maskcon_cifartoy.py"), "ugly")
  with pytest.raises(ValueError, match="mode"):
    _load(os.path.join(CONFIG_DIR, "maskcon_cifar100.py"), "moco")
