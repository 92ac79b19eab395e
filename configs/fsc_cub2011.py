r"""F-SC (or a comparison head) on CUB-200-2011, trained and scored on the 200 species.

See docs/methods/fsc.md#paper-datasets.

  python -m coarse2fine.main --config=configs/fsc_cub2011.py --workdir=workdirs/fsc_cub2011
  python -m coarse2fine.main --config=configs/fsc_cub2011.py:softtriple --workdir=workdirs/softtriple_cub2011
  python -m coarse2fine.main --config=configs/fsc_cub2011.py:softtriple,retrieval --workdir=workdirs/st_cub_zs

The argument is the head: fsc (default), softmax, centre or softtriple, optionally followed by `,retrieval`
(alone, `retrieval` keeps the fsc head).

Data: tfds caltech_birds2011 (5,994 train / 5,794 test images) resized to 224 px; built with `tfds build
caltech_birds2011 --file_format=array_record` where data.caltech.edu can be reached, then `--config.data.dir=`
that folder (or $TFDS_DATA_DIR). The coarse level is `cub200_flat` (one class); it plays no part in training on
species. Scores: top-1 over the species and Recall@{1, 2, 4, 8} of the backbone features on the test split.

With `retrieval`: SoftTriple's zero-shot retrieval protocol, which F-SC's retrieval comparison follows. It trains
on every image of species 1-100 (5,864 images, train and test of the official split together) and scores
Recall@{1, 2, 4, 8} of the backbone features among the 5,924 images of species 101-200, each image a query
against all the others (data.split_protocol = "unseen_classes"; no top-1, as the classifier never saw those
species). Everything else is the recipe below; SoftTriple's own runs used BN-Inception and K = 10 centres
(docs/evaluation.md#zero-shot-retrieval-on-unseen-classes).

Recipe and deviations (ImageNet initial weights, our epochs and batch): `coarse2fine.methods.fsc.recipes.fsc_paper`.
Paper top-1 (Table 2): SoftMax 81.18, Center loss 81.23, SoftTriple 81.52, F-SC 82.45 (ImageNet-pretrained).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.fsc.recipes import fsc_paper, parse_argument, unseen_classes_retrieval


def get_config(arg: str = "fsc"):
  head, retrieval = parse_argument(arg, "fsc_cub2011.py")
  config = fsc_paper(base_config(), head, retrieval=True)
  config.data.name = "cub2011"
  config.data.taxonomy = "cub200_flat"
  if retrieval:
    # SoftTriple's zero-shot protocol: train on the first half of the classes, Recall@{1, 2, 4, 8} among the
    # unseen second half (data.split_protocol = "unseen_classes"; eval.protocols = ("retrieval",), as top-1
    # cannot score classes the classifier never saw).
    unseen_classes_retrieval(config)
  return config
