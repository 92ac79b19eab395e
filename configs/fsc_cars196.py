r"""F-SC (or a comparison head) on Cars-196, trained and scored on the 196 car models.

See docs/methods/fsc.md#paper-datasets.

  python -m coarse2fine.main --config=configs/fsc_cars196.py --workdir=workdirs/fsc_cars196
  python -m coarse2fine.main --config=configs/fsc_cars196.py:softmax --workdir=workdirs/softmax_cars196

The argument is the head: fsc (default), softmax, centre or softtriple. Data: tfds cars196 (8,144 train /
8,041 test images) resized to 224 px, as for `maskcon_cars196.py` (see `coarse2fine.data.datasets.cars196` to build
it; `--config.data.dir=` the tfds folder). The coarse level is MaskCon's `cars196_8` body types; it plays no
part in training on the models. Scores: top-1 over the 196 models and Recall@{1, 2, 4, 8} of the backbone
features on the test split. Recipe and deviations (ImageNet initial weights, our epochs and batch):
`coarse2fine.methods.fsc.recipes.fsc_paper`. Paper top-1 (Table 2): SoftMax 89.96, Center loss 89.85, SoftTriple
91.56, F-SC 92.28 (ImageNet-pretrained).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.fsc.recipes import fsc_paper


def get_config(arg: str = "fsc"):
  config = fsc_paper(base_config(), arg, retrieval=True)
  config.data.name = "cars196"
  config.data.taxonomy = "cars196_8"
  return config
