r"""FALCON below Fashion-MNIST's labels: its 10 classes are the coarse ones, 25 sub-classes to discover.

FALCON's paper, section 5: fine classes used as coarse ones, with more classes to find beneath them
(docs/methods/falcon.md#sub-classes). Sized for a 2-core CPU (a few minutes):

  python -m coarse2fine.main --config=configs/falcon_subclasses_fashion_mnist.py --workdir=workdirs/falcon_sub
  python -m coarse2fine.plot --workdir=workdirs/falcon_sub --max_rows=25   # plots/clusters.png: all 25

Taxonomy `fmnist10` makes each class its own coarse class; Fashion-MNIST has no finer labels, so
`data.hide_fine_labels` marks every fine label unknown and the run is scored on what needs none:
coarse accuracy (`test/coarse_top1`). The discovered classes are judged by eye from the image grid, and
their parents (relation M: 25 x 10) are in the checkpoint and plots/relation.png. K = 25 leaves the relation
solver to choose which classes get 2 sub-classes and which get 3.

The recipe is configs/falcon_fashion_mnist.py's (`recipes.falcon_fashion_mnist`: 10 epochs on a fixed 20k-image
subset, neighbours mined within each coarse class on raw pixels, random init, 40 warm-up steps).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.falcon.recipes import falcon_fashion_mnist

NUM_SUBCLASSES = 25  # 2-3 under each of the 10 classes


def get_config():
  config = falcon_fashion_mnist(base_config())
  config.data.taxonomy = "fmnist10"
  config.data.hide_fine_labels = True
  config.falcon.num_fine = NUM_SUBCLASSES
  # No fine labels: the clusters, kmeans, retrieval and few-shot protocols have nothing to score against.
  config.eval.protocols = ("classification",)
  return config
