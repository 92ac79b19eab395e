r"""MaskCon (or a member of its family) on CIFARtoy: CIFAR-10 without deer and frog, 2 coarse x 4 fine.

  python -m coarse2fine.main --config=configs/maskcon_cifartoy.py:good --workdir=workdirs/maskcon_toy_good
  python -m coarse2fine.main --config=configs/maskcon_cifartoy.py:bad,grafit --workdir=workdirs/grafit_toy_bad

The argument is `<split>[,<member>]`: split `good` (vehicles / animals) or `bad` (the
official code's mixed split, docs/datasets.md#cifartoy); member as in maskcon_cifar100.py, at the
paper's best w for that split: MaskCon (w 1, T2 0.05) on both, Grafit 0.5 (good) / 0.8
(bad), CoIns 0.8 on both. Recipe and deviations: `coarse2fine/methods/maskcon/recipes.py`. Paper R@1
(Table 1): MaskCon 90.28 (good) / 91.56 (bad); SupFINE 94.11.
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.maskcon.recipes import maskcon_paper

BEST_W = {"good": {"maskcon": 1.0, "grafit": 0.5, "coins": 0.8},
          "bad": {"maskcon": 1.0, "grafit": 0.8, "coins": 0.8}}


def get_config(arg: str = "good"):
  split, _, mode = arg.partition(",")
  if split not in BEST_W:
    raise ValueError(f"maskcon_cifartoy.py takes '<good|bad>[,<member>]', got {arg!r}.")
  config = maskcon_paper(base_config(), mode or "maskcon", best_w=BEST_W[split], datasets_stem="cifar", t2=0.05,
                         views=("autoaugment", "weak"))
  config.data.name = "cifar10"
  config.data.taxonomy = f"cifartoy_{split}"
  return config
