r"""SCGM on tieredImageNet with the paper's hyper-parameters (Table 5).

The settings are listed in docs/methods/scgm.md#paper-settings; the data in
docs/datasets.md#few-shot-version-scgm.

  python -m coarse2fine.main --config=configs/scgm_tiered.py --workdir=workdirs/scgm_tiered \
      --config.data.dir=/data/tiered-imagenet

`get_config("a")` selects SCGM-A. Training sees the 20 train super-classes' coarse labels;
few-shot episodes (5-way 1- and 5-shot, all-way 1-shot) use the 160 fine classes of the 8
unseen test super-classes (`data.variant="val"` evaluates on the validation classes for
model selection). ResNet-12 at 84 px, batch 512, SGD lr 0.12, momentum 0.9, weight decay
1e-4, 200 epochs of cosine with warm restarts every 20, E-step every 5 epochs, r = 100.
"""

from coarse2fine.config_base import base_config


def get_config(arg: str = "g"):
  if arg not in ("g", "a"):
    raise ValueError(f"scgm_tiered.py takes 'g' or 'a', got {arg!r}.")
  config = base_config()
  config.method = f"scgm_{arg}"
  config.seed = 0
  config.data.name = "tiered_imagenet"
  config.data.views = ("strong", "strong") if arg == "a" else ("strong",)  # RRC(84, .2-1), jitter, grey, flip
  config.data.augment.min_scale = 0.2
  config.data.augment.blur_p = 0.0  # the tiered transform has no blur
  config.data.num_workers = 16
  config.model.encoder = "resnet12"
  config.model.encoder_args.drop_rate = 0.1  # DropBlock in blocks 3-4 (RFS ResNet-12)
  config.model.encoder_args.dropblock_size = 5  # 84 px
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
  config.train.batch_size = 512
  config.scgm.num_subclasses = 100
  config.scgm.sigma2 = 0.1
  config.scgm.gamma = 0.5
  config.scgm.lam = 25.0
  config.scgm.estep_every_epochs = 5
  config.contrast.queue_size = 65536
  config.contrast.momentum = 0.999
  config.contrast.temperature = 0.2
  config.eval.batch_size = 1024
  # Test super-classes are unseen in training: coarse accuracy and the learned relation mean nothing there.
  config.eval.protocols = ("fewshot",)
  config.eval.fewshot_settings = ("5way", "allway")
  config.eval.fewshot_shots = (1, 5)
  config.eval.fewshot_augment = "crop_flip"  # reference: RandomCrop(84, pad 8) + flip of the support copies
  config.data.augment.padding = 8
  return config
