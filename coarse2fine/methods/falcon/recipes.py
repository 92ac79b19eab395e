"""FALCON's recipe for its paper's full-size ImageNet benchmarks, which config files start from."""

from __future__ import annotations

import ml_collections


def falcon_imagenet(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """FALCON's recipe on full-size ImageNet images (BREEDS, tieredImageNet).

  The settings are listed in docs/methods/falcon.md#paper-settings.

  ResNet-50 (ImageNet stem, bfloat16) whose online view is the strong augmentation and whose
  teacher and neighbours see the centre crop as loaded; SGD lr 0.1, momentum 0.9, no weight
  decay, cosine with warm restarts every 30 epochs down to 1e-3; lambda1 = lambda2 = 0.5,
  T 0.9, EMA 0.99, 20 neighbours mined (5 used), a solve every 20 steps, soft labels over 30
  epochs. Config files then set the dataset, epochs, batch, lambda3 and beta.
  """
  config.method = "falcon"
  config.data.views = ("strong", "none")
  config.data.augment.min_scale = 0.2
  config.data.num_workers = 16
  config.model.encoder = "resnet50"
  config.model.encoder_args.stem = "imagenet"
  config.model.init_from = "moco_v3:r-50-1000ep.pth.tar"  # MoCo v3's release ResNet-50 (docs/pretrained.md)
  config.model.embedder = "none"
  config.model.dtype = "bfloat16"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.schedule = "cosine_restarts"
  config.optimizer.restart_epochs = 30
  config.optimizer.min_lr = 1e-3
  config.train.log_every_steps = 50
  falcon = config.falcon
  falcon.lambda_coarse, falcon.lambda_consistency = 0.5, 0.5
  falcon.temperature = 0.9
  falcon.ema_decay = 0.99
  falcon.solve_every = 20
  falcon.soft_label_epochs = 30
  falcon.neighbours, falcon.neighbours_used = 20, 5
  config.eval.batch_size = 1024
  config.eval.protocols = ("classification", "clusters")
  config.checkpoint.every_steps = 1000
  return config
