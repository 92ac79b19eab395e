r"""SCGM-A on Fashion-MNIST (fmnist3), sized for a 2-core CPU (a few minutes).

  python -m coarse2fine.main --config=configs/scgm_a_fashion_mnist.py --workdir=workdirs/scgm_a_fmnist

SCGM-G's mixture plus a momentum key encoder, one queue of keys per super-class and the
angular InfoNCE (docs/methods/scgm.md#scgm-a-loss). Two independent crops of each image (query and
key); the reference code's detached means (`scgm.detach_means=True`: mu_z stays at its
initialisation) unless overridden. Queues are shorter than the paper's 65536 to suit
60k images and 6 epochs. As in `scgm_fashion_mnist.py`, one warm-up epoch precedes the
first E-step, which then runs every epoch, and few-shot evaluation reads the encoder
features (chosen on validation: benchmarks/results/scgm_quality_select.md).
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu


def get_config():
  config = fashion_mnist_cpu(base_config())
  config.method = "scgm_a"
  config.seed = 0
  config.data.views = ("crop_flip", "crop_flip")  # query and key views
  config.model.embedder = "mlp"  # Linear(D, D)-ReLU-Linear(D, e), as the reference code's head
  config.model.embedding_dim = 128
  config.scgm.num_subclasses = 30  # r
  config.scgm.sigma2 = 0.1
  config.scgm.gamma = 0.5
  config.scgm.lam = 25.0
  config.scgm.estep_every_epochs = 1
  config.scgm.warmup_epochs = 1
  config.eval.features = "features"
  config.scgm.detach_means = True  # reference code; False = the paper's Eq. 19 with learnt means
  config.contrast.queue_size = 4096  # keys per super-class
  config.contrast.momentum = 0.99
  config.contrast.temperature = 0.2
  config.eval.protocols = ("classification", "fewshot", "retrieval", "kmeans", "clusters")
  return config
