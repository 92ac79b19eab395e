r"""SCGM on CIFAR-100 (20 super-classes) with the paper's hyper-parameters (Table 2).

The settings are listed in docs/methods/scgm.md#paper-settings.

  python -m coarse2fine.main --config=configs/scgm_cifar100.py --workdir=workdirs/scgm_cifar100
  python -m coarse2fine.main --config=configs/scgm_cifar100.py:a --workdir=workdirs/scgm_a_cifar100

`get_config("a")` selects SCGM-A. ResNet-12 (640-d, DropBlock) at 32 px, batch 1024, SGD lr
0.12, momentum 0.9, weight decay 1e-4, 200 epochs of cosine with warm restarts every 20,
E-step every 5 epochs, r = 100, gamma 0.5, sigma^2 0.1, lambda 25. Augmentation: random
resized crop (.2-1) and flip. Few-shot episodes on the test set.
"""

from coarse2fine.config_base import base_config


def get_config(arg: str = "g"):
  if arg not in ("g", "a"):
    raise ValueError(f"scgm_cifar100.py takes 'g' or 'a', got {arg!r}.")
  config = base_config()
  config.method = f"scgm_{arg}"
  config.seed = 0
  config.data.name = "cifar100"
  config.data.taxonomy = "cifar100"  # the official 20 super-classes
  config.data.views = ("weak", "weak") if arg == "a" else ("weak",)  # RandomResizedCrop(32, .2-1) + flip
  config.data.augment.min_scale = 0.2
  config.data.num_workers = 8
  config.model.encoder = "resnet12"
  config.model.encoder_args.drop_rate = 0.1  # DropBlock in blocks 3-4 (RFS ResNet-12)
  config.model.encoder_args.dropblock_size = 2  # 32 px
  config.model.embedder = "mlp"
  config.model.embedding_dim = 128
  config.model.dtype = "bfloat16"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.12
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine_restarts"
  config.optimizer.restart_epochs = 20
  config.train.num_epochs = 200
  config.train.batch_size = 1024
  config.scgm.num_subclasses = 100
  config.scgm.sigma2 = 0.1
  config.scgm.gamma = 0.5
  config.scgm.lam = 25.0
  config.scgm.estep_every_epochs = 5
  config.contrast.queue_size = 65536
  config.contrast.momentum = 0.99  # the paper's CIFAR setting for MoCo/ANCOR
  config.contrast.temperature = 0.2
  config.eval.batch_size = 1000
  config.eval.protocols = ("classification", "fewshot", "clusters")
  config.eval.fewshot_augment = "crop_flip"  # reference: RandomCrop(32, no padding) + flip
  config.data.augment.padding = 0
  return config
