"""Encoders and heads: shapes, parameter counts, BatchNorm behaviour, numpy references."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine import models
from coarse2fine.models import (
  ENCODERS,
  MLP,
  BasicBlock,
  Classifier,
  ConvNet,
  Embedder,
  ResNet,
  ResNet12,
  ResNet18,
  ResNet34,
  ResNet50,
  SmallCNN,
  build_encoder,
  encoder_features_dim,
  max_pool_2x2,
  space_to_depth,
)

KEY = jax.random.PRNGKey(0)


def abstract_init(module, shape, dtype=jnp.float32):
  """Variables as ShapeDtypeStructs: no FLOPs, so big networks stay cheap."""
  return jax.eval_shape(lambda: module.init(KEY, jnp.zeros(shape, dtype), train=False))


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def abstract_apply(module, shape, train=False, mutable=("batch_stats", "intermediates")):
  variables = abstract_init(module, shape)
  return jax.eval_shape(lambda v: module.apply(v, jnp.zeros(shape), train=train, mutable=list(mutable)), variables)


SMALL_KWARGS = {"convnet": {}, "smallcnn": {"pool": "mean"}, "resnet18": {"num_filters": 8}, "resnet34": {"num_filters": 8},
                "resnet50": {"num_filters": 8}, "resnet12": {"widths": (8, 16, 24, 32)}, "mlp": {"hidden_sizes": (32, 16)}}
# `records` (DCCN) takes [B, S + T*F] records, not images: tests/models/test_records.py covers it.
IMAGE_ENCODERS = sorted(set(ENCODERS) - {"records"})


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 32, 32, 3)])
def test_encoder_output_shape_matches_features_dim(name, shape):
  for kwargs in ({}, SMALL_KWARGS[name]):  # defaults and a non-default width
    encoder = build_encoder(name, **kwargs)
    out, _ = abstract_apply(encoder, shape)
    assert out.shape == (2, encoder_features_dim(name, **kwargs))
    assert out.dtype == jnp.float32


def test_default_features_dims():
  dims = {name: encoder_features_dim(name) for name in ENCODERS}
  assert dims == {"convnet": 128, "smallcnn": 128, "resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet12": 640, "mlp": 512,
                  "records": 128}


def test_convnet_runs_and_is_finite():
  encoder = ConvNet()
  x = jax.random.normal(KEY, (4, 28, 28, 1))
  variables = encoder.init(KEY, x, train=False)
  out = encoder.apply(variables, x, train=False)
  assert out.shape == (4, 128) and np.isfinite(np.asarray(out)).all()


def test_convnet_flatten_keeps_the_map_whose_mean_is_the_pooled_output():
  x = jax.random.normal(KEY, (4, 28, 28, 1))
  variables = ConvNet().init(KEY, x, train=False)  # pooling has no parameters: both share them
  pooled = np.asarray(ConvNet().apply(variables, x, train=False))
  flat = np.asarray(ConvNet(pool="flatten").apply(variables, x, train=False))
  assert flat.shape == (4, 3 * 3 * 128)
  np.testing.assert_allclose(flat.reshape(4, 9, 128).mean(1), pooled, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="input size"):
    ConvNet(pool="flatten").features_dim


@pytest.mark.parametrize("stem,size,stem_size,final_size", [
    ("cifar", 32, 32, 4),  # stride 1 stem, then three stride-2 stages: 32 / 8
    ("imagenet", 64, 16, 2),  # 7x7/2 conv + 3x3/2 max-pool: 64 / 4, then / 8 more
    ("imagenet", 224, 56, 7),  # the classic ImageNet sizes
])
def test_resnet_stem_downsampling(stem, size, stem_size, final_size):
  _, state = abstract_apply(ResNet18(stem=stem), (1, size, size, 3))
  inter = state["intermediates"]
  assert inter["stem"][0].shape == (1, stem_size, stem_size, 64)
  assert inter["feature_map"][0].shape == (1, final_size, final_size, 512)


def test_resnet_stem_padding_two_grows_the_map_as_falcons_cifar_stem():
  # PyTorch Conv2d(3, 64, k=3, s=1, padding=2) on 32 px: (32 + 4 - 3) + 1 = 34 px.
  _, state = abstract_apply(ResNet18(stem="cifar", stem_padding=2), (1, 32, 32, 3))
  assert state["intermediates"]["stem"][0].shape == (1, 34, 34, 64)
  assert state["intermediates"]["feature_map"][0].shape == (1, 5, 5, 512)  # 34 -> 17 -> 9 -> 5


def test_resnet12_spatial_sizes():
  # 84 -> 42 -> 21 -> 10 -> 5 (pooling floors odd sizes, as PyTorch's MaxPool2d).
  _, state = jax.eval_shape(
      lambda: ResNet12().init_with_output(KEY, jnp.zeros((1, 84, 84, 3)), train=False,
                                          capture_intermediates=True))
  maps = {k: v["__call__"][0].shape for k, v in state["intermediates"].items() if k.startswith("block")}
  assert maps == {"block1": (1, 42, 42, 64), "block2": (1, 21, 21, 160), "block3": (1, 10, 10, 320),
                  "block4": (1, 5, 5, 640)}


def test_resnet18_cifar_parameter_count():
  encoder_params = abstract_init(ResNet18(stem="cifar"), (1, 32, 32, 3))["params"]
  head_params = abstract_init(Classifier(10), (1, 512))["params"]
  assert count(encoder_params) == 11_168_832
  assert count(encoder_params) + count(head_params) == 11_173_962


def test_resnet50_imagenet_parameter_count():
  assert count(abstract_init(ResNet50(stem="imagenet"), (1, 64, 64, 3))["params"]) == 23_508_032


def test_resnet34_imagenet_parameter_count():
  # torchvision's resnet34 has 21,797,672 parameters, 513,000 of them in fc (512 x 1000 + 1000).
  assert count(abstract_init(ResNet34(stem="imagenet"), (1, 64, 64, 3))["params"]) == 21_797_672 - 513_000


def test_smallcnn_parameter_count():
  """139,168 for one input channel: five bias-free 3x3 convs and their BatchNorms (scale and bias)."""
  widths = (1, 32, 32, 64, 64, 128)
  by_hand = sum(9 * a * b + 2 * b for a, b in zip(widths[:-1], widths[1:]))
  variables = abstract_init(SmallCNN(), (1, 28, 28, 1))
  assert count(variables["params"]) == by_hand == 139_168
  assert count(variables["batch_stats"]) == 2 * sum(widths[1:])


def _conv3x3_numpy(x, kernel):
  """[B, H, W, C] x [3, 3, C, O] -> [B, H, W, O]: zero padding 1, stride 1, as a sum of shifted products."""
  b, h, w, _ = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(padded[:, i:i + h, j:j + w] @ kernel[i, j] for i in range(3) for j in range(3))


def test_smallcnn_eval_forward_against_numpy():
  """Random weights and BatchNorm statistics; the layout written out in numpy (conv-BN-ReLU x 5, 2x2
  max-pools after the second and fourth, mean pool) gives the same 128 features in eval mode."""
  rng = np.random.default_rng(0)
  model = SmallCNN()
  x = rng.normal(size=(2, 12, 12, 1)).astype(np.float32)
  variables = jax.tree_util.tree_map(np.asarray, model.init(jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 1)),
                                                            train=False))
  params, stats = variables["params"], variables["batch_stats"]
  for name in stats:  # non-trivial statistics and affine parameters
    stats[name]["mean"] = rng.normal(0, 0.5, stats[name]["mean"].shape).astype(np.float32)
    stats[name]["var"] = rng.uniform(0.5, 2.0, stats[name]["var"].shape).astype(np.float32)
    params[name]["scale"] = rng.uniform(0.5, 1.5, params[name]["scale"].shape).astype(np.float32)
    params[name]["bias"] = rng.normal(0, 0.2, params[name]["bias"].shape).astype(np.float32)
  got = np.asarray(model.apply({"params": params, "batch_stats": stats}, x, train=False))
  h = x.astype(np.float64)
  for i in range(5):
    conv, bn = params[f"Conv_{i}"]["kernel"], f"BatchNorm_{i}"
    h = _conv3x3_numpy(h, conv.astype(np.float64))
    h = (h - stats[bn]["mean"]) / np.sqrt(stats[bn]["var"] + 1e-5) * params[bn]["scale"] + params[bn]["bias"]
    h = np.maximum(h, 0)
    if i in (1, 3):
      b, hh, ww, c = h.shape
      h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))
  np.testing.assert_allclose(got, h.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
  flat = SmallCNN(pool="flatten").apply({"params": params, "batch_stats": stats}, x, train=False)
  assert flat.shape == (2, 3 * 3 * 128)


def test_smallcnn_init_is_kaiming_normal_fan_out():
  """torch.nn.init.kaiming_normal_(mode='fan_out', nonlinearity='relu'): std sqrt(2 / (9 * out)); BN 1 and 0."""
  params = SmallCNN().init(jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1)), train=False)["params"]
  kernel = np.asarray(params["Conv_4"]["kernel"])  # 64 -> 128: 73,728 weights
  assert kernel.std() == pytest.approx(np.sqrt(2 / (9 * 128)), rel=0.02)
  assert abs(kernel.mean()) < 0.05 * kernel.std()
  np.testing.assert_array_equal(params["BatchNorm_4"]["scale"], 1.0)
  np.testing.assert_array_equal(params["BatchNorm_4"]["bias"], 0.0)


def test_resnet12_parameter_count_by_hand():
  def block(cin, cout):
    convs = 9 * cin * cout + 2 * 9 * cout * cout + cin * cout  # three 3x3 convs + 1x1 shortcut, no bias
    return convs + 4 * 2 * cout  # four BatchNorms with scale and bias
  widths = (3, 64, 160, 320, 640)
  expected = sum(block(a, b) for a, b in zip(widths[:-1], widths[1:]))
  variables = abstract_init(ResNet12(), (1, 32, 32, 3))
  assert count(variables["params"]) == expected
  # Running mean and variance for every BN channel.
  assert count(variables["batch_stats"]) == sum(4 * 2 * w for w in widths[1:])


def test_zero_init_residual_makes_blocks_identity():
  block = BasicBlock(features=8, zero_init_residual=True)
  x = jax.random.normal(KEY, (2, 6, 6, 8))
  variables = block.init(KEY, x, train=False)
  np.testing.assert_array_equal(variables["params"]["BatchNorm_1"]["scale"], 0.0)
  np.testing.assert_allclose(block.apply(variables, x, train=False), jax.nn.relu(x), atol=1e-6)
  default = BasicBlock(features=8).init(KEY, x, train=False)
  np.testing.assert_array_equal(default["params"]["BatchNorm_1"]["scale"], 1.0)


def test_strided_conv_pads_like_pytorch():
  # A stride-2 3x3 conv on an even input must pad 1 on every side (PyTorch), not (0, 1) as 'SAME' does.
  block = BasicBlock(features=4, stride=2)
  x = np.random.default_rng(4).normal(size=(1, 6, 6, 3)).astype(np.float32)
  variables = block.init(KEY, x, train=False)
  _, state = block.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
  out = np.asarray(state["intermediates"]["Conv_0"]["__call__"][0])
  kernel = np.asarray(variables["params"]["Conv_0"]["kernel"])  # [3, 3, Cin, Cout]
  xp = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
  expected = np.stack([np.stack([np.einsum("hwc,hwco->o", xp[2 * i:2 * i + 3, 2 * j:2 * j + 3], kernel)
                                 for j in range(3)]) for i in range(3)])
  np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-5)


def test_space_to_depth_and_max_pool_against_references():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  out = np.asarray(space_to_depth(jnp.asarray(x)))
  assert out.shape == (2, 2, 3, 12)
  for di in range(2):
    for dj in range(2):
      np.testing.assert_array_equal(out[..., (2 * di + dj) * 3:(2 * di + dj + 1) * 3], x[:, di::2, dj::2])
  y = jax.random.normal(KEY, (2, 7, 7, 5))  # odd size: floors like VALID pooling
  np.testing.assert_array_equal(max_pool_2x2(y), nn.max_pool(y, (2, 2), strides=(2, 2)))



@pytest.mark.parametrize("shape", [(2, 7, 7, 5), (2, 8, 6, 3)])
def test_max_pool_gradient_against_reduce_window(shape):
  """Each window's gradient goes to its max, as `nn.max_pool`'s select-and-scatter; odd rows and columns get 0."""
  x = jax.random.normal(KEY, shape)  # no ties
  weights = jax.random.normal(jax.random.PRNGKey(1), (shape[0], shape[1] // 2, shape[2] // 2, shape[3]))
  grad = jax.grad(lambda x: jnp.sum(weights * max_pool_2x2(x)))(x)
  expected = jax.grad(lambda x: jnp.sum(weights * nn.max_pool(x, (2, 2), strides=(2, 2))))(x)
  np.testing.assert_array_equal(grad, expected)


def test_convnet_gradient_is_finite_after_a_train_mode_batchnorm_on_an_odd_map():
  """The 7x7 map of a 28-px image's second stage, pooled after a train-mode BatchNorm: with JAX's rule for max
  (divide by the count of entries equal to the max) XLA:CPU recomputed those entries with other rounding and found
  none in some windows, 0/0 = NaN (FALCON's Fashion-MNIST recipe, under tests/conftest.py's unoptimised compiles)."""
  encoder = ConvNet(widths=(4, 64, 4))
  x = jax.random.normal(KEY, (2, 28, 28, 1))
  variables = encoder.init(KEY, x, train=False)

  def loss(params):
    out, _ = encoder.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(out)

  _, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.isfinite(grad).all(), jax.tree_util.keystr(path)


def test_batchnorm_train_mode_normalises_and_updates_stats():
  encoder = ConvNet(widths=(8, 16))
  x = 3.0 + 2.0 * jax.random.normal(KEY, (16, 28, 28, 1))
  variables = encoder.init(KEY, x, train=False)
  _, state = encoder.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"],
                           capture_intermediates=lambda m, _: isinstance(m, (nn.Conv, nn.BatchNorm)))
  conv_out = np.asarray(state["intermediates"]["Conv_0"]["__call__"][0], np.float64)
  bn_out = np.asarray(state["intermediates"]["BatchNorm_0"]["__call__"][0], np.float64)
  # At init scale = 1 and bias = 0, so the BN output itself is the normalised input.
  np.testing.assert_allclose(bn_out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(bn_out.var(axis=(0, 1, 2)), 1.0, rtol=1e-3)
  # Running stats follow PyTorch's momentum 0.1 from mean 0 / var 1 (Flax keeps the biased variance).
  stats = state["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * conv_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * conv_out.var(axis=(0, 1, 2)), rtol=1e-4)


def test_batchnorm_eval_mode_is_frozen_and_per_example():
  encoder = ConvNet(widths=(8, 16))
  x = jax.random.normal(KEY, (8, 28, 28, 1))
  variables = encoder.init(KEY, x, train=False)
  # Non-trivial running statistics, so eval really uses them.
  _, updated = encoder.apply(variables, 2.0 + x, train=True, mutable=["batch_stats"])
  variables = {"params": variables["params"], **updated}
  out, state = encoder.apply(variables, x, train=False, mutable=["batch_stats"])
  for a, b in zip(jax.tree.leaves(state["batch_stats"]), jax.tree.leaves(variables["batch_stats"])):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(out, encoder.apply(variables, x, train=False))
  # No batch statistics in eval mode: an example's output does not depend on its batch.
  np.testing.assert_allclose(encoder.apply(variables, x[:1], train=False), out[:1], rtol=1e-5, atol=1e-6)
  train_out, _ = encoder.apply(variables, x, train=True, mutable=["batch_stats"])
  assert not np.allclose(train_out, out, atol=1e-3)


def test_embedder_fc_against_numpy():
  x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
  embedder = Embedder(kind="fc", dim=7)
  params = embedder.init(KEY, x, train=False)["params"]
  expected = x @ np.asarray(params["fc"]["kernel"]) + np.asarray(params["fc"]["bias"])
  np.testing.assert_allclose(embedder.apply({"params": params}, x, train=False), expected, rtol=1e-5, atol=1e-5)


def test_embedder_mlp_against_numpy():
  x = np.random.default_rng(1).normal(size=(5, 12)).astype(np.float32)
  embedder = Embedder(kind="mlp", dim=7)
  params = embedder.init(KEY, x, train=False)["params"]
  w1, b1 = np.asarray(params["fc1"]["kernel"]), np.asarray(params["fc1"]["bias"])
  w2, b2 = np.asarray(params["fc2"]["kernel"]), np.asarray(params["fc2"]["bias"])
  assert w1.shape == (12, 12) and w2.shape == (12, 7)  # hidden defaults to the input dim (D-D-e)
  expected = np.maximum(x @ w1 + b1, 0.0) @ w2 + b2
  np.testing.assert_allclose(embedder.apply({"params": params}, x, train=False), expected, rtol=1e-5, atol=1e-5)
  hidden = Embedder(kind="mlp", dim=7, hidden=20).init(KEY, x, train=False)["params"]
  assert hidden["fc1"]["kernel"].shape == (12, 20)
  with pytest.raises(ValueError, match="Unknown embedder kind"):
    Embedder(kind="nope").init(KEY, x, train=False)


def test_classifier_is_linear():
  x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
  params = Classifier(4, use_bias=False).init(KEY, x, train=False)["params"]
  assert set(params["fc"]) == {"kernel"}
  np.testing.assert_allclose(Classifier(4, use_bias=False).apply({"params": params}, x, train=False),
                             x @ np.asarray(params["fc"]["kernel"]), rtol=1e-5, atol=1e-5)


def test_mlp_encoder_against_numpy():
  x = np.random.default_rng(3).normal(size=(6, 4, 5)).astype(np.float32)  # flattened to [6, 20]
  encoder = MLP(hidden_sizes=(16, 8), use_bn=False)
  variables = encoder.init(KEY, x, train=False)
  assert "batch_stats" not in variables
  h = x.reshape(6, 20)
  for name in ("Dense_0", "Dense_1"):
    p = variables["params"][name]
    h = np.maximum(h @ np.asarray(p["kernel"]) + np.asarray(p["bias"]), 0.0)
  np.testing.assert_allclose(encoder.apply(variables, x, train=False), h, rtol=1e-5, atol=1e-5)
  with_bn = MLP(hidden_sizes=(16, 8)).init(KEY, x, train=False)
  assert count(with_bn["batch_stats"]) == 2 * (16 + 8)


@pytest.mark.parametrize("module,shape", [
    (ConvNet(widths=(8, 16), dtype=jnp.bfloat16), (2, 28, 28, 1)),
    (ResNet(stage_sizes=(1, 1), num_filters=8, dtype=jnp.bfloat16), (2, 16, 16, 3)),
    (ResNet12(widths=(8, 8, 8, 8), dtype=jnp.bfloat16), (2, 16, 16, 3)),
    (MLP(hidden_sizes=(8,), dtype=jnp.bfloat16), (2, 10)),
    (Embedder(kind="mlp", dim=4, dtype=jnp.bfloat16), (2, 10)),
    (Classifier(3, dtype=jnp.bfloat16), (2, 10)),
])
def test_bfloat16_computes_in_bf16_with_float32_params_and_outputs(module, shape):
  x = jax.random.normal(KEY, shape)
  variables = module.init(KEY, x, train=False)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
  out, state = module.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
  assert out.dtype == jnp.float32 and np.isfinite(np.asarray(out)).all()
  dense_like = [v["__call__"][0] for k, v in state["intermediates"].items() if k.startswith(("Conv", "Dense", "fc"))]
  dense_like += [leaf for k, v in state["intermediates"].items() if k.startswith(("block", "stage"))
                 for leaf in jax.tree.leaves(v)]
  assert dense_like and all(a.dtype == jnp.bfloat16 for a in dense_like)


def test_build_encoder_forwards_kwargs_and_rejects_unknown_names():
  assert build_encoder("resnet18", stem="imagenet").stem == "imagenet"
  assert isinstance(build_encoder("resnet12"), ResNet12)
  with pytest.raises(ValueError, match=r"Unknown encoder 'vgg'; choose one of \['convnet', 'mlp', "):
    build_encoder("vgg")
  with pytest.raises(ValueError, match="Unknown encoder"):
    encoder_features_dim("vgg")
  assert set(models.ENCODERS) == {"convnet", "resnet18", "resnet34", "resnet50", "resnet12", "mlp", "records",
                                  "smallcnn"}
