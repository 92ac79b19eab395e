"""MaskCon's recipe for its paper's benchmarks, which config files start from."""

from __future__ import annotations

import ml_collections

from coarse2fine.methods.maskcon.method import MODES


def maskcon_paper(config: ml_collections.ConfigDict, arg: str, best_w: dict, datasets_stem: str,
                  t2: float = 0.05, views=("autoaugment", "weak")) -> ml_collections.ConfigDict:
  """MaskCon's recipe for its paper's benchmarks; `arg` names the family member.

  The settings are listed in docs/methods/maskcon.md#paper-settings.

  ResNet-18 (CIFAR stem at 32 px, ImageNet stem at 224 px), projector 512-512-ReLU-256, queue
  8192, m = 0.99, T1 = 0.1, SGD lr 0.02, momentum 0.9, weight decay 5e-4, batch 128, 200
  epochs of per-step cosine after 5 warm-up epochs, seed 1228; query = strong view, key =
  weak view; Recall@{1, 2, 5, 10, 50, 100} on the test split from the backbone features.
  `best_w[mode]` is the paper's best w per member on that dataset (maskcon, grafit, coins);
  `t2` its best T2; `views` the (query, key) augmentation kinds of coarse2fine.data.augmentation.presets:
  ("autoaugment", "weak") for CIFAR and ImageNet32 (crop with area .2-1, flip and
  AutoAugment's CIFAR-10 policy; crop and flip), ("strong_perspective", "weak_perspective")
  for Cars196 and ("perspective", "weak_perspective") for SOP, as in the official code.

  Deviations the user should know: the official code starts from ImageNet-supervised torchvision
  weights (docs/methods/maskcon.md#departures-from-the-paper-and-the-official-code), and so does this
  recipe (model.init_from; a CIFAR stem keeps its random 3x3 conv). The augmentations are JAX
  re-implementations of torchvision's that run on the device (AutoAugment's ops checked against the
  Pillow ops torchvision applies to PIL images; the perspective warp and the Cars colour/blur ops
  against torchvision's definitions), so they match in distribution, not bit for bit; the Cars blur
  uses our `strong` preset's kernel (about 10% of the side, sigma .1-2).
  """
  if arg not in MODES:
    raise ValueError(f"MaskCon configs take a mode from {MODES}, got {arg!r}.")
  config.method = "maskcon"
  config.seed = 1228
  config.data.views = tuple(views)  # (query, key)
  config.data.augment.min_scale = 0.2  # both views crop .2-1 of the area
  config.data.num_workers = 8
  config.model.encoder = "resnet18"
  config.model.encoder_args.stem = datasets_stem
  # [C] starts from torchvision's ImageNet ResNet-18 (ResNet18_Weights.IMAGENET1K_V1, docs/pretrained.md); a
  # CIFAR stem has no 7x7 conv to take, so it keeps its random 3x3 conv (our reading of [C]).
  config.model.init_from = "torchvision:resnet18-f37072fd.pth"
  config.model.init_fresh = ("stem_conv",) if datasets_stem == "cifar" else ()
  config.model.embedder = "none"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.02
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 5
  config.train.num_epochs = 200
  config.train.batch_size = 128
  maskcon = config.maskcon
  maskcon.mode = arg
  maskcon.w = best_w.get(arg, 0.5)
  maskcon.t1 = 0.1
  maskcon.t2 = t2
  maskcon.queue_size = 8192
  maskcon.momentum = 0.99
  maskcon.embedding_dim = 256
  config.eval.features = "features"
  config.eval.protocols = ("retrieval",)
  config.eval.retrieval_ks = (1, 2, 5, 10, 50, 100)
  # every 10 epochs and the final model (docs/evaluation.md#differences-from-maskcons-code)
  config.eval.every_epochs = 10
  config.eval.batch_size = 500
  return config
