r"""FALCON on BREEDS with the paper's hyper-parameters (Grcic et al., ICML 2024).

The settings are listed in docs/methods/falcon.md#paper-settings.

  python -m coarse2fine.main --config=configs/falcon_breeds.py:living17 --workdir=workdirs/falcon_living17 \
      --config.data.dir=/data/breeds --config.falcon.neighbour_features=checkpoint:workdirs/<a pretrained run>

`get_config("<dataset>")`: living17 (default), nonliving26, entity13, entity30 (the BREEDS
files and ImageNet as for configs/scgm_breeds.py). ResNet-50, global batch 1024 (2 GPUs in
the paper), SGD lr 0.1 (momentum 0.9, no weight decay), cosine with warm restarts every 30
epochs down to 1e-3, 60 epochs; lambda 0.5 / 0.5 / 2 (entity13/30: lambda3 = 3), T 0.9,
EMA 0.99, 20 neighbours (5 used), beta 0.1, a solve every 20 steps, soft labels over 30
epochs. View 0 is the strong augmentation, view 1 the deterministic centre crop (the images
are already Resize(256) + CenterCrop(224)). The paper initialises from MoCo v3 (r-50-1000ep), which this
config loads (model.init_from; docs/pretrained.md says where the file goes), and mines neighbours with it: pass a pretrained run's workdir in
`falcon.neighbour_features=checkpoint:<workdir>`. The official code all-gathers the entropy
term's predictions without gradient, so on R GPUs its lambda3 acts as lambda3 / R; this
library computes the exact global-batch gradient (set lambda3 / 2 to copy a 2-GPU run).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.falcon.recipes import falcon_imagenet

DATASETS = ("living17", "nonliving26", "entity13", "entity30")


def get_config(arg: str = "living17"):
  if arg not in DATASETS:
    raise ValueError(f"falcon_breeds.py takes one of {DATASETS}, got {arg!r}.")
  config = falcon_imagenet(base_config())
  config.seed = 0
  config.data.name = "breeds"
  config.data.variant = arg
  config.train.num_epochs = 60
  config.train.batch_size = 1024
  config.falcon.lambda_entropy = 3.0 if arg.startswith("entity") else 2.0
  config.falcon.beta = 0.1
  return config
