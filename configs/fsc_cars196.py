r"""F-SC (or a comparison head) on Cars-196, trained and scored on the 196 car models.

See docs/methods/fsc.md#paper-datasets.

  python -m coarse2fine.main --config=configs/fsc_cars196.py --workdir=workdirs/fsc_cars196
  python -m coarse2fine.main --config=configs/fsc_cars196.py:softmax --workdir=workdirs/softmax_cars196
  python -m coarse2fine.main --config=configs/fsc_cars196.py:retrieval --workdir=workdirs/fsc_cars196_zs

The argument is the head: fsc (default), softmax, centre or softtriple, optionally followed by `,retrieval`
(alone, `retrieval` keeps the fsc head).

Data: tfds cars196 (8,144 train / 8,041 test images) resized to 224 px, as for `maskcon_cars196.py` (see
`coarse2fine.data.datasets.cars196` to build it; `--config.data.dir=` the tfds folder). The coarse level is
MaskCon's `cars196_8` body types; it plays no part in training on the models. Scores: top-1 over the 196 models
and Recall@{1, 2, 4, 8} of the backbone features on the test split.

With `retrieval`: SoftTriple's zero-shot retrieval protocol, which F-SC's retrieval comparison follows. It trains
on every image of models 1-98 (8,054 images, train and test of the official split together) and scores
Recall@{1, 2, 4, 8} of the backbone features among the 8,131 images of models 99-196, each image a query against
all the others (data.split_protocol = "unseen_classes"; no top-1, as the classifier never saw those models).
Everything else is the recipe below; SoftTriple's own runs used BN-Inception and K = 10 centres
(docs/evaluation.md#zero-shot-retrieval-on-unseen-classes).

Recipe and deviations (ImageNet initial weights, our epochs and batch): `coarse2fine.methods.fsc.recipes.fsc_paper`.
Paper top-1 (Table 2): SoftMax 89.96, Center loss 89.85, SoftTriple 91.56, F-SC 92.28 (ImageNet-pretrained).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.fsc.recipes import fsc_paper, parse_argument, unseen_classes_retrieval


def get_config(arg: str = "fsc"):
  head, retrieval = parse_argument(arg, "fsc_cars196.py")
  config = fsc_paper(base_config(), head, retrieval=True)
  config.data.name = "cars196"
  config.data.taxonomy = "cars196_8"
  if retrieval:
    # SoftTriple's zero-shot protocol: train on the first half of the classes, Recall@{1, 2, 4, 8} among the
    # unseen second half (data.split_protocol = "unseen_classes"; eval.protocols = ("retrieval",), as top-1
    # cannot score classes the classifier never saw).
    unseen_classes_retrieval(config)
  return config
