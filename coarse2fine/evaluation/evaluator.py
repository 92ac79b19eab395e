"""Runs the evaluation protocols a config names on a train state.

Protocols (`eval.protocols`), each adding flat metrics in percent:
  classification: `test/coarse_top1`, `test/fine_top1` (and top-5 with more than 5 classes),
  fewshot: SCGM's cross-granularity episodes, `fewshot/5way_1shot`, `..._ci95`, ...,
  retrieval: MaskCon's Recall@K on fine labels, `retrieval/recall@1`, ... (on a test split of classes unseen in
    training, `data.split_protocol="unseen_classes"`, the zero-shot retrieval score; `classification` is refused
    there by `feasibility.check_protocols`),
  kmeans: k-means discovery on the embeddings: `discovery/kmeans_*` (overall, K clusters,
    parents by majority coarse label), `discovery/kmeans_within_*` (per coarse class), and
    `discovery/acc`, `discovery/ari`, ... = the overall ones,
  clusters: the method's own discovered classes (`cluster_logits` and `relation`, e.g.
    SCGM's sub-classes): `discovery/clusters_*` plus `discovery/clusters_purity`
    (homogeneity, as SCGM's code reports it); these become the headline `discovery/*`. With
    the method's own relation, also `discovery/clusters_within_{acc,macro_acc,ari,nmi}`: each
    example's class chosen among its coarse label's children (`kmeans_within`'s setting).
Embeddings come from the method's `predict` (`eval.features`: "embedding" or "features"),
computed sharded over the mesh.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn.metrics import homogeneity_score

from coarse2fine.data.augmentation import device as device_augment
from coarse2fine.data.augmentation import presets as augment_lib
from coarse2fine.data.batch import Batch, example_ids
from coarse2fine.data.pipeline import eval_batches
from coarse2fine.data.splits import HierarchicalData, Split
from coarse2fine.engine import random_streams, sharding
from coarse2fine.engine.progress import work_bar
from coarse2fine.evaluation import discovery, fewshot, kmeans, retrieval
from coarse2fine.evaluation.classification import topk_accuracy
from coarse2fine.evaluation.discovery import relation_from_clusters
from coarse2fine.evaluation.feasibility import FEATURES, PROTOCOLS, check_names  # noqa: F401 (re-exported)


def make_predict_step(method, mesh, data: HierarchicalData) -> Callable:
  """jit of `method.predict` on raw inputs sharded along `data` (uint8 images or vectors, normalised on
  the device with the dataset's mean and std), outputs replicated."""
  mean, std = np.asarray(data.mean, np.float32), np.asarray(data.std, np.float32)

  def predict(state, inputs):
    return method.predict(state, device_augment.normalise(inputs, mean, std))

  return jax.jit(predict, out_shardings=sharding.replicated(mesh))


def predict_split(predict_step, state, split: Split, mesh, batch_size: int,
                  keys=("coarse_logits", "fine_logits"), show_progress: bool = False) -> dict[str, np.ndarray]:
  """Concatenated predictions `{key: [N, ...]}` for every example of `split`, in order.

  Batches travel as stored (uint8 images); the padding rows of the last one are cut off here.
  `show_progress`: a bar of the batches on a terminal (`engine.progress.work_bar`).
  """
  batch_size = sharding.eval_batch_size(batch_size, mesh)  # on any device count: the last batch is padded anyway
  collected: dict[str, list] = {}
  with work_bar("predicting", -(-len(split) // batch_size), "batch", enabled=show_progress) as bar:
    for batch in eval_batches(split, batch_size, process_index=jax.process_index(),
                              process_count=jax.process_count()):
      outputs = predict_step(state, sharding.global_batch(batch["inputs"], mesh))
      for key in keys:
        if key in outputs:
          collected.setdefault(key, []).append(np.asarray(jax.device_get(outputs[key])))
      bar.update(1)
  return {key: np.concatenate(chunks)[: len(split)] for key, chunks in collected.items()}


def classification_metrics(predictions: dict[str, np.ndarray], split: Split, prefix: str) -> dict[str, float]:
  """`{prefix}/coarse_top1` (and top5 when there are more than 5 classes), same for fine."""
  metrics = {}
  for level, labels in (("coarse", split.coarse), ("fine", split.fine)):
    logits = predictions.get(f"{level}_logits")
    if logits is None:
      continue
    metrics[f"{prefix}/{level}_top1"] = topk_accuracy(logits, labels, 1)
    if logits.shape[1] > 5:
      metrics[f"{prefix}/{level}_top5"] = topk_accuracy(logits, labels, 5)
  return metrics


def fewshot_settings(eval_config: ml_collections.ConfigDict) -> list[tuple[str, int | None, int]]:
  """("5way", 5, k), ("allway", None, k), ("intra", None, k) for each shot k of the config."""
  settings = []
  for shot in eval_config.fewshot_shots:
    for name in eval_config.fewshot_settings:
      if name.endswith("way") and name[:-3].isdigit():
        settings.append((name, int(name[:-3]), shot))
      elif name in ("allway", "intra"):
        settings.append((name, None, shot))
      else:
        raise ValueError(f"Unknown eval.fewshot_settings entry {name!r}; use e.g. '5way', 'allway', 'intra'.")
  return settings


class Evaluator:
  """Evaluates a state with the protocols in `config.eval.protocols`.

  Holds the jitted predict step, so repeated evaluations during training compile once.
  `show_progress`: bars of the batches predicted and the few-shot episodes solved, on a terminal;
  by default as `config.logging.progress` says, on the main process.
  """

  def __init__(self, method, data: HierarchicalData, mesh, config: ml_collections.ConfigDict,
               show_progress: bool | None = None):
    check_names(config.eval)  # what the data allow is checked where the run is set up (`check_protocols`)
    if show_progress is None:
      show_progress = jax.process_index() == 0 and config.logging.get("progress", True)
    self.show_progress = show_progress
    self.method = method
    self.data = data
    self.mesh = mesh
    self.config = config
    self.eval_config = config.eval
    self.predict_step = make_predict_step(method, mesh, data)  # raw inputs
    self._predict_normalised = jax.jit(method.predict, out_shardings=sharding.replicated(mesh))
    self._fewshot_augment = None
    if "fewshot" in config.eval.protocols and data.is_image and config.eval.fewshot_augmented > 0:
      views = augment_lib.make_views(config.data.augment, (config.eval.fewshot_augment,), data.input_shape)
      self._fewshot_augment = views[0].host
      self._fewshot_device = device_augment.jitted(augment_lib.device_augment(
          views, data.mean, data.std, seed=config.seed, stream=random_streams.EVAL_AUGMENT_STREAM))

  def _needs_embeddings(self) -> bool:
    return bool({"fewshot", "retrieval", "kmeans"} & set(self.eval_config.protocols))

  def _needs_fine_labels(self) -> bool:
    return bool({"fewshot", "retrieval", "kmeans", "clusters"} & set(self.eval_config.protocols))

  def embed(self, state, inputs: np.ndarray) -> np.ndarray:
    """[n, e] embeddings of raw inputs: uint8 images, [0, 1] float images, or vectors."""
    return self._embed(self.predict_step, state, np.asarray(inputs))

  def _embed(self, predict, state, x: np.ndarray) -> np.ndarray:
    batch = sharding.eval_batch_size(self.eval_config.batch_size, self.mesh)
    n = len(x)
    padded = np.concatenate([x, np.zeros((-n % batch, *x.shape[1:]), x.dtype)])
    chunks = []
    for start in range(0, len(padded), batch):
      block = sharding.global_batch(padded[start:start + batch], self.mesh)
      chunks.append(np.asarray(jax.device_get(predict(state, block)[self.eval_config.features])))
    return np.concatenate(chunks)[:n]

  def _augment_images(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Support copies of uint8 `images` [n, H, W, C]: host stage with `rng`, device stage keyed from it.

    Returns normalised float32 views [n, h, w, C], for `_embed(self._predict_normalised, ...)`.
    """
    views = np.stack([self._fewshot_augment(image, rng) for image in images])[:, None]
    n = len(views)
    batch = Batch(views=views, coarse=np.zeros(n, np.int32), fine=np.zeros(n, np.int32), index=np.zeros(n, np.int32),
                  dataset=np.zeros(n, np.int32), example=example_ids(0, np.arange(n)))
    salt = jnp.asarray(rng.integers(1 << 31), jnp.int32)
    return np.asarray(self._fewshot_device(jax.device_put(batch), salt).views[:, 0])

  def __call__(self, state, split_name: str = "test") -> dict[str, float]:
    split = getattr(self.data, split_name)
    cfg = self.eval_config
    protocols = set(cfg.protocols)
    metrics: dict[str, float] = {}
    keys = ["coarse_logits", "fine_logits", "cluster_logits"] + ([cfg.features] if self._needs_embeddings() else [])
    predictions = predict_split(self.predict_step, state, split, self.mesh, cfg.batch_size, keys, self.show_progress)
    if "classification" in protocols:
      metrics.update(classification_metrics(predictions, split, split_name))
    if not self._needs_fine_labels():
      return metrics
    if (split.fine < 0).any():
      raise ValueError(f"Protocols {sorted(protocols - {'classification'})} need fine labels on the "
                       f"{split_name} split; drop them from eval.protocols.")
    taxonomy = self.data.taxonomy
    if "clusters" in protocols:
      metrics.update(self._cluster_metrics(state, predictions, split))
    if not self._needs_embeddings():
      return metrics
    embeddings = predictions[cfg.features]
    if "retrieval" in protocols:
      metrics.update(retrieval.recall_at_k(embeddings, split.fine, ks=tuple(cfg.retrieval_ks)))
    if "kmeans" in protocols:
      # An unseen-class test split holds only part of the taxonomy's fine classes: one cluster per class it holds.
      unseen = split_name == "test" and self.data.unseen_test_classes
      default_clusters = len(np.unique(split.fine)) if unseen else taxonomy.num_fine
      found = kmeans.kmeans_metrics(embeddings, split.coarse, split.fine, taxonomy.fine_to_coarse,
                                    num_clusters=cfg.kmeans_clusters or default_clusters, seed=self.config.seed)
      metrics.update(found)
      # The headline discovery/* figures of an embedding-only method are those of overall
      # k-means with K clusters, as in FALCON's tables (e.g. "ANCOR + K-Means").
      prefix = "discovery/kmeans_"
      if "clusters" not in protocols:  # a method's own clusters are its headline figures
        metrics.update({"discovery/" + k[len(prefix):]: v for k, v in found.items()
                        if k.startswith(prefix) and not k.startswith(prefix + "within_")})
    if "fewshot" in protocols:
      settings = fewshot_settings(cfg)
      with work_bar("few-shot episodes", len(settings) * cfg.fewshot_episodes, "episode",
                    enabled=self.show_progress) as bar:
        metrics.update(fewshot.evaluate_fewshot(
            lambda x: self._embed(self._predict_normalised, state, x), split.inputs, split.fine,
            taxonomy.fine_to_coarse, settings, num_augmented=cfg.fewshot_augmented if self.data.is_image else 0,
            augment_fn=self._augment_images if self._fewshot_augment is not None else None,
            num_episodes=cfg.fewshot_episodes, seed=self.config.seed, n_query=cfg.fewshot_queries,
            pool_embeddings=embeddings, on_episodes=bar.update))
    return metrics

  def _cluster_metrics(self, state, predictions: dict[str, np.ndarray], split: Split) -> dict[str, float]:
    """Discovery metrics of the method's own classes: argmax of `cluster_logits`, parents from `discovered`."""
    if "cluster_logits" not in predictions:
      raise ValueError(f"eval.protocols has 'clusters', but method {self.config.method!r} discovers no "
                       f"classes (no cluster_logits); use 'kmeans' instead.")
    pred = predictions["cluster_logits"].argmax(1)
    discovered = self.method.discovered(state)
    relations = discovered.relations if discovered is not None else []
    if discovered is not None:
      relation = discovered.relation
    else:  # a method without parents (SCAN): each cluster's majority coarse label here
      relation = relation_from_clusters(pred, split.coarse, predictions["cluster_logits"].shape[1],
                                        self.data.num_coarse)
    found = discovery.discovery_metrics(pred, split.fine, relation, self.data.taxonomy.fine_to_coarse,
                                        tag="clusters_")
    found["discovery/clusters_purity"] = 100.0 * float(homogeneity_score(split.fine, pred))
    found.update({"discovery/" + k[len("discovery/clusters_"):]: v for k, v in found.items()})
    if discovered is not None:  # with the coarse labels known, as kmeans_within clusters: a class of its children
      found.update(discovery.within_coarse_metrics(predictions["cluster_logits"], split.coarse, split.fine, relation,
                                                   self.data.taxonomy.fine_to_coarse))
    # Several taxonomies: the other taxonomies' M against their true parents, same class matching.
    for d in range(1, len(relations)):
      other = discovery.discovery_metrics(pred, split.fine, relations[d], self.data.taxonomies[d].fine_to_coarse,
                                          tag=f"clusters_tax{d}_")
      found.update({k: v for k, v in other.items() if k.endswith(("relation_acc", "ged", "ged_invariant"))})
    return found
