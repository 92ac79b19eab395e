r"""FALCON on PBMC cells (scanpy's 700-cell 10x PBMC 68k file): discover 10 cell types from 5 lineages.

  pip install -e ".[singlecell]" && python -m coarse2fine.data.datasets.pbmc   # once: the h5ad out of the scanpy wheel
  python -m coarse2fine.main --config=configs/falcon_pbmc.py --workdir=workdirs/falcon_pbmc

(The fetch puts the file in ~/.cache/coarse2fine/pbmc; `data.path`, `data.dir`,
`$C2F_DATA_DIR/pbmc/` or an installed scanpy work too, see coarse2fine/data/datasets/pbmc.py.) FALCON's PBMC
hyper-parameters (docs/methods/falcon.md#paper-settings): an MLP genes-64-64-64-64 with ReLU after
every layer and no BatchNorm, then a linear classifier over K = 10; SGD lr 0.1, momentum 0.9, no
weight decay, x0.1 at epochs 6 and 8 of 10; lambda1/2/3 = 0.5/0.5/0.5; beta = 0.005; soft labels
over the first 3 epochs; T = 0.9 and EMA 0.99; neighbours from the raw inputs; transductive
(evaluated on the training cells).

Adapted to 700 cells instead of 372K:
* batch 64, not 1024 (which is more than all the cells): 10 steps per epoch.
* solve_every 4, not 30: the paper's solves (after in-epoch steps 30, 60, ...) come ~12 times
  an epoch, each on 30 x 1024 cells (~8% of its data). Here they come after in-epoch steps 4
  and 8, twice an epoch, on 320 and 256 cells; solving more often would use ~130 cells, few
  for the smallest types (8 and 13 cells).
* 12 within-lineage neighbours mined, 5 used (paper: 20, 5): the progenitor lineage (CD34+)
  has 13 cells, and mining excludes the cell itself.
Runs in about a minute on a 2-core CPU.
"""

from coarse2fine.config_base import base_config


def get_config():
  config = base_config()
  config.method = "falcon"
  config.seed = 0
  config.data.name = "pbmc"
  config.data.taxonomy = "pbmc_lineages"  # T / NK / B / myeloid / progenitor; or a .json/.csv file
  config.data.variant = ""  # "": X as stored (scaled log-normalised); "raw": raw.X
  config.data.path = ""  # the .h5ad; "" = data.dir, $C2F_DATA_DIR/pbmc, then an installed scanpy
  config.data.views = ("none", "none")  # no augmentation of cells (docs/datasets.md#pbmc-single-cells)
  config.model.encoder = "mlp"
  config.model.encoder_args.hidden_sizes = (64, 64, 64, 64)  # Linear + ReLU each, the last included
  config.model.encoder_args.use_bn = False  # FALCON's PBMC MLP has no BatchNorm
  config.model.embedder = "none"
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.schedule = "multistep"
  config.optimizer.decay_epochs = (6, 8)
  config.optimizer.decay_factor = 0.1
  config.train.num_epochs = 10
  config.train.batch_size = 64  # 10 steps an epoch over 700 cells (see the docstring)
  config.train.log_every_steps = 5
  falcon = config.falcon
  falcon.lambda_coarse, falcon.lambda_consistency, falcon.lambda_entropy = 0.5, 0.5, 0.5
  falcon.temperature = 0.9
  falcon.ema_decay = 0.99
  falcon.beta = 0.005
  falcon.solve_every = 4  # solves after in-epoch steps 4 and 8 (see the docstring)
  falcon.soft_label_epochs = 3
  falcon.neighbours = 12  # at most 12: the CD34+ progenitor lineage has 13 cells
  falcon.neighbours_used = 5
  falcon.neighbour_features = "inputs"
  config.eval.batch_size = 256
  config.eval.protocols = ("classification", "clusters", "kmeans")
  config.checkpoint.every_steps = 50
  return config
