"""F-SC's config section `fsc`: the F-SC head and the heads it is compared with (`fsc.head`).

Defaults and where each comes from: docs/methods/fsc.md#defaults.
"""

from __future__ import annotations

import ml_collections


def fsc_section() -> ml_collections.ConfigDict:
  fsc = ml_collections.ConfigDict()
  fsc.head = "fsc"  # "fsc" (fixed sub-centres), "softmax", "centre" (centre loss) or "softtriple"
  fsc.label = "coarse"  # labels the head is trained on: "coarse" or "fine"
  fsc.num_sub = 4  # s, sub-centres per class (fsc); K, centres per class (softtriple)
  fsc.sigma2 = 1e-3  # sigma^2, spread of the sub-centres around their class centre
  fsc.beta = 1e-4  # weight of the compactness term L_scc
  fsc.logit_scale = 1.0  # multiplies F-SC's logits w.x (1: the paper's; docs/methods/fsc.md#small-data)
  fsc.assign = "logit"  # sub-centre L_scc pulls to: "logit" (argmax w.x in the true class) or "euclidean"
  # class centres U(-b, b): "kaiming_uniform" b = sqrt(6/d), "linear_default" b = 1/sqrt(d)
  fsc.centre_init = "kaiming_uniform"
  fsc.centre_lambda = 0.003  # centre: weight of the centre loss (Wen et al.)
  fsc.centre_alpha = 0.5  # centre: rate of the moving centres (Wen et al.)
  fsc.softtriple_lambda = 20.0  # softtriple: logit scale (SoftTriple paper)
  fsc.softtriple_gamma = 0.1  # softtriple: temperature of the within-class softmax
  fsc.softtriple_delta = 0.01  # softtriple: margin
  fsc.softtriple_tau = 0.2  # softtriple: weight of the centre-merging regulariser
  return fsc
