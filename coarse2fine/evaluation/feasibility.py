"""Whether a config's evaluation protocols can run on its data: checked before training, not after.

A run that trains for hours and then finds that the few-shot episodes cannot be drawn loses
every metric; `check_protocols` names the problem and the field to change before the first step.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from coarse2fine.data.splits import HierarchicalData

PROTOCOLS = ("classification", "fewshot", "retrieval", "kmeans", "clusters")
FEATURES = ("embedding", "features")
NEEDS_FINE_LABELS = ("fewshot", "retrieval", "kmeans", "clusters")


def check_names(eval_config: ml_collections.ConfigDict) -> None:
  """Refuses protocol and feature names that do not exist."""
  unknown = set(eval_config.protocols) - set(PROTOCOLS)
  if unknown:
    raise ValueError(f"Unknown eval.protocols {sorted(unknown)}; choose from {PROTOCOLS}.")
  if eval_config.features not in FEATURES:
    raise ValueError(f"eval.features must be one of {FEATURES}, got {eval_config.features!r}.")


def check_protocols(config: ml_collections.ConfigDict, data: HierarchicalData, method_class) -> None:
  """Raises ValueError, naming the field to change, if `config.eval` cannot be evaluated on `data`.

  method_class: the run's `Method` subclass (whether it has clusters of its own).
  """
  cfg = config.eval
  check_names(cfg)
  protocols = set(cfg.protocols)
  split = getattr(data, cfg.split, None)
  if split is None:
    return  # eval.split itself is checked where the run is set up
  needing = sorted(protocols & set(NEEDS_FINE_LABELS))
  if needing and (split.fine < 0).any():
    raise ValueError(f"eval.protocols {needing} need fine labels on the {cfg.split} split, but "
                     f"{int((split.fine < 0).sum())} of its {len(split)} examples have none; drop them from "
                     "eval.protocols.")
  if "classification" in protocols and cfg.split == "test" and data.unseen_test_classes:
    raise ValueError("eval.protocols has 'classification', but data.split_protocol='unseen_classes' keeps every test "
                     "class out of training, so a classifier cannot name them: score the test split with "
                     "'retrieval' (Recall@K) instead, or classify the seen classes with data.val_fraction > 0 and "
                     "eval.split='val'.")
  if "classification" in protocols and not method_class.has_classifier(config):
    raise ValueError(f"eval.protocols has 'classification', but method {config.method!r} learns no classifier; "
                     "evaluate its features with 'kmeans', 'retrieval' or 'fewshot' instead.")
  if "clusters" in protocols and not method_class.has_clusters(config):
    raise ValueError(f"eval.protocols has 'clusters', but method {config.method!r} discovers no classes of its own; "
                     "use 'kmeans' instead.")
  if "retrieval" in protocols and len(split) < 2:
    raise ValueError(f"eval.protocols has 'retrieval', but the {cfg.split} split holds {len(split)} example.")
  if "fewshot" in protocols:
    _check_fewshot(cfg, split.fine)


def _check_fewshot(cfg: ml_collections.ConfigDict, fine: np.ndarray) -> None:
  from coarse2fine.evaluation.evaluator import fewshot_settings  # parses (and checks) eval.fewshot_settings

  fewshot_settings(cfg)
  if cfg.fewshot_queries < 1 or min(cfg.fewshot_shots, default=0) < 1:
    raise ValueError(f"eval.fewshot_shots {tuple(cfg.fewshot_shots)} and eval.fewshot_queries "
                     f"{cfg.fewshot_queries} must be positive.")
  need = max(cfg.fewshot_shots) + cfg.fewshot_queries
  classes, sizes = np.unique(fine, return_counts=True)
  small = sizes < need
  if small.any():
    raise ValueError(
        f"Few-shot episodes need eval.fewshot_shots + eval.fewshot_queries = {max(cfg.fewshot_shots)} + "
        f"{cfg.fewshot_queries} = {need} examples of every fine class in the {cfg.split} split, but "
        f"{int(small.sum())} of {len(classes)} classes have fewer (fine class {int(classes[small][0])} has "
        f"{int(sizes[small][0])}; the smallest has {int(sizes.min())}); lower eval.fewshot_queries or "
        "eval.fewshot_shots, or drop 'fewshot' from eval.protocols.")
