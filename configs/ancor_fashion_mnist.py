r"""ANCOR on Fashion-MNIST (fmnist3), sized for a 2-core CPU (a few minutes).

  python -m coarse2fine.main --config=configs/ancor_fashion_mnist.py --workdir=workdirs/ancor_fmnist

Coarse cross-entropy plus momentum contrast within super-classes with angular
normalisation (SCGM paper's baseline; docs/methods/scgm.md#ancor-loss). `model.embedder="fc"` gives
ANCOR-fc.
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu


def get_config():
  config = fashion_mnist_cpu(base_config())
  config.method = "ancor"
  config.seed = 0
  config.data.views = ("crop_flip", "crop_flip")  # query and key views
  config.model.embedder = "mlp"  # ANCOR; "fc" = ANCOR-fc
  config.model.embedding_dim = 128
  config.contrast.queue_size = 4096  # keys per super-class
  config.contrast.momentum = 0.99
  config.contrast.temperature = 0.2
  config.eval.features = "features"  # encoder output: better than v on validation (scgm_quality_select.md)
  return config
