r"""MoCo v3 pretraining of the Fashion-MNIST ConvNet, without labels (docs/methods/moco.md).

Sized for a 2-core CPU (a few minutes):

  python -m coarse2fine.main --config=configs/pretrain_fashion_mnist.py --workdir=workdirs/pretrain_fmnist

The encoder it trains lives at params["encoder"] and batch_stats["encoder"] of the run's
checkpoints, built from `config.model` like every method's; it is the default ConvNet of
`fashion_mnist_cpu` (widths 32-64-128, mean pool), whose parameters have the shapes of every
Fashion-MNIST config's encoder. configs/maskcon_fashion_mnist.py keeps the last map
(pool="flatten"), which has no parameters: the same weights load there, though they were
trained through the mean pool (`--config.model.encoder_args.pool=flatten` pretrains through
the flattened map instead).

Two `strong` views (crop of .2-1 of the area, flip, jitter, grayscale, blur) as in MoCo v3's
recipe; a small projector (512-128) and predictor (512-128) with BatchNorm; tau = 0.2, as
for the paper's smaller batches (ViT), since a batch of 256 has few negatives; m0 = 0.99 with
the cosine schedule to 1. Evaluated without labels in the loss: k-means discovery and
Recall@K on the fine labels of the test split, from the backbone features.
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu


def get_config():
  config = fashion_mnist_cpu(base_config())
  config.method = "moco_v3"
  config.seed = 0
  config.data.train_examples = 20000
  config.data.views = ("strong", "strong")  # two views, same distribution (x1, x2)
  config.model.embedder = "none"
  config.model.encoder_args.pool = "mean"  # the ConvNet's default; "flatten" pretrains MaskCon's layout (docstring)
  config.optimizer.lr = 0.1
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_epochs = 1
  config.train.num_epochs = 10
  config.train.batch_size = 256
  config.train.log_every_steps = 20
  moco = config.moco
  moco.temperature = 0.2
  moco.embedding_dim = 128
  moco.projector_hidden = 512
  moco.projector_layers = 2
  moco.predictor_hidden = 512
  moco.predictor_layers = 2
  moco.momentum = 0.99
  moco.momentum_schedule = "cosine"
  config.eval.features = "features"
  config.eval.protocols = ("kmeans", "retrieval")
  config.checkpoint.every_steps = 500
  return config
