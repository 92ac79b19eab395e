"""FALCON's config sections: `falcon`, and `scan` for its baselines SCAN and SCAN-C.

Defaults and where each comes from: docs/methods/falcon.md#defaults.
"""

from __future__ import annotations

import ml_collections

from coarse2fine.methods.common.estimate_k import fine_count_field


def falcon_section() -> ml_collections.ConfigDict:
  falcon = ml_collections.ConfigDict()
  # K, fine classes to discover: 0 = the dataset's true count; "estimate" = estimated per coarse class before
  # training (the `estimate_k` section, docs/methods/falcon.md#estimated-k), the total used as K
  falcon.num_fine = fine_count_field(0)
  falcon.lambda_coarse = 0.5  # lambda1
  falcon.lambda_consistency = 0.5  # lambda2, on L_conf + L_cons
  falcon.lambda_entropy = 2.0  # lambda3
  falcon.temperature = 0.9  # T of the confidence target
  falcon.ema_decay = 0.99  # teacher decay after the warm-up min(d, (1 + n) / (10 + n))
  falcon.beta = 0.1  # relation solver's balance penalty; 0 after soft_label_epochs
  falcon.solve_every = 20  # steps between relation solves, counted within each epoch
  falcon.soft_label_epochs = 30  # tau anneals 1 -> 0 over these epochs; then beta = 0
  falcon.warmup_steps = 0  # first steps on lambda2 L_cons + lambda3 L_reg only (not official; docs/methods/falcon.md)
  # fine classes each coarse class holds, where known (not the paper's: it discovers them): "" = discovered,
  # "taxonomy" = the data's taxonomy's counts, or "5,1,1,2,1" (one count per coarse class, summing to K)
  falcon.fine_per_coarse = ""
  falcon.solver = "exact"  # relation solver backend: "exact", "milp" (HiGHS) or "gurobi"
  falcon.solver_time_limit = 30.0  # seconds, for the milp and gurobi backends
  falcon.neighbours = 20  # within-coarse neighbours mined per example
  falcon.neighbours_used = 5  # of them drawn (without replacement) each time an example is loaded
  # mined on: "inputs" (L2-normalised raw inputs), "checkpoint:<workdir>" (another run's features) or a .npy file
  falcon.neighbour_features = "inputs"
  return falcon


def scan_section() -> ml_collections.ConfigDict:
  scan = ml_collections.ConfigDict()
  scan.num_clusters = fine_count_field(0)  # K (0 = the dataset's true number of fine classes; "estimate" as falcon's)
  scan.entropy_weight = 5.0  # w_ent (SCAN's paper)
  scan.neighbours = 20  # mined per example (over all data for scan, within the coarse class for scan_c)
  scan.neighbour_features = "inputs"  # as falcon.neighbour_features
  return scan
