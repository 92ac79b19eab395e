"""Losses of F-SC (fixed sub-centres) and of the heads it is compared with: centre loss and SoftTriple.

docs/methods/fsc.md#losses (F-SC and its comparison heads). Pure functions of
arrays; `method.py` wires them into a method. Shapes: b examples, d feature dimensions,
C classes, s (or K) sub-centres per class.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coarse2fine.methods.common.normalize import l2_normalize

# How the class centres mu_i are drawn (docs/methods/fsc.md#departures-from-the-paper, point 2): U(-bound, bound) with
CENTRE_INITS = {
    "kaiming_uniform": lambda d: math.sqrt(6.0 / d),  # torch.nn.init.kaiming_uniform_ defaults (literal reading)
    "linear_default": lambda d: 1.0 / math.sqrt(d),  # PyTorch nn.Linear's default init
}
ASSIGNMENTS = ("logit", "euclidean")


def centre_bound(dim: int, init: str) -> float:
  if init not in CENTRE_INITS:
    raise ValueError(f"Unknown sub-centre init {init!r}; choose one of {sorted(CENTRE_INITS)}.")
  return CENTRE_INITS[init](dim)


def sample_sub_centres(rng: jax.Array, num_classes: int, num_sub: int, dim: int, sigma2: float,
                       init: str = "kaiming_uniform") -> jax.Array:
  """[C, s, d] float32 sub-centres w_{i,j} = mu_i + sigma eps, mu_i ~ U(-bound, bound)^d, eps ~ N(0, I_d).

  Drawn once; F-SC keeps them fixed for the whole run.
  """
  bound = centre_bound(dim, init)
  mu_rng, eps_rng = jax.random.split(rng)
  mu = jax.random.uniform(mu_rng, (num_classes, 1, dim), jnp.float32, -bound, bound)
  eps = jax.random.normal(eps_rng, (num_classes, num_sub, dim), jnp.float32)
  return mu + math.sqrt(sigma2) * eps


def sub_class_logits(features: jax.Array, centres: jax.Array, scale: float = 1.0) -> jax.Array:
  """l_{b,i,k} = scale * w_{i,k} . x_b: features [b, d], centres [C, s, d] -> [b, C, s].

  `scale` 1 is the paper's; docs/methods/fsc.md#small-data says when a larger one helps.
  """
  return scale * jnp.einsum("bd,csd->bcs", features.astype(jnp.float32), centres)


def class_log_probs(sub_logits: jax.Array) -> jax.Array:
  """log p(class i | x) = log sum_k ptilde_{i,k}, the softmax taken over all C*s logits.

  sub_logits: [b, C, s] -> [b, C] log-probabilities.
  """
  flat = sub_logits.reshape(sub_logits.shape[0], -1)
  return jax.nn.logsumexp(sub_logits, axis=-1) - jax.nn.logsumexp(flat, axis=-1, keepdims=True)


def assigned_sub_centre(features: jax.Array, centres: jax.Array, labels: jax.Array,
                        assign: str = "logit") -> jax.Array:
  """[b] int32 k_b: the sub-centre of the true class that example b is pulled to (no gradient).

  "logit": argmax_k w_{y,k}.x (the model's own sub-class;
  docs/methods/fsc.md#departures-from-the-paper, point 1);
  "euclidean": argmin_k ||x - w_{y,k}||.
  """
  own = centres[labels]  # [b, s, d]
  x = jax.lax.stop_gradient(features.astype(jnp.float32))
  if assign == "logit":
    return jnp.argmax(jnp.einsum("bd,bsd->bs", x, own), axis=-1).astype(jnp.int32)
  if assign == "euclidean":
    return jnp.argmin(jnp.sum((x[:, None, :] - own) ** 2, axis=-1), axis=-1).astype(jnp.int32)
  raise ValueError(f"Unknown sub-centre assignment {assign!r}; choose one of {ASSIGNMENTS}.")


def fsc_loss(features: jax.Array, centres: jax.Array, labels: jax.Array, beta: float,
             assign: str = "logit", scale: float = 1.0) -> tuple[jax.Array, dict]:
  """L = L_sub + beta L_scc (docs/methods/fsc.md#compactness-term).

  L_sub = -(1/b) sum_b log sum_k ptilde_{b,y_b,k} (a mean); L_scc = 1/2 sum_b ||x_b - w_{y_b,k_b}||^2
  (a sum over the batch, as the paper writes it). features [b, d], centres [C, s, d] (constants),
  labels [b] ints; `scale` multiplies the logits of L_sub (not L_scc, a distance).
  Returns (L, {"sub_ce": L_sub, "compactness": L_scc}).
  """
  x = features.astype(jnp.float32)
  log_p = class_log_probs(sub_class_logits(x, centres, scale))
  sub_ce = -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))
  k = assigned_sub_centre(x, centres, labels, assign)
  pulled_to = centres[labels, k]  # [b, d]
  compactness = 0.5 * jnp.sum((x - pulled_to) ** 2)
  return sub_ce + beta * compactness, {"sub_ce": sub_ce, "compactness": compactness}


def centre_loss(features: jax.Array, centres: jax.Array, labels: jax.Array) -> jax.Array:
  """Wen et al.'s L_C = 1/2 sum_b ||x_b - c_{y_b}||^2 (a sum over the batch); centres [C, d] constants."""
  x = features.astype(jnp.float32)
  return 0.5 * jnp.sum((x - jax.lax.stop_gradient(centres)[labels]) ** 2)


def update_centres(centres: jax.Array, features: jax.Array, labels: jax.Array, alpha: float) -> jax.Array:
  """Wen et al.'s moving centres: c_j <- c_j - alpha sum_{b: y_b = j} (c_j - x_b) / (1 + n_j).

  centres [C, d], features [b, d] (no gradient), labels [b]; classes absent from the batch stay put.
  """
  x = jax.lax.stop_gradient(features.astype(jnp.float32))
  num_classes = centres.shape[0]
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)  # [b, C]
  counts = one_hot.sum(0)  # [C]
  summed = one_hot.T @ x  # [C, d]
  delta = (counts[:, None] * centres - summed) / (1.0 + counts[:, None])
  return centres - alpha * delta


def softtriple_similarities(features: jax.Array, centres: jax.Array, gamma: float) -> tuple[jax.Array, jax.Array]:
  """SoftTriple's relaxed class similarity on unit vectors.

  features [b, d], centres [C, K, d] (trainable). Returns (S' [b, C], sims [b, C, K]) where
  sims = x.w_c^k and S'_{b,c} = sum_k softmax_k(sims / gamma) sims.
  """
  sims = jnp.einsum("bd,ckd->bck", l2_normalize(features.astype(jnp.float32)), l2_normalize(centres))
  weights = jax.nn.softmax(sims / gamma, axis=-1)
  return jnp.sum(weights * sims, axis=-1), sims


def softtriple_regulariser(centres: jax.Array) -> jax.Array:
  """Mean distance between the unit centres of one class: sum_c sum_{k<k'} ||w_c^k - w_c^k'|| / (C K (K-1)).

  SoftTriple's term that lets centres of a class merge; ||a - b|| = sqrt(2 - 2 a.b) on unit
  vectors, with 1e-5 inside the root so its gradient stays finite when two centres meet.
  """
  num_classes, k, _ = centres.shape
  if k < 2:
    return jnp.zeros((), jnp.float32)
  w = l2_normalize(centres)
  dots = jnp.einsum("ckd,cjd->ckj", w, w)
  upper = jnp.triu(jnp.ones((k, k), bool), 1)
  distances = jnp.sqrt(jnp.maximum(2.0 + 1e-5 - 2.0 * dots, 0.0))
  return jnp.sum(jnp.where(upper[None], distances, 0.0)) / (num_classes * k * (k - 1))


def softtriple_loss(features: jax.Array, centres: jax.Array, labels: jax.Array, lam: float, gamma: float,
                    delta: float, tau: float) -> tuple[jax.Array, dict]:
  """-log softmax(lam (S' - delta 1[c = y]))_y + tau R(centres), averaged over the batch.

  Returns (loss, {"softtriple_ce": ..., "centre_spread": R}).
  """
  relaxed, _ = softtriple_similarities(features, centres, gamma)
  margin = delta * jax.nn.one_hot(labels, relaxed.shape[1], dtype=jnp.float32)
  logits = lam * (relaxed - margin)
  ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits, -1), labels[:, None], axis=1))
  spread = softtriple_regulariser(centres)
  return ce + tau * spread, {"softtriple_ce": ce, "centre_spread": spread}
