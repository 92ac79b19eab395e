r"""MaskCon (or a member of its family) on Cars196 with 8 body-type coarse classes (docs/datasets.md#cars196).

  python -m coarse2fine.main --config=configs/maskcon_cars196.py --workdir=workdirs/maskcon_cars196

The argument is the family member, at the paper's best w on Cars196: MaskCon (w 1, T2 0.1),
Grafit 1, CoIns 1. 224 px images (ImageNet stem). Recipe and deviations:
`coarse2fine/methods/maskcon/recipes.py`. Paper R@1 (Table 6): MaskCon 45.53, Grafit 42.30, CoIns 42.77,
SelfCon 20.97, SupFINE 78.09 (with ImageNet-supervised initial weights).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.maskcon.recipes import maskcon_paper


def get_config(arg: str = "maskcon"):
  config = maskcon_paper(base_config(), arg, best_w={"maskcon": 1.0, "grafit": 1.0, "coins": 1.0},
                         datasets_stem="imagenet", t2=0.1,
                         views=("strong_perspective", "weak_perspective"))
  config.data.name = "cars196"
  config.data.taxonomy = "cars196_8"
  config.data.image_size = 224
  config.model.dtype = "bfloat16"
  return config
