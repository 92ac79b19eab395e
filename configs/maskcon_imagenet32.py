r"""MaskCon (or a member of its family) on ImageNet32 with MaskCon's 12 coarse groups (docs/datasets.md#imagenet32).

  python -m coarse2fine.main --config=configs/maskcon_imagenet32.py --workdir=workdirs/maskcon_in32 \
      --config.data.taxonomy=/path/to/imagenet_fine_to_coarse.json

The 12 groups come from the MaskCon repository's `coarse_labels/imagenet32/imagenet_fine_to_coarse.json`,
which must be passed as `data.taxonomy` (see coarse2fine/data/datasets/imagenet32.py); images through
tfds `imagenet_resized/32x32`. The argument is the family member (Grafit 0.8 and CoIns 0.5 are
CIFAR-100's best w: the paper gives none for ImageNet32). ImageNet32 settings from the
paper: 100 epochs of batch 256; MaskCon w 1, T2 .05 (the README's example uses a queue of
16384; the default 8192 is kept). Recipe and deviations: `coarse2fine/methods/maskcon/recipes.py`. Paper
R@1 (Table 4): MaskCon 19.08, Grafit 18.13, CoIns 18.36, SelfCon 10.28, SupFINE 33.97.
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.maskcon.recipes import maskcon_paper


def get_config(arg: str = "maskcon"):
  config = maskcon_paper(base_config(), arg, best_w={"maskcon": 1.0, "grafit": 0.8, "coins": 0.5},
                         datasets_stem="cifar", t2=0.05, views=("autoaugment", "weak"))
  config.data.name = "imagenet32"
  config.data.taxonomy = ""  # required: MaskCon's imagenet_fine_to_coarse.json
  config.train.num_epochs = 100
  config.train.batch_size = 256
  return config
