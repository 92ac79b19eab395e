r"""SCGM-G on Fashion-MNIST (fmnist3), sized for a 2-core CPU (a few minutes).

  python -m coarse2fine.main --config=configs/scgm_fashion_mnist.py --workdir=workdirs/scgm_fmnist

Same encoder, data, optimiser and budget as `configs/coarse_plus_fashion_mnist.py`, so the
two compare directly. The E-step runs before epochs 1, 4 (every 3 epochs here; the paper's
200-epoch runs use 5). Evaluation reports few-shot episodes, Recall@K, k-means and SCGM's
own sub-classes (`discovery/clusters_*`, NMI and purity).
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu


def get_config():
  config = fashion_mnist_cpu(base_config())
  config.method = "scgm_g"
  config.seed = 0
  config.model.embedder = "mlp"  # D-D-e, the reference code's default (the paper's App. C.1 says fc)
  config.model.embedding_dim = 128
  config.scgm.num_subclasses = 30  # r
  config.scgm.sigma2 = 0.1
  config.scgm.gamma = 0.5
  config.scgm.lam = 25.0
  config.scgm.estep_every_epochs = 3
  config.eval.protocols = ("classification", "fewshot", "retrieval", "kmeans", "clusters")
  return config
