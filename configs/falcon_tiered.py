r"""FALCON on tieredImageNet (the union hierarchy) with the paper's hyper-parameters.

The settings are listed in docs/methods/falcon.md#paper-settings; the data in
docs/datasets.md#union-hierarchy-falcon.

  python -m coarse2fine.main --config=configs/falcon_tiered.py --workdir=workdirs/falcon_tiered \
      --config.data.dir=/data/tiered_union --config.falcon.neighbour_features=checkpoint:workdirs/<a pretrained run>

Data (coarse2fine/data/datasets/tiered_union.py): the union of the three tieredImageNet hierarchies,
34 coarse and 608 fine classes, on full-size ImageNet-1k; data.dir holds
hierarchies/{train,val,test}.csv and either ImageNet's train/<wnid>/ and val/<wnid>/ folders or
nothing more (tfds imagenet2012 is read). train = the ~779K ImageNet-train images of the 608
classes, test = their ~30.4K ImageNet-val images (FALCON's val = test).
ResNet-50, global batch 2048 (4 GPUs in the paper), SGD lr 0.1 (momentum 0.9, no weight decay),
cosine with warm restarts every 30 epochs down to 1e-3, 90 epochs; lambda 0.5 / 0.5 / 5, T 0.9,
EMA 0.99, 20 neighbours (5 used), beta 5e-5, a solve every 20 steps (solver time limit 120 s),
soft labels over 30 epochs. View 0 is the strong augmentation, view 1 the deterministic centre
crop (the images are already Resize(256) + CenterCrop(224)). The paper initialises from MoCo v3
(r-50-1000ep), which this config loads (model.init_from; docs/pretrained.md says where the file goes), and
mines neighbours with it: pass a pretrained run's workdir in
`falcon.neighbour_features=checkpoint:<workdir>`. The official code all-gathers the entropy
term's predictions without gradient, so on R GPUs its lambda3 acts as lambda3 / R; this library
computes the exact global-batch gradient (set lambda3 / 4 to copy the 4-GPU run).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.falcon.recipes import falcon_imagenet


def get_config():
  config = falcon_imagenet(base_config())
  config.seed = 0
  config.data.name = "tiered_union"
  config.train.num_epochs = 90
  config.train.batch_size = 2048
  config.falcon.lambda_entropy = 5.0
  config.falcon.beta = 5e-5
  config.falcon.solver_time_limit = 120.0  # for the milp and gurobi backends; the exact solver needs none
  return config
