"""Fine-to-coarse class hierarchies: the `Taxonomy` type and the built-in taxonomies.

  from coarse2fine.data import taxonomy
  tax, fine_ids = taxonomy.get_taxonomy("fmnist3", taxonomy.FASHION_MNIST_CLASSES)

`hierarchy` defines `Taxonomy` (its checks, file formats and relation matrices); `builtin`
the named taxonomies of the datasets (docs/datasets.md) and `get_taxonomy`, which resolves
a config's `data.taxonomy` (a built-in name or a file).
"""

from coarse2fine.data.taxonomy.builtin import (
                                               BUILTIN_TAXONOMIES,
                                               CARS196_8_IDS,
                                               CARS196_CLASSES,
                                               CIFAR10_CLASSES,
                                               CIFAR68_REMOVED,
                                               CIFAR100_CLASSES,
                                               CIFAR_SI_KEEP,
                                               CUB200_CLASSES,
                                               CUB200_ORDERS_IDS,
                                               DIGITS_CLASSES,
                                               FASHION_MNIST_CLASSES,
                                               cifar_si_keep,
                                               get_taxonomy,
)
from coarse2fine.data.taxonomy.hierarchy import Taxonomy

__all__ = ["BUILTIN_TAXONOMIES", "CARS196_8_IDS", "CARS196_CLASSES", "CIFAR10_CLASSES", "CIFAR68_REMOVED",
           "CIFAR100_CLASSES", "CIFAR_SI_KEEP", "CUB200_CLASSES", "CUB200_ORDERS_IDS", "DIGITS_CLASSES",
           "FASHION_MNIST_CLASSES", "Taxonomy", "cifar_si_keep", "get_taxonomy"]
