"""MaskCon's config section `maskcon`, shared by its family (`maskcon.mode`).

Defaults and where each comes from: docs/methods/maskcon.md#defaults.
"""

from __future__ import annotations

import ml_collections


def maskcon_section() -> ml_collections.ConfigDict:
  maskcon = ml_collections.ConfigDict()
  maskcon.mode = "maskcon"  # maskcon, selfcon, grafit, supcon, coins, supce or supfine (fine labels)
  maskcon.w = 0.5  # weight of the soft (maskcon, grafit) or classifier (coins) term against SelfCon
  maskcon.t1 = 0.1  # temperature of the contrastive logits
  maskcon.t2 = 0.05  # temperature of the key-to-queue similarities in MaskCon's target
  maskcon.queue_size = 8192  # keys in the FIFO queue
  maskcon.momentum = 0.99  # key encoder: xi <- m xi + (1 - m) theta (parameters only)
  maskcon.embedding_dim = 256  # e, projector output (code's 256; the paper says 128)
  maskcon.projector_hidden = 0  # projector hidden width (0 = the encoder's feature width D)
  maskcon.fill_queue = True  # fill the queue with key-encoder outputs before the first step
  return maskcon
