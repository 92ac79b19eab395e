"""F-SC's paper configs (CUB-2011, Cars-196, Mini-ImageNet, Caltech-256): every head builds with the paper's recipe."""

import importlib.util
import os
import pathlib

import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.data.augmentation import presets as augment
from coarse2fine.engine import runs
from coarse2fine.methods import build_method
from coarse2fine.methods.common.network import build_encoder
from coarse2fine.methods.fsc.method import HEADS, SubCentreClassifier
from coarse2fine.methods.fsc.recipes import fsc_paper

CONFIG_DIR = str(pathlib.Path(__file__).resolve().parents[3] / "configs")
# config file -> (data.name, data.taxonomy, eval protocols)
PAPER_CONFIGS = {
    "fsc_cub2011.py": ("cub2011", "cub200_flat", ("classification", "retrieval")),
    "fsc_cars196.py": ("cars196", "cars196_8", ("classification", "retrieval")),
    "fsc_mini_imagenet.py": ("arrays", "", ("classification",)),
    "fsc_caltech256.py": ("arrays", "", ("classification",)),
}
ARRAYS_CONFIGS = [name for name, (dataset, _, _) in PAPER_CONFIGS.items() if dataset == "arrays"]


def _load(name, *arg):
  path = os.path.join(CONFIG_DIR, name)
  spec = importlib.util.spec_from_file_location(name[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*arg)


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
@pytest.mark.parametrize("head", HEADS)
def test_paper_config_builds_with_the_recipe(name, head):
  config = _load(name, head)
  runs.validate_config(config)
  build_encoder(config.model)  # every encoder_args field is one ResNet-18 has
  dataset, taxonomy, protocols = PAPER_CONFIGS[name]
  assert (config.method, config.fsc.head, config.fsc.label) == ("fsc", head, "fine")
  assert (config.data.name, config.data.taxonomy) == (dataset, taxonomy)
  # docs/methods/fsc.md#paper-settings: ResNet-18, SGD momentum .9, wd 4e-5, cosine from 0.01;
  # s = 4, sigma^2 = 1e-3, beta = 1e-4.
  assert (config.model.encoder, config.model.encoder_args.stem, config.model.embedder) == (
      "resnet18", "imagenet", "none")
  opt = config.optimizer
  assert (opt.name, opt.lr, opt.momentum, opt.weight_decay, opt.schedule) == ("sgd", 0.01, 0.9, 4e-5, "cosine")
  assert (opt.warmup_epochs, opt.min_lr, opt.nesterov) == (0.0, 0.0, False)
  assert (config.fsc.num_sub, config.fsc.sigma2, config.fsc.beta) == (4, 1e-3, 1e-4)
  assert (config.train.num_epochs, config.train.batch_size) == (100, 64)  # our choice
  assert config.data.image_size == 224
  assert config.eval.features == "features" and tuple(config.eval.protocols) == protocols
  if "retrieval" in protocols:
    assert tuple(config.eval.retrieval_ks) == (1, 2, 4, 8)  # SoftTriple's protocol
  assert len(config.data.views) == 1  # the fsc method trains on one view


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_views_are_known_augmentations_with_224_px_random_crops_and_flips(name):
  config = _load(name)
  assert all(view in augment.AUGMENTATIONS for view in config.data.views)
  spec = config.data.augment.to_dict()
  spec["kind"] = config.data.views[0]
  view = augment.make_view(spec, (224, 224, 3))
  image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), np.uint8)
  rng = np.random.default_rng(1)
  views = [view.host(image, rng) for _ in range(8)]
  assert all(v.shape == (224, 224, 3) and v.dtype == np.uint8 for v in views)
  assert any(not np.array_equal(v, views[0]) for v in views[1:])  # random
  assert spec["flip"] and spec["min_scale"] == 0.08  # RandomResizedCrop's (0.08, 1) area


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_default_head_is_fsc_and_bad_heads_fail(name):
  assert _load(name).fsc.head == "fsc"
  for bad in ("fsc,coarse", "arcface", ""):
    with pytest.raises(ValueError, match=r"F-SC paper configs take a head|takes '<head>', 'retrieval'"):
      _load(name, bad)


@pytest.mark.parametrize("name", ARRAYS_CONFIGS)
def test_arrays_configs_fail_clearly_until_the_user_sets_path_and_taxonomy(name, tmp_path):
  config = _load(name)
  with pytest.raises(ValueError, match=r"data.name='arrays' needs data.path"):
    load_dataset(config.data)
  config.data.path = str(tmp_path / "missing.npz")
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    load_dataset(config.data)
  np.savez(tmp_path / "data.npz", x=np.zeros((2, 8, 8, 3), np.uint8), coarse=np.zeros(2, np.int64))
  config.data.path = str(tmp_path / "data.npz")
  with pytest.raises(ValueError, match=r"data.name='arrays' needs data.taxonomy"):
    load_dataset(config.data)


@pytest.mark.parametrize("name", ARRAYS_CONFIGS)
def test_arrays_configs_load_an_npz_built_as_their_docstring_says(name, tmp_path):
  classes = [f"class_{k}" for k in range(5)]
  (tmp_path / "flat.csv").write_text("".join(f"{c},all\n" for c in classes))
  rng = np.random.default_rng(0)
  fine, fine_test = np.repeat(np.arange(5), 4), np.arange(5)
  np.savez(tmp_path / "data.npz",
           x=rng.integers(0, 256, (20, 16, 16, 3), np.uint8), fine=fine, coarse=np.zeros(20, np.int64),
           x_test=rng.integers(0, 256, (5, 16, 16, 3), np.uint8), fine_test=fine_test,
           coarse_test=np.zeros(5, np.int64))
  config = _load(name)
  config.data.path = str(tmp_path / "data.npz")
  config.data.taxonomy = str(tmp_path / "flat.csv")
  data = load_dataset(config.data)
  assert (data.num_fine, data.num_coarse, len(data.train), len(data.test)) == (5, 1, 20, 5)
  np.testing.assert_array_equal(data.train.fine, fine)
  np.testing.assert_array_equal(data.test.fine, fine_test)
  for head in HEADS:
    config.fsc.head = head
    method = build_method(config, data)
    assert isinstance(method, SubCentreClassifier) and method.num_classes == 5  # fine classes, not coarse


def test_recipe_rejects_unknown_heads():
  from coarse2fine.config_base import base_config

  with pytest.raises(ValueError, match="F-SC paper configs take a head"):
    fsc_paper(base_config(), "triplet")
