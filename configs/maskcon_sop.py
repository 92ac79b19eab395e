r"""MaskCon (or a member of its family) on Stanford Online Products with its 12 super-classes.

  python -m coarse2fine.main --config=configs/maskcon_sop.py:split1 --workdir=workdirs/maskcon_sop1 \
      --config.data.dir=/path/to/Stanford_Online_Products

The argument is `<split>[,<member>]`: `split1` (products with >= 8 images, train and test
products disjoint) or `split2` (products with 12 images, 10 train / 2 test each); see
coarse2fine/data/datasets/sop.py. Best settings from the paper: MaskCon (w .8, T2 .1) on split1 and
(w .5, T2 .05) on split2; Grafit .8 on both; CoIns .5 / .2. 224 px images (ImageNet stem).
Recipe and deviations: `coarse2fine/methods/maskcon/recipes.py`. Paper R@1 (Table 5): MaskCon 74.05
(split1) / 45.36 (split2).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.maskcon.recipes import maskcon_paper

SETTINGS = {"split1": ({"maskcon": 0.8, "grafit": 0.8, "coins": 0.5}, 0.1),
            "split2": ({"maskcon": 0.5, "grafit": 0.8, "coins": 0.2}, 0.05)}


def get_config(arg: str = "split1"):
  split, _, mode = arg.partition(",")
  if split not in SETTINGS:
    raise ValueError(f"maskcon_sop.py takes '<split1|split2>[,<member>]', got {arg!r}.")
  best_w, t2 = SETTINGS[split]
  config = maskcon_paper(base_config(), mode or "maskcon", best_w=best_w, datasets_stem="imagenet", t2=t2,
                         views=("perspective", "weak_perspective"))
  config.data.name = "sop"
  config.data.variant = split
  config.data.image_size = 224
  config.model.dtype = "bfloat16"
  return config
