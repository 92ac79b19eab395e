"""model.init_from without PyTorch: .npz and checkpoint sources, specs, missing files, normalisation, resume."""

import json
import os

import jax
import numpy as np
import pytest

from coarse2fine import models
from coarse2fine.engine import loop, optim, runs, sharding
from coarse2fine.engine.checkpointing import Checkpointer, ConfigMismatch
from coarse2fine.methods import build_method
from coarse2fine.models import pretrained


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
  monkeypatch.setenv("C2F_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("C2F_WEIGHTS_DIR", str(tmp_path / "weights"))


def random_encoder_npz(path, config, seed=7):
  """An .npz of the tiny config's encoder with other random weights than the run's own initialisation."""
  module = models.build_encoder(config.model.encoder, **config.model.encoder_args.to_dict())
  variables = module.init(jax.random.PRNGKey(seed), np.zeros((1, config.data.synthetic.dim), np.float32),
                          train=False)
  pretrained.save_npz(str(path), variables["params"], variables.get("batch_stats", {}))
  return jax.tree.map(np.asarray, variables["params"])


def fresh_state(config):
  run = runs.setup_run(config)
  return run, jax.tree.map(np.asarray, jax.device_get(run.state.params))


def test_specs_are_parsed_and_refused_with_the_fix():
  assert pretrained.parse_spec("") is None
  assert pretrained.parse_spec("torchvision:a.pth") == pretrained.Spec("torchvision", "a.pth")
  assert pretrained.parse_spec("/w/enc.npz") == pretrained.Spec("npz", "/w/enc.npz")
  with pytest.raises(ValueError, match="<source>:<file or workdir>"):
    pretrained.parse_spec("resnet18.pth")
  with pytest.raises(ValueError, match=r"'keras:x\.h5' is not"):
    pretrained.parse_spec("keras:x.h5")


def test_a_missing_file_names_the_weights_and_the_folder(tmp_path, tiny_config):
  tiny_config.model.init_from = "moco_v3:r-50-1000ep.pth.tar"
  with pytest.raises(FileNotFoundError) as error:
    loop.train_and_evaluate(tiny_config, str(tmp_path / "run"))
  message = str(error.value)
  assert str(tmp_path / "weights" / "r-50-1000ep.pth.tar") in message
  assert "MoCo v3" in message and 'init_from=""' in message
  assert not os.path.exists(tmp_path / "run" / "config.json")


def test_npz_loads_the_encoder_and_keeps_the_head_fresh(tmp_path, tiny_config):
  expected = random_encoder_npz(tmp_path / "enc.npz", tiny_config)
  _, scratch = fresh_state(tiny_config)
  tiny_config.model.init_from = f"npz:{tmp_path}/enc.npz"
  _, loaded = fresh_state(tiny_config)
  jax.tree.map(np.testing.assert_array_equal, loaded["encoder"], expected)
  assert not np.array_equal(loaded["encoder"]["Dense_0"]["kernel"], scratch["encoder"]["Dense_0"]["kernel"])
  jax.tree.map(np.testing.assert_array_equal, {k: v for k, v in loaded.items() if k != "encoder"},
               {k: v for k, v in scratch.items() if k != "encoder"})


def test_npz_mismatches_are_named(tmp_path, tiny_config):
  random_encoder_npz(tmp_path / "enc.npz", tiny_config)
  arrays = dict(np.load(tmp_path / "enc.npz"))
  np.savez(tmp_path / "missing.npz", **{k: v for k, v in arrays.items() if k != "params/BatchNorm_1/bias"})
  np.savez(tmp_path / "extra.npz", **arrays, **{"params/Dense_9/kernel": np.zeros(3)})
  np.savez(tmp_path / "torch_names.npz", **{"conv1.weight": np.zeros(3)})
  for name, pattern in [("missing", r"'params/BatchNorm_1/bias'.*missing"), ("extra", r"params/Dense_9/kernel"),
                        ("torch_names", r"'conv1.weight' is not named params/")]:
    tiny_config.model.init_from = f"npz:{tmp_path}/{name}.npz"
    with pytest.raises(ValueError, match=pattern):
      runs.setup_run(tiny_config)


def test_momentum_encoder_starts_pretrained(tmp_path, tiny_config):
  tiny_config.method = "scgm_a"
  tiny_config.model.embedder = "mlp"
  tiny_config.model.embedding_dim = 8
  tiny_config.scgm.num_subclasses = 6
  tiny_config.contrast.queue_size = 64
  tiny_config.data.views = ("none", "none")
  expected = random_encoder_npz(tmp_path / "enc.npz", tiny_config)
  tiny_config.model.init_from = f"npz:{tmp_path}/enc.npz"
  run = runs.setup_run(tiny_config)
  teacher = jax.tree.map(np.asarray, jax.device_get(run.state.extra["momentum"].params["encoder"]))
  jax.tree.map(np.testing.assert_array_equal, teacher, expected)


def test_checkpoint_source_resume_and_recorded_normalisation(tmp_path, tiny_config):
  source_dir, run_dir = str(tmp_path / "source"), str(tmp_path / "run")
  tiny_config.train.num_epochs = 1
  loop.train_and_evaluate(tiny_config, source_dir)
  state = Checkpointer(source_dir, runs.load_run_config(source_dir)).read_state()
  with open(os.path.join(source_dir, "config.json")) as f:
    assert json.load(f)["data"]["normalization"] == "dataset"  # "auto" is recorded resolved

  config = tiny_config.copy_and_resolve_references()
  config.model.init_from = f"checkpoint:{source_dir}"
  config.train.stop_after_steps = 4
  _, loaded = fresh_state(config)
  jax.tree.map(np.testing.assert_array_equal, loaded["encoder"], state["params"]["encoder"])
  assert loop.train_and_evaluate(config, run_dir) is None  # stopped early, checkpoint at step 4
  # Resuming restores the checkpoint: the source is not read again (it may be gone).
  os.rename(source_dir, source_dir + "_moved")
  config.train.stop_after_steps = 0
  config.data.normalization = "dataset"  # what "auto" resolved to: the same run
  assert loop.train_and_evaluate(config, run_dir) is not None
  config.data.normalization = "imagenet"
  with pytest.raises((ConfigMismatch, ValueError), match="normalization"):
    loop.train_and_evaluate(config, run_dir)


def test_imagenet_sources_resolve_to_imagenet_normalisation(tiny_config):
  tiny_config.model.init_from = "timm:resnet50.safetensors"
  assert pretrained.resolved_normalization(tiny_config) == "imagenet"
  assert pretrained.with_resolved_normalization(tiny_config).data.normalization == "imagenet"
  tiny_config.data.normalization = "dataset"  # the config says otherwise
  assert pretrained.resolved_normalization(tiny_config) == "dataset"
  tiny_config.data.normalization = "imagenet"
  data = runs.load_dataset(tiny_config.data)
  with pytest.raises(ValueError, match="needs RGB images.*data.normalization='dataset'"):
    pretrained.apply_normalization(data, tiny_config)


def test_torchvision_safetensors_without_torch(tmp_path):
  """A torchvision-named .safetensors written with numpy alone loads into resnet18 (fc unused)."""
  from safetensors.numpy import save_file

  module = models.build_encoder("resnet18", stem="imagenet", num_filters=8)
  variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False),
                             np.zeros((1, 16, 16, 3), np.float32))
  rng = np.random.default_rng(0)
  tensors = {"fc.weight": np.zeros((10, 64), np.float32)}
  for collection in ("params", "batch_stats"):
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables[collection])[0]:
      flat = "/".join(str(getattr(k, "key", k)) for k in path)
      shape = leaf.shape if len(leaf.shape) != 4 else (leaf.shape[3], leaf.shape[2], leaf.shape[0], leaf.shape[1])
      tensors[pretrained.torch_name(collection, flat)] = rng.normal(size=shape).astype(np.float32)
  save_file(tensors, str(tmp_path / "w.safetensors"))
  params, batch_stats = pretrained.match(pretrained.load_source(f"torchvision:{tmp_path}/w.safetensors"),
                                         variables["params"], variables["batch_stats"], "resnet18")
  np.testing.assert_array_equal(params["stem_conv"]["kernel"], tensors["conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(batch_stats["stage4_block2"]["BatchNorm_1"]["var"],
                                tensors["layer4.1.bn2.running_var"])
  np.testing.assert_array_equal(params["stage2_block1"]["proj_bn"]["scale"], tensors["layer2.0.downsample.1.weight"])


def test_embed_run_features_equal_the_evaluators(tmp_path, tiny_config):
  from coarse2fine.engine import embedding

  workdir = str(tmp_path / "run")
  tiny_config.train.num_epochs = 1
  loop.train_and_evaluate(tiny_config, workdir)
  data = runs.load_dataset(tiny_config.data)
  x = data.test.inputs[:37].astype(np.float32)
  z = embedding.embed_run(workdir, x, key="features", batch_size=16)
  method = build_method(tiny_config, data)
  state = runs.restore_newest(workdir, tiny_config, runs.create_train_state(
      method, tiny_config, data.input_shape, sharding.make_mesh(), optim.make_schedule(tiny_config.optimizer, 1, 1)))
  expected = np.asarray(method.predict(state, x)["features"])
  assert z.shape == expected.shape and z.dtype == np.float32
  np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)


def test_paper_config_without_weights_stops_before_the_data(tmp_path):
  """maskcon_sop names torchvision's ResNet-18 file: without it the run stops at once (SOP is not here either)."""
  from coarse2fine.config_base import load_config

  config = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "maskcon_sop.py"))
  with pytest.raises(FileNotFoundError, match=r"weights/resnet18-f37072fd\.pth.*ResNet18_Weights\.IMAGENET1K_V1"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "config.json")


def test_fashion_mnist_configs_train_from_scratch():
  import glob

  from coarse2fine.config_base import load_config

  files = glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*_fashion_mnist.py"))
  assert files and all(load_config(f).model.init_from == "" for f in files)


def test_api_fit_records_init_from(tmp_path, tiny_config):
  import coarse2fine as c2f

  random_encoder_npz(tmp_path / "enc.npz", tiny_config)
  rng = np.random.default_rng(0)
  x, coarse = rng.normal(size=(64, 16)).astype(np.float32), np.repeat(np.arange(2), 32)
  overrides = {"model.encoder_args.hidden_sizes": (32, 32), "train.num_epochs": 1}
  with pytest.raises(ValueError, match="disagree"):
    c2f.fit(x, coarse, "coarse", str(tmp_path / "bad"), init_from="npz:a.npz",
            config_overrides={**overrides, "model.init_from": "npz:b.npz"})
  model = c2f.fit(x, coarse, "coarse", str(tmp_path / "run"), init_from=f"npz:{tmp_path}/enc.npz",
                  config_overrides=overrides)
  assert model.config.model.init_from == f"npz:{tmp_path}/enc.npz"
  assert model.config.data.normalization == "dataset"
  assert model.embed(x[:3]).shape == (3, 32)


def test_embed_command_refuses_bad_inputs_before_any_model(tmp_path):
  from coarse2fine.cli import embed

  np.save(tmp_path / "int.npy", np.zeros((2, 4, 4, 3), np.int64))
  np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
  np.save(tmp_path / "nan.npy", np.full((2, 4), np.nan, np.float32))
  with pytest.raises(ValueError, match="got int64.*astype"):
    embed.read_inputs(str(tmp_path / "int.npy"))
  with pytest.raises(ValueError, match="N > 0"):
    embed.read_inputs(str(tmp_path / "empty.npy"))
  with pytest.raises(ValueError, match="NaN"):
    embed.read_inputs(str(tmp_path / "nan.npy"))
  with pytest.raises(FileNotFoundError, match="no such file"):
    embed.read_inputs(str(tmp_path / "missing.npy"))


def test_a_moco_v3_pretraining_run_starts_another_method(tmp_path, tiny_config):
  """docs/methods/moco.md: a moco_v3 run's encoder loads with model.init_from=checkpoint:<workdir>."""
  import ml_collections

  config = tiny_config
  config.data.synthetic.kind = "images"
  config.data.synthetic.image_shape = (8, 8, 1)
  config.data.synthetic.num_train, config.data.synthetic.num_test = 128, 64
  config.model.encoder = "convnet"
  config.model.encoder_args = ml_collections.ConfigDict({"widths": (8, 16)})
  config.train.num_epochs, config.train.batch_size, config.eval.batch_size = 1, 32, 64
  pretrain = config.copy_and_resolve_references()
  pretrain.method = "moco_v3"
  pretrain.data.views = ("strong", "strong")
  pretrain.moco.embedding_dim = 8
  pretrain.moco.projector_hidden = pretrain.moco.predictor_hidden = 16
  pretrain.eval.protocols, pretrain.eval.features = ("retrieval",), "features"
  loop.train_and_evaluate(pretrain, str(tmp_path / "moco"))
  saved = Checkpointer(str(tmp_path / "moco"), pretrain).read_state()
  config.data.views = ("crop_flip",)
  config.model.init_from = f"checkpoint:{tmp_path}/moco"
  run, params = fresh_state(config)
  jax.tree.map(np.testing.assert_array_equal, params["encoder"], saved["params"]["encoder"])
  batch_stats = jax.tree.map(np.asarray, jax.device_get(run.state.batch_stats["encoder"]))
  jax.tree.map(np.testing.assert_array_equal, batch_stats, saved["batch_stats"]["encoder"])
