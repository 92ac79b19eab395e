r"""SCAN on Fashion-MNIST (fmnist3): clusters from neighbour consistency alone, no labels (FALCON's baseline).

  python -m coarse2fine.main --config=configs/scan_fashion_mnist.py --workdir=workdirs/scan_fmnist
  python -m coarse2fine.main --config=configs/scan_fashion_mnist.py:c --workdir=workdirs/scan_c_fmnist

`get_config("c")` gives SCAN-C, whose neighbours come from the same coarse class. Same
budget as configs/falcon_fashion_mnist.py: 10 epochs on the same 20k-image subset, batch
256, neighbours mined on the raw pixels, a randomly initialised ConvNet. Entropy weight 5
(SCAN's paper); no self-labelling stage.
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu


def get_config(arg: str = ""):
  if arg not in ("", "c"):
    raise ValueError(f"scan_fashion_mnist.py takes '' (SCAN) or 'c' (SCAN-C), got {arg!r}.")
  config = fashion_mnist_cpu(base_config())
  config.method = "scan_c" if arg == "c" else "scan"
  config.seed = 0
  config.data.train_examples = 20000
  config.data.views = ("crop_flip",)
  config.model.embedder = "none"
  config.optimizer.lr = 0.1
  config.optimizer.weight_decay = 0.0
  config.train.num_epochs = 10
  config.train.batch_size = 256
  config.train.log_every_steps = 20
  config.scan.entropy_weight = 5.0
  config.scan.neighbours = 20
  config.scan.neighbour_features = "inputs"
  config.eval.protocols = ("classification", "clusters", "kmeans")
  config.checkpoint.every_steps = 500
  return config
