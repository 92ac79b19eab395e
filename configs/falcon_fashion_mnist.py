r"""FALCON on Fashion-MNIST (fmnist3): discover the 10 fine classes and their coarse parents.

Sized for a 2-core CPU (a few minutes):

  python -m coarse2fine.main --config=configs/falcon_fashion_mnist.py --workdir=workdirs/falcon_fmnist
  python -m coarse2fine.main --config=configs/falcon_fashion_mnist.py:two --workdir=workdirs/falcon_fmnist_two

`get_config("two")` trains on two taxonomies at once (docs/methods/falcon.md#several-taxonomies): the first half of the
training images carries `fmnist3` labels, the second half `fmnist_seasons` labels; one
classifier, one inferred M per taxonomy (the test split is scored against fmnist3).

Neighbours are mined within each coarse class on the L2-normalised raw pixels (on 28x28
grey images these are good neighbours, and no second model is needed); the backbone
starts from random weights. The schedule is the PBMC one of docs/methods/falcon.md#paper-settings scaled
to a short run: 10 epochs on a fixed 20k-image subset, soft labels over the first 3 epochs.
One change from the official recipe, chosen on a validation split
(benchmarks/discovery_quality.py --stage=select): the first 40 steps train the neighbour
objective alone (`falcon.warmup_steps`), so that the first relation solves see clusters
rather than a random network; without it one validation seed in three kept the random
initial M's wrong class counts. `--config.falcon.warmup_steps=0` is the official recipe.
Results report `discovery/clusters_*` (Hungarian accuracy, ARI, NMI of the fine classifier
against the true fine labels; relation accuracy and GED of the inferred M).
"""

from coarse2fine.config_base import base_config
from coarse2fine.methods.falcon.recipes import falcon_fashion_mnist


def get_config(arg: str = ""):
  if arg not in ("", "two"):
    raise ValueError(f"falcon_fashion_mnist.py takes '' or 'two' (fmnist3 + fmnist_seasons), got {arg!r}.")
  config = falcon_fashion_mnist(base_config())  # the recipe described above
  if arg == "two":
    config.data.extra_taxonomies = ("fmnist_seasons",)
    config.data.taxonomy_assignment = "halves"
  config.eval.protocols = ("classification", "clusters", "kmeans")
  return config
