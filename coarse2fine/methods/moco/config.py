"""MoCo v3's config section `moco`.

Defaults are the official code's ResNet-50 values; docs/methods/moco.md#defaults lists them
with the CPU values of configs/pretrain_fashion_mnist.py and configs/pretrain_pbmc.py.
"""

from __future__ import annotations

import ml_collections

MOMENTUM_SCHEDULES = ("cosine", "constant")


def moco_section() -> ml_collections.ConfigDict:
  moco = ml_collections.ConfigDict()
  moco.temperature = 1.0  # tau of the contrastive logits q.k / tau (official ResNet-50 default; ViT: 0.2)
  moco.embedding_dim = 256  # output width of the projector and of the predictor
  moco.projector_hidden = 4096  # hidden width of the projector MLP
  moco.projector_layers = 2  # Linear layers of the projector (ResNet: 2; the paper's ViT: 3)
  moco.predictor_hidden = 4096  # hidden width of the predictor MLP
  moco.predictor_layers = 2  # Linear layers of the predictor
  moco.momentum = 0.99  # m0: momentum encoder xi <- m xi + (1 - m) theta, m rising from m0 to 1
  moco.momentum_schedule = "cosine"  # "cosine" (m0 to 1 over training, half a cosine) or "constant" (m0 throughout)
  return moco
