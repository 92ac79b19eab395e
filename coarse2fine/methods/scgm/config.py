"""SCGM's config sections: `scgm` (SCGM-G and SCGM-A) and `contrast` (the momentum contrast of SCGM-A and ANCOR).

Defaults and where each comes from: docs/methods/scgm.md#defaults.
"""

from __future__ import annotations

import ml_collections

from coarse2fine.methods.common.estimate_k import fine_count_field


def scgm_section() -> ml_collections.ConfigDict:
  scgm = ml_collections.ConfigDict()
  # r, latent sub-classes (the paper's grid: 100..500 in steps of 50); "estimate": the estimated total number
  # of fine classes (the `estimate_k` section, docs/methods/falcon.md#estimated-k)
  scgm.num_subclasses = fine_count_field(100)
  scgm.sigma2 = 0.1  # sigma^2, sub-class temperature ("tau" in the reference code)
  scgm.sigmabar2 = 1.0  # sigmabar^2, super-class temperature
  scgm.ce_scale = 1.0  # s, multiplies L_ce's logits s * relu(n(v)) @ mu_y.T (reference code: 1, no scale)
  scgm.gamma = 0.5  # weight of the mixture terms ("alpha" in the reference code)
  scgm.lam = 25.0  # lambda, inverse entropic regularisation of the E-step transport problem
  scgm.estep_every_epochs = 5  # E-step cadence (before epochs 1, 6, 11, ... as in the reference code)
  scgm.warmup_epochs = 0  # > 0: train on L_ce alone this many epochs, then the first E-step (reference: 0)
  scgm.estep_train_mode = True  # E-step forward with BatchNorm in train mode (reference code) or eval mode
  scgm.warm_start = True  # start each E-step's Sinkhorn from the previous column potential
  scgm.use_pi = False  # paper: super-class-conditional mixing weights pi in the sub-class posterior
  scgm.detach_means = True  # scgm_a: reference code (mu_z never trained, L4 constant); False = paper
  scgm.infonce_weight = 1.0  # scgm_a: weight of the within-super-class InfoNCE (paper and reference code: 1)
  return scgm


def contrast_section() -> ml_collections.ConfigDict:
  contrast = ml_collections.ConfigDict()
  contrast.queue_size = 65536  # keys kept per super-class
  contrast.momentum = 0.999  # key encoder: xi <- m xi + (1 - m) theta
  contrast.temperature = 0.2  # InfoNCE temperature
  return contrast
