"""F-SC's training recipe for its paper's benchmarks (docs/methods/fsc.md#paper-settings), shared by configs/fsc_*.py.

Config files are loaded by path, so they cannot import one another; they import this module instead
(each method family keeps its recipes in its own `recipes.py`).
"""

from __future__ import annotations

import ml_collections

from coarse2fine.methods.fsc.method import HEADS

RETRIEVAL_KS = (1, 2, 4, 8)  # SoftTriple's Recall@K on CUB-2011 and Cars-196


def fsc_paper(config: ml_collections.ConfigDict, head: str, retrieval: bool = False) -> ml_collections.ConfigDict:
  """F-SC's recipe with `head` (fsc, softmax, centre or softtriple) trained on the fine labels.

  From the paper: ResNet-18 (ImageNet stem, 512-d features straight into the head), SGD momentum 0.9,
  weight decay 4e-5, cosine schedule from lr 0.01, 224 x 224 random crop + horizontal flip; s = 4,
  sigma^2 = 1e-3, beta = 1e-4 (the other heads keep `base_config`'s fields). Scored by top-1 at the
  training granularity (the fine classes) on the test split; with `retrieval`, also Recall@{1, 2, 4, 8} of
  the backbone features (docs/evaluation.md#f-sc-top-1-and-fgvc-retrieval).

  Our choices or deviations, which the user should know:
  * The paper fine-tunes ImageNet-pretrained weights, and so does this recipe: torchvision's
    ResNet18_Weights.IMAGENET1K_V1 file (docs/pretrained.md says where to put it; without it the run
    stops at once; --config.model.init_from="" trains from random weights, well below the paper).
  * 100 epochs of batch 64: neither is in our sources.
  * "Random crop" is read as torchvision's RandomResizedCrop(224) with its default area range 0.08-1 (our
    `weak` view) of the image as loaded, which is already 224 x 224 (or the .npz's size); our reading.
  * Recall@K is computed on the test split the classifier is scored on, whose classes are the training
    ones. SoftTriple's own retrieval benchmark trains on the first half of the classes and retrieves among
    the other half: `unseen_classes_retrieval` sets that up (the configs' `retrieval` argument).
  * The softtriple head uses fsc.num_sub = 4 centres per class, F-SC's s; SoftTriple's own paper used 10
    (not in our sources; `--config.fsc.num_sub=10`).
  Dataset configs set data.name (and its fields), then call this.
  """
  if head not in HEADS:
    raise ValueError(f"F-SC paper configs take a head from {HEADS}, got {head!r}.")
  config.method = "fsc"
  config.seed = 0
  config.fsc.head = head
  config.fsc.label = "fine"  # the paper trains and scores at one granularity: the datasets' classes
  config.fsc.num_sub = 4  # s (softtriple: K)
  config.fsc.sigma2 = 1e-3
  config.fsc.beta = 1e-4
  config.data.image_size = 224  # tfds datasets: the side images are resized to (the .npz ones keep theirs)
  config.data.views = ("weak",)  # RandomResizedCrop + flip, output at the input's size
  config.data.augment.min_scale = 0.08  # torchvision's default RandomResizedCrop area range (0.08, 1)
  config.data.augment.flip = True
  config.data.num_workers = 8  # host-side decoding and augmentation of 224 px images
  config.model.encoder = "resnet18"
  config.model.encoder_args.stem = "imagenet"  # 7x7/2 conv + max-pool, as torchvision's ResNet-18
  config.model.init_from = "torchvision:resnet18-f37072fd.pth"  # ResNet18_Weights.IMAGENET1K_V1 (docs/pretrained.md)
  config.model.embedder = "none"  # the head sits on the 512-d pooled features
  config.model.dtype = "bfloat16"  # computation only; parameters, features and the head stay float32
  config.optimizer.name = "sgd"
  config.optimizer.lr = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 4e-5
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 0.0
  config.optimizer.min_lr = 0.0
  config.train.num_epochs = 100  # our choice
  config.train.batch_size = 64  # our choice
  config.eval.features = "features"
  config.eval.protocols = ("classification", "retrieval") if retrieval else ("classification",)
  config.eval.retrieval_ks = RETRIEVAL_KS
  config.eval.every_epochs = 10  # a progress check; the final model is always evaluated
  config.eval.batch_size = 500
  return config


RETRIEVAL_ARGUMENT = "retrieval"  # configs/fsc_{cub2011,cars196}.py:[<head>,]retrieval


def parse_argument(arg: str, config_file: str) -> tuple[str, bool]:
  """(head, zero-shot retrieval?) of a CUB or Cars config argument `<head>`, `retrieval` or `<head>,retrieval`."""
  parts = arg.split(",")
  retrieval = RETRIEVAL_ARGUMENT in parts
  heads = [p for p in parts if p != RETRIEVAL_ARGUMENT]
  if len(heads) > 1 or parts.count(RETRIEVAL_ARGUMENT) > 1 or (heads and heads[0] not in HEADS):
    raise ValueError(f"{config_file} takes '<head>', '{RETRIEVAL_ARGUMENT}' or '<head>,{RETRIEVAL_ARGUMENT}' with "
                     f"a head from {HEADS}, got {arg!r}.")
  return (heads[0] if heads else "fsc"), retrieval


def unseen_classes_retrieval(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The zero-shot retrieval protocol of SoftTriple (and F-SC's retrieval table) on CUB-2011 or Cars-196.

  Train on every image of the first half of the classes (CUB species 1-100, Cars models 1-98), score
  Recall@{1, 2, 4, 8} of the backbone features among every image of the other half, each image a query
  against all the others (docs/evaluation.md#zero-shot-retrieval-on-unseen-classes). Top-1 is refused there:
  the classifier never saw the test classes. Everything else stays `fsc_paper`'s: SoftTriple's own runs used
  a BN-Inception backbone with a 64-d or 512-d embedding and K = 10 centres per class (from its paper, not in
  our sources), which this recipe does not reproduce (ResNet-18's 512-d features, `fsc.num_sub` = 4).
  """
  config.data.split_protocol = "unseen_classes"
  config.eval.protocols = ("retrieval",)
  config.eval.retrieval_ks = RETRIEVAL_KS
  return config
