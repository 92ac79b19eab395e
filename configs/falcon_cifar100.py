r"""FALCON on CIFAR-100 with the paper's hyper-parameters (Grcic et al., ICML 2024).

The settings are listed in docs/methods/falcon.md#paper-settings.

  python -m coarse2fine.main --config=configs/falcon_cifar100.py --workdir=workdirs/falcon_cifar100 \
      --config.falcon.neighbour_features=checkpoint:workdirs/<a pretrained run>
  python -m coarse2fine.main --config=configs/falcon_cifar100.py:cifar68 --workdir=...
  python -m coarse2fine.main --config=configs/falcon_cifar100.py:cifar_si --workdir=...
  python -m coarse2fine.main --config=configs/falcon_cifar100.py:t1t2 --workdir=...

`get_config("<dataset>")`: cifar100 (default; the official 20 super-classes, T1), cifar68
(32 fine classes removed), cifar_si (the imbalanced CIFAR-SI), or t1t2: two taxonomies at
once, even training indices with the official T1 labels and odd ones with FALCON's T2
(docs/methods/falcon.md#several-taxonomies,
docs/datasets.md#alternative-taxonomy-t2-falcon), one M each. ResNet-18 with the CIFAR
stem padded by 2, batch 256, SGD lr 0.1 (momentum 0.9, no weight decay) x0.1 at epochs 60
and 80 of 100; lambda 0.5 / 0.5 / 2, T 0.9, EMA 0.99, 20 neighbours mined (5 used), beta 0.1,
a solve every 20 steps, soft labels over 30 epochs. Both views are RandomResizedCrop(32,
.08-1) + flip. The paper starts from a MoCo v3 backbone, which this config loads (solo-learn's
CIFAR-100 checkpoint, model.init_from; docs/pretrained.md), and mines neighbours with it:
train one (or any run of this project) and pass its workdir as
`falcon.neighbour_features=checkpoint:<workdir>`; the default mines on raw pixels, which is
weaker on CIFAR. (The paper's note that beta was lowered for CIFAR68 is not in its code,
which keeps 0.1.)
"""

from coarse2fine.config_base import base_config

DATASETS = {"cifar100": ("cifar100", ""), "cifar68": ("cifar68", ""), "cifar_si": ("cifar100", "si"),
            "t1t2": ("cifar100_t1", "")}


def get_config(arg: str = "cifar100"):
  if arg not in DATASETS:
    raise ValueError(f"falcon_cifar100.py takes one of {sorted(DATASETS)}, got {arg!r}.")
  config = base_config()
  config.method = "falcon"
  config.seed = 0
  config.data.name = "cifar100"
  config.data.taxonomy, config.data.variant = DATASETS[arg]
  if arg == "t1t2":
    config.data.extra_taxonomies = ("cifar100_t2",)
    config.data.taxonomy_assignment = "parity"
  config.data.views = ("weak", "weak")  # RandomResizedCrop(32, .08-1) + flip, drawn twice
  config.data.augment.min_scale = 0.08
  config.data.num_workers = 8
  config.model.encoder = "resnet18"
  config.model.encoder_args.stem = "cifar"
  config.model.encoder_args.stem_padding = 2
  config.model.init_from = "moco_v3:mocov3_resnet18_cifar100.ckpt"  # solo-learn's MoCo v3 (docs/pretrained.md)
  config.model.embedder = "none"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.schedule = "multistep"
  config.optimizer.decay_epochs = (60, 80)
  config.optimizer.decay_factor = 0.1
  config.train.num_epochs = 100
  config.train.batch_size = 256
  config.train.log_every_steps = 100
  falcon = config.falcon
  falcon.lambda_coarse, falcon.lambda_consistency, falcon.lambda_entropy = 0.5, 0.5, 2.0
  falcon.temperature = 0.9
  falcon.ema_decay = 0.99
  falcon.beta = 0.1
  falcon.solve_every = 20
  falcon.soft_label_epochs = 30
  falcon.neighbours, falcon.neighbours_used = 20, 5
  config.eval.batch_size = 1000
  config.eval.protocols = ("classification", "clusters")
  config.checkpoint.every_steps = 2000
  return config
