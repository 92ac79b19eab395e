"""The interface every method implements, and the generic jitted train step built on it.

A method supplies its model, its loss, its extra state, its host hooks and its
predictions for evaluation. It never edits the loop, the data layer or the evaluation.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from coarse2fine.data.batch import Batch
from coarse2fine.data.pipeline import NeighbourSampling
from coarse2fine.data.splits import HierarchicalData
from coarse2fine.engine.hooks import HostHook
from coarse2fine.engine.train_state import TrainState
from coarse2fine.methods.common.neighbours import RunFeatures


class LossAux(NamedTuple):
  """What a loss returns next to the scalar loss.

  metrics: dict of [] float32 values to log (names like "train/ce").
  batch_stats: the updated BatchNorm statistics.
  extra: the updated method state.
  """

  metrics: dict
  batch_stats: Any
  extra: Any


class Prototypes(NamedTuple):
  """Learned vectors a method compares examples with (SCGM's means): what maps draw next to the examples."""

  label: str  # e.g. "sub-class means"
  vectors: np.ndarray  # [n, e] float32, in the `Discovered.prototype_space` output of `predict`
  coarse: np.ndarray  # [n] int64 coarse class of each vector


class Discovered(NamedTuple):
  """What a method found: its r classes (the columns of `cluster_logits`) and their coarse parents.

  relations: one [r, C_d] int64 0/1 matrix per taxonomy d of `data.taxonomies` (the first is the
    one the evaluation split is labelled with): row k marks the coarse parent of class k.
  prototypes: learned vectors compared with examples by cosine, e.g. SCGM's super-class and
    sub-class means; empty for methods without them.
  prototype_space: the `predict` key whose vectors the prototypes live with (None without prototypes).
  """

  relations: list
  prototypes: tuple = ()
  prototype_space: Optional[str] = None

  @property
  def relation(self) -> np.ndarray:
    """[r, C] the parents in the main taxonomy."""
    return self.relations[0]


class Method(abc.ABC):
  """Base class: the parts of a method the training loop calls.

  `loss` and `after_update` run inside the jitted train step on the global batch;
  `host_hooks` run on the host between steps; `predict` runs inside the jitted
  evaluation step.
  """

  # What the rest of the library reads before a method exists (the API's configs, the
  # evaluation protocols); a method declares these instead of being named anywhere else.
  two_views: ClassVar[bool] = False  # its loss reads two views of each example (query/key, student/teacher)
  has_embedder: ClassVar[bool] = False  # its network puts an embedder (`model.embedder`) after the encoder
  fine_count_field: ClassVar[Optional[str]] = None  # the "a.b" config field that sets how many classes it finds
  # fnmatch patterns of the evaluation keys its paper leads with: the final table prints them first
  # (engine/reporting.py:metrics_table); a pattern that matches nothing is skipped.
  headline_metrics: ClassVar[tuple[str, ...]] = ("*/coarse_top1", "*/fine_top1")

  def __init__(self, config: ml_collections.ConfigDict, data: HierarchicalData):
    self.config = config
    self.data = data
    self._views = tuple(config.data.views)  # a method that checks its views stores the checked tuple here
    self._model: Optional[nn.Module] = None  # set by the method's constructor

  @classmethod
  def config_sections(cls) -> dict[str, ml_collections.ConfigDict]:
    """Its own config sections with their defaults, a comment on every field: name -> section.

    `config_base.base_config` adds them to every config; methods of one family return the
    same sections (e.g. `scgm` for SCGM-G and SCGM-A).
    """
    return {}

  @classmethod
  def has_clusters(cls, config: ml_collections.ConfigDict) -> bool:
    """Whether `predict` gives `cluster_logits` under `config` (the "clusters" protocol applies)."""
    return cls.fine_count_field is not None

  @classmethod
  def has_classifier(cls, config: ml_collections.ConfigDict) -> bool:
    """Whether `predict` can give `coarse_logits` under `config` (the "classification" protocol applies).

    False for a method that learns no classifier at all (self-supervised pretraining).
    """
    return True

  @classmethod
  def api_views(cls, is_image: bool) -> tuple[str, ...]:
    """The views `coarse2fine.fit` trains with: a pad-2 crop and flip for images, none for vectors."""
    return (("crop_flip",) if is_image else ("none",)) * (2 if cls.two_views else 1)

  @classmethod
  def api_defaults(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> None:
    """Sets the method's own fields of `coarse2fine.fit`'s default config (before the user's overrides)."""

  @classmethod
  def api_derived(cls, config: ml_collections.ConfigDict, data: HierarchicalData) -> dict[str, Any]:
    """"a.b" -> value: fields that follow from the budget and the data, filled in after the user's overrides.

    Raises ValueError where the budget cannot work for the method.
    """
    return {}

  @property
  def views(self) -> tuple[str, ...]:
    """Augmentation kind of each view the loss expects (`Batch.views[:, v]`)."""
    return self._views

  def model(self) -> nn.Module:
    """The Flax module whose parameters are trained (`self._model`, built in the constructor)."""
    if self._model is None:
      raise NotImplementedError(f"{type(self).__name__} builds no model: set self._model in its constructor.")
    return self._model

  def init_variables(self, rng: jax.Array, sample_inputs: jax.Array) -> dict:
    """Initial `{"params", "batch_stats"}` from one example batch `[b, ...]`."""
    variables = self.model().init(rng, sample_inputs, train=False)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}

  def init_extra(self, variables: dict) -> Any:
    """Initial method state (EMA params, queues, ...); empty by default."""
    return {}

  @abc.abstractmethod
  def loss(self, params: Any, state: TrainState, batch: Batch, rng: jax.Array) -> tuple[jax.Array, LossAux]:
    """Scalar loss on the global batch and its `LossAux`."""

  def after_update(self, state: TrainState) -> TrainState:
    """Runs in the step after the optimizer update (EMA updates, queue pointers, ...)."""
    return state

  def host_hooks(self) -> list[HostHook]:
    return []

  def neighbour_sampling(self, run_features: Optional[RunFeatures] = None) -> Optional[NeighbourSampling]:
    """Neighbours the input pipeline loads with each training example (`Batch.neighbours`), or None.

    `run_features(workdir)` reads another run's features on this method's training split, for
    neighbours mined on them (the loop passes `engine.runs.features_from_checkpoint`).
    """
    return None

  def discovered(self, state: TrainState) -> Optional[Discovered]:
    """The fine classes the method found (`cluster_logits`' classes) and their coarse parents, or None."""
    return None

  @abc.abstractmethod
  def predict(self, state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
    """Evaluation outputs for inputs `[b, ...]`.

    Keys (all optional but `coarse_logits`, which only a method whose `has_classifier` is False
    leaves out): `coarse_logits` [b, C], `fine_logits`
    [b, K], `cluster_logits` [b, r] (discovered classes, with `discovered`), `embedding`
    [b, e], `features` [b, D].
    """


NONFINITE = "nonfinite"  # step metric: 1 where the loss, the gradient norm or the new state holds a NaN or inf


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(method: Method, schedule: optax.Schedule, augment: Callable[[Batch], Batch]):
  """The step function `(state, batch) -> (state, metrics)` to be jitted.

  `augment` (`device_augment.DeviceAugment`) turns the pipeline's uint8 views into the float
  views the loss reads, on the device and on the whole global batch.
  """

  def train_step(state: TrainState, batch: Batch):
    batch = augment(batch)
    grad_fn = jax.value_and_grad(method.loss, has_aux=True)
    (loss, aux), grads = grad_fn(state.params, state, batch, state.step_rng())
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        batch_stats=aux.batch_stats,
        extra=aux.extra,
    )
    new_state = method.after_update(new_state)
    metrics = dict(aux.metrics)
    metrics["train/loss"] = loss
    metrics["train/learning_rate"] = schedule(state.step)
    metrics["train/grad_norm"] = optax.tree.norm(grads)
    # One flag for the loop's finiteness check (engine.loop): cheap reductions over the new state.
    metrics[NONFINITE] = jnp.logical_not(_all_finite((loss, metrics["train/grad_norm"], new_state.params,
                                                      new_state.batch_stats, new_state.opt_state)))
    return new_state, metrics

  return train_step


def coarse_logits_from_fine(fine_logits: jax.Array, fine_to_coarse: np.ndarray, num_coarse: int) -> jax.Array:
  """log p(coarse) = logsumexp of the log-probabilities of its fine children.

  fine_logits: [b, K]; returns [b, C] log-probabilities.
  """
  relation = jax.nn.one_hot(jnp.asarray(fine_to_coarse), num_coarse, dtype=bool)  # [K, C]
  log_probs = jax.nn.log_softmax(fine_logits, axis=-1)[:, :, None]  # [b, K, 1]
  return jax.nn.logsumexp(jnp.where(relation[None], log_probs, -jnp.inf), axis=1)
