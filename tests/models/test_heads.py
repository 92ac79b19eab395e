"""The heads' linear init: PyTorch's nn.Linear default ("torch"), Flax's ("flax"), and "auto" per encoder."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from coarse2fine import config_base
from coarse2fine.data import load_dataset
from coarse2fine.engine import runs
from coarse2fine.engine.checkpointing import MISSING, without_added_fields
from coarse2fine.methods import build_method
from coarse2fine.models import ENCODERS, Classifier, Embedder, resolve_linear_init

KEY = jax.random.PRNGKey(0)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")
# Flax's truncated normal cuts the unit normal at +-2 and divides by the std of what remains.
TRUNCATED_STD = 0.87962566103423978


def _params(module, fan_in):
  return module.init(KEY, jnp.zeros((1, fan_in)), train=False)["params"]


def test_torch_init_is_pytorch_linear_default():
  """torch.nn.Linear: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so std 1/sqrt(3 fan_in)."""
  fan_in = 512
  fc = _params(Classifier(1024, linear_init="torch"), fan_in)["fc"]
  kernel, bias = np.asarray(fc["kernel"]), np.asarray(fc["bias"])
  bound = 1 / np.sqrt(fan_in)
  assert np.abs(kernel).max() <= bound * (1 + 1e-6) and np.abs(bias).max() <= bound  # float32 bound
  assert kernel.std() == pytest.approx(1 / np.sqrt(3 * fan_in), rel=0.02)
  assert abs(kernel.mean()) < 0.01 * kernel.std()
  # Flat, not bell-shaped: half the mass of a uniform lies within half its bound (a normal of this std: 61%).
  assert np.mean(np.abs(kernel) < bound / 2) == pytest.approx(0.5, abs=0.01)
  assert bias.std() == pytest.approx(1 / np.sqrt(3 * fan_in), rel=0.1)  # from the layer's fan_in, not [1024]


def test_torch_init_of_the_mlp_embedder_takes_each_layers_fan_in():
  """fc1: D -> hidden over fan_in D; fc2: hidden -> dim over fan_in hidden."""
  params = _params(Embedder(kind="mlp", dim=1024, hidden=256, linear_init="torch"), 512)
  for name, fan_in in (("fc1", 512), ("fc2", 256)):
    kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
    assert max(np.abs(kernel).max(), np.abs(bias).max()) <= 1 / np.sqrt(fan_in) * (1 + 1e-6)
    assert kernel.std() == pytest.approx(1 / np.sqrt(3 * fan_in), rel=0.03)
  assert np.abs(params["fc2"]["bias"]).max() > 1 / np.sqrt(512)  # fc2's bound is 1/sqrt(256), not 1/sqrt(512)
  fc = _params(Embedder(kind="fc", dim=64, linear_init="torch"), 100)["fc"]
  assert np.any(fc["bias"] != 0) and np.abs(fc["bias"]).max() <= 0.1


def test_flax_init_is_lecun_normal_and_zero_bias():
  """lecun_normal: a normal truncated at 2 std, rescaled to std 1/sqrt(fan_in); the default of both heads."""
  fan_in = 512
  fc = _params(Classifier(1024, linear_init="flax"), fan_in)["fc"]
  kernel = np.asarray(fc["kernel"])
  np.testing.assert_array_equal(fc["bias"], 0.0)
  assert kernel.std() == pytest.approx(1 / np.sqrt(fan_in), rel=0.02)
  assert np.abs(kernel).max() <= 2 / TRUNCATED_STD / np.sqrt(fan_in) * (1 + 1e-6)
  assert np.abs(kernel).max() > 1.5 / np.sqrt(fan_in)  # beyond the torch bound: not a uniform
  default = _params(Classifier(1024), fan_in)["fc"]
  np.testing.assert_array_equal(default["kernel"], kernel)
  embedder = _params(Embedder(kind="mlp", dim=8), 16)
  np.testing.assert_array_equal(embedder["fc1"]["bias"], 0.0)
  np.testing.assert_array_equal(embedder["fc2"]["bias"], 0.0)


def test_unknown_linear_init_is_named():
  with pytest.raises(ValueError, match="Unknown linear_init 'kaiming'; choose 'flax' or 'torch'"):
    _params(Classifier(3, linear_init="kaiming"), 4)
  named = r"Unknown model.linear_init 'pytorch'; choose one of \['auto', 'flax', 'torch'\]"
  with pytest.raises(ValueError, match=named):
    resolve_linear_init(ml_collections.ConfigDict({"encoder": "smallcnn", "linear_init": "pytorch"}))
  config = config_base.base_config()
  config.method, config.data.name = "coarse", "synthetic"
  config.model.linear_init = "pytorch"
  with pytest.raises(ValueError, match="Unknown model.linear_init 'pytorch'"):
    runs.validate_config(config)  # before any data is read


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_auto_resolves_per_encoder(encoder):
  model = config_base.base_config().model
  model.encoder = encoder
  assert model.linear_init == "auto"
  assert resolve_linear_init(model) == ("torch" if encoder == "smallcnn" else "flax")
  for value in ("flax", "torch"):  # an explicit value wins over the encoder
    model.linear_init = value
    assert resolve_linear_init(model) == value
  # A config saved before the field existed reads as "auto".
  assert resolve_linear_init(ml_collections.ConfigDict({"encoder": encoder})) == resolve_linear_init(
      ml_collections.ConfigDict({"encoder": encoder, "linear_init": "auto"}))


def test_a_checkpoint_from_before_the_field_resumes_at_auto_only():
  """Its default "auto" is what an older run did on every encoder but the smallcnn, whose heads the checkpoint holds."""
  assert without_added_fields([("model.linear_init", MISSING, "auto")], "old_run/checkpoints") == []
  kept = [("model.linear_init", MISSING, "torch")]
  assert without_added_fields(kept, "old_run/checkpoints") == kept


# Each network class that holds heads: ClassifierNet (with and without embedder), AncorNet, MaskConNet,
# HeadNet, and SCGMNet's embedder.
HEAD_CONFIGS = ["coarse_plus_fashion_mnist.py", "ancor_fashion_mnist.py", "maskcon_fashion_mnist.py",
                "fsc_fashion_mnist.py:softmax,coarse", "scan_fashion_mnist.py", "falcon_fashion_mnist.py",
                "scgm_fashion_mnist.py"]


def _method_params(name, encoder):
  config = config_base.load_config(os.path.join(CONFIG_DIR, name), {"model.encoder": encoder})
  config.data.name = "synthetic"  # small images: the heads do not depend on their size (MaskCon's flatten: 512-d)
  config.data.synthetic.update(kind="images", image_shape=(8, 8, 1), num_train=4096, num_test=32, dim=8)
  model = build_method(config, load_dataset(config.data)).model()
  return model.init(KEY, jnp.zeros((2, 8, 8, 1)), train=False)["params"]


def _dense_layers(tree, path=""):
  """{path: {"kernel": [fan_in, out], "bias"?: [out]}} of every Dense layer in a parameter tree."""
  if "kernel" in tree and np.ndim(tree["kernel"]) == 2:
    return {path: tree}
  return {layer: dense for key, sub in tree.items() if isinstance(sub, dict)
          for layer, dense in _dense_layers(sub, f"{path}/{key}").items()}


@pytest.mark.parametrize("name", HEAD_CONFIGS)
def test_method_networks_on_the_smallcnn_get_torch_init_heads(name):
  params = _method_params(name, "smallcnn")
  heads = _dense_layers({key: value for key, value in params.items() if key != "encoder"})
  assert heads, f"{name}: no head found"
  for path, layer in heads.items():
    bound = 1 / np.sqrt(layer["kernel"].shape[0]) * (1 + 1e-6)  # the initialiser computes it in float32
    assert np.abs(layer["kernel"]).max() <= bound, path
    if "bias" in layer:
      assert np.abs(layer["bias"]).max() <= bound and np.any(layer["bias"] != 0), path


def test_method_network_on_another_encoder_keeps_flax_init_heads():
  params = _method_params("coarse_plus_fashion_mnist.py", "convnet")
  heads = _dense_layers({key: value for key, value in params.items() if key != "encoder"})
  assert set(heads) == {"/embedder/fc1", "/embedder/fc2", "/classifier/fc"}
  for path, layer in heads.items():
    np.testing.assert_array_equal(layer["bias"], 0.0, err_msg=path)
