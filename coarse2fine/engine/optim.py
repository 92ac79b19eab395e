"""Optimizers and learning-rate schedules named in `config.optimizer`."""

from __future__ import annotations

import ml_collections
import optax

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine", "cosine_restarts", "multistep")


def make_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """Learning rate per step.

  * `cosine`: from `lr` to `min_lr` over the run, after `warmup_epochs` of linear warm-up.
  * `cosine_restarts`: cosine from `lr` to `min_lr` over every `restart_epochs` epochs
    (SGDR without period growth, as the SCGM and FALCON configs use).
  * `multistep`: `lr` multiplied by `decay_factor` at each epoch in `decay_epochs`.
  """
  if cfg.schedule not in SCHEDULES:
    raise ValueError(f"Unknown optimizer.schedule {cfg.schedule!r}; choose one of {SCHEDULES}.")
  warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
  if cfg.schedule == "constant":
    main = optax.constant_schedule(cfg.lr)
  elif cfg.schedule == "cosine":
    main = optax.cosine_decay_schedule(cfg.lr, max(1, total_steps - warmup), alpha=_floor(cfg))
  elif cfg.schedule == "cosine_restarts":
    period = max(1, int(round(cfg.restart_epochs * steps_per_epoch)))
    cycle = optax.cosine_decay_schedule(cfg.lr, period, alpha=_floor(cfg))
    main = lambda step: cycle(step % period)
  else:
    boundaries = {int(e * steps_per_epoch) - warmup: cfg.decay_factor for e in cfg.decay_epochs}
    main = optax.piecewise_constant_schedule(cfg.lr, boundaries)
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), main], [warmup])


def _floor(cfg: ml_collections.ConfigDict) -> float:
  """min_lr as the fraction of lr that optax's cosine schedules take."""
  if not 0.0 <= cfg.min_lr <= cfg.lr:
    raise ValueError(f"optimizer.min_lr={cfg.min_lr} must be in [0, lr={cfg.lr}].")
  return cfg.min_lr / cfg.lr if cfg.lr else 0.0


def make_optimizer(cfg: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  """SGD with momentum and coupled L2 weight decay (PyTorch's convention), or AdamW."""
  if cfg.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(cfg.weight_decay),
        optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov),
    )
  if cfg.name == "adamw":
    return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
  raise ValueError(f"Unknown optimizer.name {cfg.name!r}; choose one of {OPTIMIZERS}.")
