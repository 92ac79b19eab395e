"""Pretrained weights against PyTorch: a random-weight torchvision / timm ResNet, saved, loaded here, gives the
same eval-mode features (the pooled features before `fc`) as PyTorch's own forward.

Needs torch and torchvision (timm for one test); skipped without them (`.ci/run` installs them).
"""

import functools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from coarse2fine import models
from coarse2fine.models import pretrained

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

TOLERANCE = 1e-4  # max |flax - torch| / max |torch|


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("C2F_CACHE_DIR", str(tmp_path / "cache"))


def randomise(model, seed=0):
  """Random weights and BatchNorm affine parameters and running statistics (not the defaults 0 / 1)."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
        module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
        module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
        module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
  return model.eval()


def torch_features(model, images_nhwc):
  """Eval-mode pooled features of a torchvision-style ResNet: the input of `fc`."""
  captured = {}
  handle = model.fc.register_forward_hook(lambda module, inputs, output: captured.setdefault("x", inputs[0]))
  with torch.no_grad():
    model(torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))))
  handle.remove()
  return captured["x"].numpy()


def flax_features(init_from, encoder, images_nhwc, keep_fresh=(), **encoder_args):
  """(features, params) of `encoder` loaded from each spec of `init_from` (one or a list), eval mode."""
  module = models.build_encoder(encoder, **encoder_args)
  init = lambda x: module.init(jax.random.PRNGKey(0), x, train=False)
  variables = (jax.jit(init) if keep_fresh else functools.partial(jax.eval_shape, init))(images_nhwc[:1])
  apply = jax.jit(functools.partial(module.apply, train=False))
  results = []
  for spec in [init_from] if isinstance(init_from, str) else init_from:
    params, batch_stats = pretrained.match(pretrained.load_source(spec), variables["params"],
                                           variables["batch_stats"], encoder, keep_fresh)
    results.append((np.asarray(apply({"params": params, "batch_stats": batch_stats}, images_nhwc)), params))
  return results[0] if isinstance(init_from, str) else results


def relative_difference(a, b):
  return float(np.abs(a - b).max() / np.abs(b).max())


def save_both(model, directory, name):
  from safetensors.torch import save_file

  state = model.state_dict()
  pth = os.path.join(directory, f"{name}.pth")
  torch.save(state, pth)
  safetensors = os.path.join(directory, f"{name}.safetensors")
  save_file({k: v.contiguous() for k, v in state.items()}, safetensors)
  return pth, safetensors


@pytest.mark.parametrize("arch,size", [("resnet18", 64), ("resnet50", 32)])
def test_torchvision_features_match(tmp_path, arch, size):
  torch.manual_seed(0)
  model = randomise(getattr(torchvision.models, arch)(weights=None))
  images = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype(np.float32)
  expected = torch_features(model, images)
  paths = save_both(model, str(tmp_path), arch)
  outputs = flax_features([f"torchvision:{path}" for path in paths], arch, images, stem="imagenet")
  for path, (got, _) in zip(paths, outputs):
    assert got.shape == expected.shape
    difference = relative_difference(got, expected)
    print(f"{arch} {os.path.basename(path)}: max relative difference {difference:.2e}")
    assert difference < TOLERANCE, (path, difference)
  assert len(os.listdir(tmp_path / "cache")) == 1  # the .pth was converted once, keyed by its digest


def test_timm_resnet34_features_match(tmp_path):
  timm = pytest.importorskip("timm")
  torch.manual_seed(1)
  model = randomise(timm.create_model("resnet34", pretrained=False), seed=1)
  images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
  expected = torch_features(model, images)
  path = save_both(model, str(tmp_path), "timm_resnet34")[1]
  difference = relative_difference(flax_features(f"timm:{path}", "resnet34", images, stem="imagenet")[0], expected)
  print(f"timm resnet34: max relative difference {difference:.2e}")
  assert difference < TOLERANCE


def test_moco_v3_layouts_load_the_same_tensors(tmp_path):
  torch.manual_seed(2)
  model = randomise(torchvision.models.resnet18(weights=None), seed=2)
  state = model.state_dict()
  plain = os.path.join(tmp_path, "plain.pth")
  torch.save(state, plain)
  # The official release: base encoder (fc replaced by the projector), momentum encoder, predictor.
  official = {f"module.base_encoder.{k}": v for k, v in state.items() if not k.startswith("fc.")}
  official.update({"module.base_encoder.fc.0.weight": torch.randn(8, 512),
                   "module.momentum_encoder.conv1.weight": torch.randn(64, 3, 7, 7),
                   "module.predictor.0.weight": torch.randn(8, 8)})
  torch.save({"epoch": 1000, "arch": "resnet18", "state_dict": official, "optimizer": {}},
             os.path.join(tmp_path, "r-18.pth.tar"))
  # solo-learn: a Lightning checkpoint whose state dict has backbone., projector., momentum_backbone.
  solo = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}
  solo.update({"projector.0.weight": torch.randn(8, 512), "momentum_backbone.bn1.weight": torch.randn(64)})
  torch.save({"state_dict": solo, "epoch": 3}, os.path.join(tmp_path, "solo.ckpt"))
  module = models.build_encoder("resnet18", stem="imagenet")
  variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False),
                             np.zeros((1, 32, 32, 3), np.float32))
  reference = pretrained.match(pretrained.load_source(f"torchvision:{plain}"), variables["params"],
                               variables["batch_stats"])
  for name in ("r-18.pth.tar", "solo.ckpt"):
    loaded = pretrained.match(pretrained.load_source(f"moco_v3:{tmp_path}/{name}"), variables["params"],
                              variables["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, loaded, reference)


def test_solo_learn_cifar_stem_features_match(tmp_path):
  """solo-learn's CIFAR ResNet-18: a 3x3 stem conv padded by 2, no max-pool (FALCON's CIFAR backbone)."""
  torch.manual_seed(3)
  model = torchvision.models.resnet18(weights=None)
  model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
  model.maxpool = torch.nn.Identity()
  model = randomise(model, seed=3)
  torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()}},
             os.path.join(tmp_path, "solo.ckpt"))
  images = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype(np.float32)
  got = flax_features(f"moco_v3:{tmp_path}/solo.ckpt", "resnet18", images, stem="cifar", stem_padding=2)[0]
  difference = relative_difference(got, torch_features(model, images))
  print(f"solo-learn cifar resnet18: max relative difference {difference:.2e}")
  assert difference < TOLERANCE


def test_init_fresh_keeps_the_cifar_stem_and_loads_the_rest(tmp_path):
  """ImageNet weights into a CIFAR-stem ResNet-18 (MaskCon's 32 px configs): model.init_fresh=('stem_conv',)."""
  torch.manual_seed(6)
  model = randomise(torchvision.models.resnet18(weights=None), seed=6)
  torch.save(model.state_dict(), os.path.join(tmp_path, "r18.pth"))
  images = np.random.default_rng(6).normal(size=(2, 32, 32, 3)).astype(np.float32)
  got, params = flax_features(f"torchvision:{tmp_path}/r18.pth", "resnet18", images, keep_fresh=("stem_conv",))
  # The same network in PyTorch: a 3x3 stem holding the Flax stem's random kernel, no max-pool.
  model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
  with torch.no_grad():
    model.conv1.weight.copy_(torch.from_numpy(np.array(params["stem_conv"]["kernel"]).transpose(3, 2, 0, 1).copy()))
  model.maxpool = torch.nn.Identity()
  difference = relative_difference(got, torch_features(model.eval(), images))
  print(f"init_fresh cifar resnet18: max relative difference {difference:.2e}")
  assert difference < TOLERANCE


def test_embed_command_reproduces_torchvision(tmp_path):
  """The acceptance command: uint8 images, ImageNet normalisation, torchvision's eval forward."""
  torch.manual_seed(4)
  model = randomise(torchvision.models.resnet50(weights=None), seed=4)
  weights = os.path.join(tmp_path, "resnet50.pth")
  torch.save(model.state_dict(), weights)
  images = np.random.default_rng(4).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
  np.save(tmp_path / "x.npy", images)
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  subprocess.run([sys.executable, "-m", "coarse2fine.embed", f"--init_from=torchvision:{weights}",
                  "--encoder=resnet50", f"--inputs={tmp_path}/x.npy", f"--out={tmp_path}/z.npy"],
                 check=True, env=env, cwd=str(tmp_path), timeout=300)
  got = np.load(tmp_path / "z.npy")
  normalised = (images / np.float32(255) - np.asarray(pretrained.IMAGENET_MEAN, np.float32)) / np.asarray(
      pretrained.IMAGENET_STD, np.float32)
  expected = torch_features(model, normalised.astype(np.float32))
  assert got.dtype == np.float32 and got.shape == (3, 2048)
  difference = relative_difference(got, expected)
  print(f"embed resnet50: max relative difference {difference:.2e}")
  assert difference < TOLERANCE


def test_mismatches_name_the_tensor(tmp_path):
  torch.manual_seed(5)
  state = torchvision.models.resnet18(weights=None).state_dict()
  module = models.build_encoder("resnet18", stem="imagenet")
  variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False),
                             np.zeros((1, 32, 32, 3), np.float32))

  def load(tensors, name):
    path = os.path.join(tmp_path, name)
    torch.save(tensors, path)
    return pretrained.match(pretrained.load_source(f"torchvision:{path}"), variables["params"],
                            variables["batch_stats"], "resnet18")

  with pytest.raises(ValueError, match=r"'layer2\.0\.bn1\.running_var' .* is missing"):
    load({k: v for k, v in state.items() if k != "layer2.0.bn1.running_var"}, "missing.pth")
  with pytest.raises(ValueError, match=r"'layer1\.0\.conv2\.weight' has shape \(3, 3, 64, 32\)"):
    load({**state, "layer1.0.conv2.weight": torch.zeros(32, 64, 3, 3)}, "shape.pth")
  with pytest.raises(ValueError, match=r"layer5\.0\.conv1\.weight"):
    load({**state, "layer5.0.conv1.weight": torch.zeros(1)}, "unexpected.pth")
  cifar = models.build_encoder("resnet18")  # a 3x3 stem cannot take ImageNet's 7x7 conv1
  cifar_vars = jax.eval_shape(lambda x: cifar.init(jax.random.PRNGKey(0), x, train=False),
                              np.zeros((1, 32, 32, 3), np.float32))
  torch.save(state, os.path.join(tmp_path, "ok.pth"))
  with pytest.raises(ValueError, match=r"'conv1\.weight' has shape \(7, 7, 3, 64\).*stem"):
    pretrained.match(pretrained.load_source(f"torchvision:{tmp_path}/ok.pth"), cifar_vars["params"],
                     cifar_vars["batch_stats"])
