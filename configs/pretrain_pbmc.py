r"""MoCo v3 pretraining of FALCON's PBMC MLP on the 700 cells, without labels (docs/methods/moco.md).

  pip install -e ".[singlecell]" && python -m coarse2fine.data.datasets.pbmc   # once (see configs/falcon_pbmc.py)
  python -m coarse2fine.main --config=configs/pretrain_pbmc.py --workdir=workdirs/pretrain_pbmc

The encoder is configs/falcon_pbmc.py's (genes-64-64-64-64, ReLU, no BatchNorm), so its
checkpoint (params["encoder"]) fits that config. Cells have no crops: each view is the
standardised cell with 20% of its genes zeroed (set to the gene's mean) and N(0, 0.5^2)
noise added to every gene (the `mask_noise` vector view, docs/datasets.md). As in FALCON's
PBMC setting the evaluation reads the training cells (the test split is the train split).
Runs in under a minute on a 2-core CPU.
"""

from coarse2fine.config_base import base_config


def get_config():
  config = base_config()
  config.method = "moco_v3"
  config.seed = 0
  config.data.name = "pbmc"
  config.data.taxonomy = "pbmc_lineages"
  config.data.views = ("mask_noise", "mask_noise")
  config.data.augment.feature_mask_p = 0.2
  config.data.augment.feature_noise = 0.5
  config.model.encoder = "mlp"
  config.model.encoder_args.hidden_sizes = (64, 64, 64, 64)  # configs/falcon_pbmc.py's encoder
  config.model.encoder_args.use_bn = False
  config.model.embedder = "none"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 2
  config.train.num_epochs = 40
  config.train.batch_size = 64  # 10 steps an epoch over 700 cells
  config.train.log_every_steps = 20
  moco = config.moco
  moco.temperature = 0.2
  moco.embedding_dim = 32
  moco.projector_hidden = 128
  moco.projector_layers = 2
  moco.predictor_hidden = 128
  moco.predictor_layers = 2
  moco.momentum = 0.99
  moco.momentum_schedule = "cosine"
  config.eval.batch_size = 256
  config.eval.features = "features"
  config.eval.protocols = ("kmeans", "retrieval")
  config.checkpoint.every_steps = 100
  return config
