r"""Baseline `coarse_plus` on Fashion-MNIST: encoder -> MLP embedder (D-D-128) -> Linear(128, C), coarse labels.

Sized for a 2-core CPU (about 3-4 minutes):

  python -m coarse2fine.main --config=configs/coarse_plus_fashion_mnist.py --workdir=workdirs/coarse_plus_fmnist

The taxonomy is `fmnist3`; try --config.data.taxonomy=fmnist_seasons.
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu


def get_config():
  config = fashion_mnist_cpu(base_config())
  config.method = "coarse_plus"
  config.seed = 0
  config.model.embedder = "mlp"  # D-D-128 embedder before the classifier
  config.model.embedding_dim = 128
  # Evaluate without the embedder: better on validation (benchmarks/results/scgm_quality_select.md);
  # the SCGM paper reports Coarse+ with or without E, whichever is better.
  config.eval.features = "features"
  return config
