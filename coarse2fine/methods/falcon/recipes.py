"""FALCON's recipes which config files start from: its paper's full-size ImageNet benchmarks, and CPU-sized
Fashion-MNIST."""

from __future__ import annotations

import ml_collections

from coarse2fine.config_base import fashion_mnist_cpu


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


def falcon_fashion_mnist(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """FALCON on CPU-sized Fashion-MNIST (configs/falcon_fashion_mnist.py, falcon_subclasses_fashion_mnist.py).

  `fashion_mnist_cpu`'s ConvNet from random weights, two crop-flip views, SGD lr 0.1 without weight decay
  (cosine), 10 epochs of batch 256 on a fixed 20k-image subset; lambda 0.5 / 0.5 / 2.0, beta 0.1, a solve every
  20 steps, soft labels over 3 epochs, 40 warm-up steps; 20 neighbours (5 used) mined within each coarse class
  on the raw pixels. Config files then set the taxonomy, K and the protocols.
  """
  config = fashion_mnist_cpu(config)
  config.method = "falcon"
  config.seed = 0
  config.data.train_examples = 20000
  # online view, teacher view (docs/methods/falcon.md#views-and-neighbours, as CIFAR)
  config.data.views = ("crop_flip", "crop_flip")
  config.model.embedder = "none"
  config.optimizer.lr = 0.1
  config.optimizer.weight_decay = 0.0
  config.optimizer.schedule = "cosine"
  config.train.num_epochs = 10
  config.train.batch_size = 256
  config.train.log_every_steps = 20
  falcon = config.falcon
  falcon.lambda_coarse, falcon.lambda_consistency, falcon.lambda_entropy = 0.5, 0.5, 2.0
  falcon.beta = 0.1
  falcon.solve_every = 20
  falcon.soft_label_epochs = 3
  falcon.warmup_steps = 40  # chosen on validation (configs/falcon_fashion_mnist.py); 0 = official
  falcon.neighbours = 20
  falcon.neighbours_used = 5
  falcon.neighbour_features = "inputs"
  config.checkpoint.every_steps = 500
  return config
