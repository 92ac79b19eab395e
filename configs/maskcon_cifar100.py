r"""MaskCon (or a member of its family) on CIFAR-100 with the 20 super-classes (docs/methods/maskcon.md#paper-settings).

  python -m coarse2fine.main --config=configs/maskcon_cifar100.py --workdir=workdirs/maskcon_cifar100
  python -m coarse2fine.main --config=configs/maskcon_cifar100.py:grafit --workdir=workdirs/grafit_cifar100

The argument is the family member (maskcon, selfcon, grafit, supcon, coins, supce, supfine),
each at the paper's best w on CIFAR-100: MaskCon (w 1, T2 0.05), Grafit 0.8, CoIns 0.5.
Recipe and deviations: `coarse2fine/methods/maskcon/recipes.py`. Paper R@1 (Table 3): MaskCon 65.52,
Grafit 60.57, SupCon 58.65, CoIns 60.10, SupCE 47.25, SelfCon 40.50, SupFINE 71.13.
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.maskcon.recipes import maskcon_paper


def get_config(arg: str = "maskcon"):
  config = maskcon_paper(base_config(), arg, best_w={"maskcon": 1.0, "grafit": 0.8, "coins": 0.5},
                         datasets_stem="cifar", t2=0.05, views=("autoaugment", "weak"))
  config.data.name = "cifar100"
  config.data.taxonomy = "cifar100"
  return config
