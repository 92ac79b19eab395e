r"""F-SC on Fashion-MNIST (fmnist3), and the heads it is compared with, on coarse or fine labels.

Sized for a 2-core CPU (under a minute of training each, plus evaluation):

  python -m coarse2fine.main --config=configs/fsc_fashion_mnist.py --workdir=workdirs/fsc_fmnist
  python -m coarse2fine.main --config=configs/fsc_fashion_mnist.py:fsc,fine --workdir=workdirs/fsc_fmnist_fine
  python -m coarse2fine.main --config=configs/fsc_fashion_mnist.py:softtriple,coarse --workdir=workdirs/st_fmnist

The argument is `HEAD[,LABEL]`: HEAD one of fsc, softmax, centre, softtriple; LABEL coarse
(the 3 fmnist3 classes, default) or fine (the 10 Fashion-MNIST classes). Every head has the
same ConvNet and budget as the `coarse`/`fine` baselines (6 epochs of batch 128, SGD 0.05,
cosine). On fine labels the score is top-1; on coarse labels the sub-centre heads (fsc,
softtriple) also discover fine classes (docs/methods/fsc.md#predictions-and-fine-class-discovery),
scored by the discovery metrics, next to few-shot, Recall@K and k-means on the features.
"""

from coarse2fine.config_base import base_config, fashion_mnist_cpu
from coarse2fine.methods.fsc.method import HEADS, LABELS


def get_config(arg: str = "fsc,coarse"):
  head, _, label = arg.partition(",")
  label = label or "coarse"
  if head not in HEADS or label not in LABELS:
    raise ValueError(f"fsc_fashion_mnist.py takes HEAD[,LABEL] with HEAD in {HEADS} and LABEL in {LABELS}, "
                     f"got {arg!r}.")
  config = fashion_mnist_cpu(base_config())
  config.method = "fsc"
  config.seed = 0
  config.model.embedder = "none"
  config.fsc.head = head
  config.fsc.label = label
  config.eval.features = "features"
  if label == "fine":
    config.eval.protocols = ("classification",)
  else:
    sub_centres = ("clusters",) if head in ("fsc", "softtriple") else ()
    config.eval.protocols = ("classification", *sub_centres, "kmeans", "fewshot", "retrieval")
  return config
