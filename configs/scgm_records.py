r"""SCGM-G on records with static features and a time series (the paper's dialysis case), generated.

  python -m coarse2fine.main --config=configs/scgm_records.py --workdir=workdirs/scgm_records

The dialysis data are private; `data.variant="synthetic"` generates patients whose windows
of w = 5 visits carry the coarse label (an event occurs) in the static features and one of
two event sub-types in the temporal pattern (coarse2fine/data/datasets/records.py). Your own records:
`--config.data.variant= --config.data.path=records.npz --config.data.taxonomy=taxonomy.csv`
(set `model.encoder_args.static_dim` / `series_features` to your widths). The encoder is
the dual-channel DCCN: an MLP over static features, an LSTM over the series, an MLP
combiner. Runs in about a minute on a 2-core CPU.
"""

from coarse2fine.config_base import base_config


def get_config():
  config = base_config()
  config.method = "scgm_g"
  config.seed = 0
  config.data.name = "records"
  config.data.variant = "synthetic"
  config.data.views = ("none",)  # records are used as they are
  config.data.records.synthetic.num_patients = 256
  config.model.encoder = "records"
  config.model.encoder_args.static_dim = 28
  config.model.encoder_args.series_features = 40
  config.model.embedder = "mlp"
  config.model.embedding_dim = 32
  config.optimizer.lr = 0.05
  config.optimizer.weight_decay = 1e-4
  config.train.num_epochs = 20
  config.train.batch_size = 64
  config.train.log_every_steps = 20
  config.scgm.num_subclasses = 8  # r: a few sub-classes per coarse class
  config.scgm.estep_every_epochs = 2
  config.eval.batch_size = 256
  config.eval.protocols = ("classification", "clusters", "kmeans", "fewshot")
  config.eval.fewshot_settings = ("allway", "intra")
  config.eval.fewshot_episodes = 200
  config.checkpoint.every_steps = 500
  return config
