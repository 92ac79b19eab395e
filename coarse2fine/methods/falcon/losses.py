"""FALCON's classifier losses and schedules, as pure functions.

See docs/methods/falcon.md#losses and docs/methods/falcon.md#schedules.

Every loss sees the fine-to-coarse relation through `allowed` [B, K] bool, the row M_{d_i}[:, y_i]
of example i's relation matrix: the fine classes its coarse label permits. With one taxonomy that is
`relation[:, coarse].T`; with several (docs/methods/falcon.md#several-taxonomies) each example picks
the matrix of its dataset, so the same functions serve both.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def allowed_children(relations: jax.Array, dataset: jax.Array, coarse: jax.Array) -> jax.Array:
  """[B, K] bool: M_{d_i}[k, y_i].

  relations: [D, K, C_max] bool, one relation per dataset (columns past a dataset's own
  coarse count are all False); dataset, coarse: [B] int32.
  """
  return relations[dataset, :, coarse]


def coarse_loss(logits: jax.Array, allowed: jax.Array) -> jax.Array:
  """L_coarse: mean_i -(logsumexp_{k allowed} l_ik - logsumexp_k l_ik). logits [B, K]."""
  masked = jnp.where(allowed, logits, -jnp.inf)
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jax.nn.logsumexp(masked, axis=-1))


def neighbour_consistency_loss(log_probs: jax.Array, neighbour_log_probs: jax.Array) -> jax.Array:
  """L_cons: -mean_{i, j} log(p_i . p'_nb[i, j]). log_probs [B, K]; neighbour_log_probs [B, m, K].

  Computed as a log-sum-exp of log-probabilities: the same value, but confident predictions
  that disagree give a large finite loss instead of log(0) (a float32 dot product of two
  peaked distributions underflows to 0 and made training diverge).
  """
  return -jnp.mean(jax.nn.logsumexp(log_probs[:, None, :] + neighbour_log_probs, axis=-1))


def confidence_targets(teacher_logits: jax.Array, allowed: jax.Array, tau: jax.Array,
                       temperature: float) -> jax.Array:
  """t_i = tau softmax_{allowed}(l'_i / T) + (1 - tau) onehot(argmax of it): [B, K] targets."""
  soft = jax.nn.softmax(jnp.where(allowed, teacher_logits / temperature, -jnp.inf), axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), soft.shape[-1], dtype=soft.dtype)
  return tau * soft + (1.0 - tau) * hard


def confidence_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """L_conf: -mean_i sum_k t_ik log_softmax(l_i)_k."""
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def entropy_regulariser(probs: jax.Array) -> jax.Array:
  """L_reg = log K - H(mean_i p_i) over the global batch. probs [B, K].

  The step sees the global batch, so this is the exact gradient of the global-batch term.
  (The official code all-gathers p without gradient, so with R GPUs its gradient is that of
  lambda3 / R times this term: scale lambda3 by 1/R to copy a multi-GPU run.)
  """
  mean = jnp.mean(probs, axis=0)
  # 0 log 0 = 0. The log's argument is made safe as well: a where() around log(0) still
  # sends 0 * inf = NaN into the gradient once a class's mean probability underflows.
  entropy = -jnp.sum(mean * jnp.log(jnp.where(mean > 0, mean, 1.0)))
  return math.log(probs.shape[-1]) - entropy


def soft_label_weight(epoch: jax.Array, soft_label_epochs: int) -> jax.Array:
  """tau(epoch), epoch 1-based: 0.5 (1 + cos(pi (epoch - 1) / E_soft)) while epoch <= E_soft, then 0."""
  epoch = jnp.asarray(epoch, jnp.float32)
  tau = 0.5 * (1.0 + jnp.cos(jnp.pi * (epoch - 1.0) / soft_label_epochs))
  return jnp.where(epoch <= soft_label_epochs, tau, 0.0)


def ema_decay(update: jax.Array, max_decay: float = 0.99) -> jax.Array:
  """d_n = min(max_decay, (1 + n) / (10 + n)) for the n-th (1-based) EMA update."""
  update = jnp.asarray(update, jnp.float32)
  return jnp.minimum(max_decay, (1.0 + update) / (10.0 + update))


def ema_update(teacher, online, decay: jax.Array):
  """theta' - (1 - d) (theta' - theta), leaf by leaf."""
  return jax.tree.map(lambda t, o: t - (1.0 - decay) * (t - o), teacher, online)


def relation_cost(teacher_probs: jax.Array, coarse: jax.Array, dataset: jax.Array, num_datasets: int,
                  num_coarse: int) -> jax.Array:
  """[D, K, C_max] sums over the batch of p'_i outer onehot(y_i), per dataset d_i.

  Accumulated between solves and divided by the example counts, this is S of docs/methods/falcon.md#relation-problem.
  """
  target = jax.nn.one_hot(dataset * num_coarse + coarse, num_datasets * num_coarse, dtype=teacher_probs.dtype)
  cost = teacher_probs.T @ target  # [K, D * C_max]
  return cost.reshape(teacher_probs.shape[-1], num_datasets, num_coarse).transpose(1, 0, 2)
