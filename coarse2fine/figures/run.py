"""The figures of one run: restore its newest checkpoint, predict a split, draw (`plot_run`)."""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.splits import HierarchicalData, Split
from coarse2fine.engine import runs
from coarse2fine.evaluation import discovery
from coarse2fine.evaluation.evaluator import make_predict_step, predict_split
from coarse2fine.evaluation.kmeans import kmeans_discovery
from coarse2fine.figures import clusters as clusters_lib
from coarse2fine.figures import curves as curves_lib
from coarse2fine.figures import embedding as embedding_lib
from coarse2fine.figures import relation as relation_lib
from coarse2fine.figures.common import contingency, palette, short, subsample_indices
from coarse2fine.methods import Discovered
from coarse2fine.methods.common.normalize import l2_normalize_host


class RunOutputs(NamedTuple):
  """What the figures of a run are drawn from.

  predictions: {map space: [N, e], "cluster_logits": [N, r] if the method has them} on `split`;
  discovered: the method's `discovered(state)` (classes, parents, prototypes) or None.
  """

  config: ml_collections.ConfigDict
  data: HierarchicalData
  split: Split
  predictions: dict
  discovered: Optional[Discovered]
  split_name: str = "test"

  @property
  def relation(self) -> Optional[np.ndarray]:
    return None if self.discovered is None else np.asarray(self.discovered.relation)

  @property
  def map_space(self) -> str:
    """The outputs the map shows: where the method's prototypes live, else `eval.features`."""
    if self.discovered is not None and self.discovered.prototypes:
      return self.discovered.prototype_space
    return self.config.eval.features

  @property
  def fine_known(self) -> bool:
    """Whether any example of the split has a known fine label."""
    return bool((np.asarray(self.split.fine) >= 0).any())

  @property
  def name(self) -> str:
    return f"{self.config.method} on {self.config.data.name}"


def load_outputs(workdir: str, split: str = "test") -> RunOutputs:
  """Restores the run in `workdir` and predicts its `split` ("test" or "val"), sharded over the mesh."""
  config = runs.load_run_config(workdir)
  config.eval.split = split  # setup_run checks that the split exists
  run = runs.setup_run(config, for_training=False, recorded_estimate=runs.read_estimate(workdir), workdir=workdir)
  state = runs.restore_newest(workdir, run.config, run.state)  # the checkpoint records an estimated count resolved
  config = run.config
  split_data = getattr(run.data, split)
  outputs = RunOutputs(config, run.data, split_data, {}, run.method.discovered(state), split)
  predictions = predict_split(make_predict_step(run.method, run.mesh, run.data), state, split_data, run.mesh,
                              config.eval.batch_size, keys=(outputs.map_space, "cluster_logits"))
  return outputs._replace(predictions=predictions)


def matching(outputs: RunOutputs) -> Optional[relation_lib.Matching]:
  """The discovered classes lined up with the fine classes (None for methods without cluster_logits)."""
  logits = outputs.predictions.get("cluster_logits")
  if logits is None:
    return None
  return relation_lib.match_clusters(logits.argmax(1), outputs.split.fine, logits.shape[1],
                                     outputs.data.taxonomy.num_fine)


# ----------------------------------------------------------------------------- embedding maps


def embedding_panels(outputs: RunOutputs, index: np.ndarray, points: np.ndarray,
                     seed: int) -> list[embedding_lib.Panel]:
  """The discovered-class panel and the true-class panel of the examples `index` (embeddings `points`)."""
  taxonomy = outputs.data.taxonomy
  fine = np.asarray(outputs.split.fine)[index]
  coarse = np.asarray(outputs.split.coarse)[index]
  match = matching(outputs)
  if match is not None:
    pred = outputs.predictions["cluster_logits"][index].argmax(1)
    r = len(match.order)
    names = [f"{k}: {taxonomy.fine_names[f]}" if m and outputs.fine_known else f"{k}"
             for k, (f, m) in enumerate(zip(match.fine, match.matched))]
    method_title = (f"discovered classes: {outputs.config.method}'s own {r} clusters"
                    + (" (named by their Hungarian-matched fine class)" if outputs.fine_known else ""))
  else:
    children = np.bincount(taxonomy.fine_to_coarse, minlength=taxonomy.num_coarse)
    r = int(children.sum())
    pred = kmeans_discovery(points, coarse, r, children, seed)["within_pred"]
    match = relation_lib.match_clusters(pred, fine, r, taxonomy.num_fine)
    names = [f"{k}" for k in range(r)]
    method_title = (f"discovered classes: k-means within each coarse class ({r} clusters; "
                    f"{outputs.config.method} has no clusters of its own)")
  if outputs.fine_known:
    fine_colours = palette(taxonomy.num_fine)
    left = embedding_lib.Panel(pred, names, embedding_lib.cluster_colours(match.fine, match.matched, fine_colours),
                               method_title)
    right = embedding_lib.Panel(fine, [short(n, 14) for n in taxonomy.fine_names], fine_colours,
                                f"true fine class ({taxonomy.num_fine} classes)")
  else:
    left = embedding_lib.Panel(pred, names, palette(r), method_title)
    right = embedding_lib.Panel(coarse, list(taxonomy.coarse_names), palette(taxonomy.num_coarse),
                                f"coarse class ({taxonomy.num_coarse}; no fine labels are known)")
  return [left, right]


def write_embeddings(outputs: RunOutputs, out: str, projections: tuple[str, ...], max_points: int,
                     seed: int) -> list[str]:
  """embedding_<projection>.png of a seeded subset of at most `max_points` examples, one per projection."""
  index = subsample_indices(len(outputs.split), max_points, seed)
  points = np.asarray(outputs.predictions[outputs.map_space][index])
  prototypes = outputs.discovered.prototypes if outputs.discovered is not None else ()
  vectors = None
  if prototypes:
    # Prototypes are compared with examples by cosine only: put all of them on the unit sphere.
    points = l2_normalize_host(points, np.float64)
    vectors = l2_normalize_host(np.concatenate([p.vectors for p in prototypes]), np.float64)
  panels = embedding_panels(outputs, index, points, seed)
  written = []
  for projection in projections:
    xy, prototypes_xy = embedding_lib.project(points, projection, vectors, seed)
    drawn, start = [], 0
    for p in prototypes:
      drawn.append(embedding_lib.Means(p.label, prototypes_xy[start:start + len(p.vectors)]))
      start += len(p.vectors)
    title = (f"{outputs.name}: {embedding_lib.PROJECTION_NAMES[projection]} of {len(index)} "
             f"{outputs.split_name} examples (their {outputs.map_space!r} outputs)")
    written.append(embedding_lib.plot_embedding(xy, panels, storage.join(out, f"embedding_{projection}.png"),
                                                title, drawn))
  return written


# ----------------------------------------------------------------------------- relation


def write_relation(outputs: RunOutputs, path: str) -> str:
  """relation.png: discovered classes x true fine classes (or coarse classes without fine labels), and the
  learned parents."""
  taxonomy = outputs.data.taxonomy
  relation = outputs.relation
  r = len(relation)
  match = matching(outputs)
  coarse_names = list(taxonomy.coarse_names)
  parent = relation.argmax(1)
  if match is None:  # a relation without cluster predictions: the learned parents alone
    return relation_lib.plot_relation(None, relation, [f"class {k}" for k in range(r)], [], coarse_names,
                                      np.full(r, -1), path, f"{outputs.name}: the learned coarse parent of each "
                                      f"of its {r} discovered classes", "")
  if outputs.fine_known:
    order = match.order
    counts = match.counts[order]
    names = [relation_lib.row_label(int(k), taxonomy.fine_names[f], bool(m)) if f >= 0
             else f"cluster {k} (no labelled examples)" for k, f, m in zip(order, match.fine[order], match.matched[order])]
    cols = [f"{short(n, 16)} ({short(taxonomy.coarse_names[c], 10)})"
            for n, c in zip(taxonomy.fine_names, taxonomy.fine_to_coarse)]
    expected = np.where(match.fine[order] >= 0, taxonomy.fine_to_coarse[np.maximum(match.fine[order], 0)], -1)
    extra = r - int(match.matched.sum())
    how = ("rows: discovered classes ordered to match the fine classes (Hungarian matching)" if not extra else
           f"rows: {r} discovered classes for {taxonomy.num_fine} fine classes, grouped by the fine class they "
           f"match (Hungarian matching;\nthe {extra} left over join the fine class most of their examples have)")
    title = (f"{outputs.name}: {how}\nright: green = the true coarse parent of the row's fine class, red = "
             "another")
    label = "true fine class (its coarse class)"
  else:
    pred = outputs.predictions["cluster_logits"].argmax(1)
    counts_by_id = contingency(pred, outputs.split.coarse, r, taxonomy.num_coarse)
    sizes = counts_by_id.sum(1)
    order = np.asarray(sorted(range(r), key=lambda k: (parent[k], -sizes[k], k)), np.int64)
    counts = counts_by_id[order]
    names = [f"cluster {k}" for k in order]
    cols = [short(n, 16) for n in coarse_names]
    expected = np.where(sizes[order] > 0, counts.argmax(1), -1)
    title = (f"{outputs.name}: no fine labels are known, so the {r} discovered classes are shown against the "
             "true coarse classes\nright: green = the coarse class most of its examples have, red = another")
    label = "true coarse class"
  return relation_lib.plot_relation(counts, relation[order], names, cols, coarse_names, expected, path, title,
                                    label)


# ----------------------------------------------------------------------------- clusters grid


def write_clusters(outputs: RunOutputs, path: str, max_rows: int = clusters_lib.MAX_CLUSTER_ROWS) -> str:
  """clusters.png: the `max_rows` most populated discovered classes and their most confident images."""
  logits = outputs.predictions["cluster_logits"]
  pred = logits.argmax(1)
  relation = outputs.relation
  if relation is None:  # no learned parents (SCAN): each cluster's majority coarse label
    relation = discovery.relation_from_clusters(pred, outputs.split.coarse, logits.shape[1],
                                                outputs.data.num_coarse)
  taxonomy = outputs.data.taxonomy
  rows = clusters_lib.cluster_rows(logits, max_rows)
  labels = [clusters_lib.row_label(k, taxonomy.coarse_names[int(np.asarray(relation[k]).argmax())],
                                   clusters_lib.purity(np.asarray(outputs.split.fine)[pred == k]),
                                   taxonomy.fine_names) for k, _ in rows]
  populated = len(np.unique(pred))
  total = logits.shape[1]
  if len(rows) == total:
    shown = f"all {total} discovered classes, largest first"
  elif len(rows) == populated:
    shown = f"the {populated} discovered classes with examples (of {total}), largest first"
  else:
    shown = f"the {len(rows)} largest of {populated} discovered classes with examples ({total} in all)"
  purity_note = ("'mostly': the share of the row's majority fine class" if outputs.fine_known
                 else "'mostly: ?': no fine labels are known")
  title = (f"{outputs.name}: {shown}, each with its {clusters_lib.IMAGES_PER_ROW} most confident {outputs.split_name} images\n"
           f"n = {outputs.split_name} examples in the class; {purity_note}")
  return clusters_lib.plot_clusters(outputs.split.inputs, rows, labels, path, title)


# ----------------------------------------------------------------------------- everything


def plot_run(workdir: str, out: Optional[str] = None, split: str = "test", max_points: int = 2000,
             seed: int = 0, max_rows: int = clusters_lib.MAX_CLUSTER_ROWS, projection: str = "auto") -> list[str]:
  """Writes the figures of the run in `workdir` to `out` (default workdir/plots); returns their paths.

  embedding_tsne.png and/or embedding_umap.png (`projection`: tsne, umap, both, or auto: both when
  umap-learn is installed, else t-SNE with a logged note), relation.png (methods with discovered classes),
  clusters.png (image data with cluster predictions), curves.png and diagnostics.png (from metrics.jsonl).
  max_points: examples in the maps (a seeded random subset; the t-SNE/UMAP fits dominate the cost);
  max_rows: discovered classes in the clusters grid (the most populated ones).
  """
  projections, note = embedding_lib.resolve_projections(projection)
  if note:
    logging.getLogger(__name__).warning(note)
  out = out or storage.join(workdir, "plots")
  outputs = load_outputs(workdir, split)
  written = write_embeddings(outputs, out, projections, max_points, seed)
  if outputs.relation is not None:
    written.append(write_relation(outputs, storage.join(out, "relation.png")))
  if outputs.data.is_image and "cluster_logits" in outputs.predictions:
    written.append(write_clusters(outputs, storage.join(out, "clusters.png"), max_rows))
  metrics_path = storage.join(workdir, "metrics.jsonl")
  if storage.isfile(metrics_path):
    series = curves_lib.read_curves(metrics_path)
    if "train/loss" in series:
      written.append(curves_lib.plot_curves(series, storage.join(out, "curves.png"),
                                            f"{outputs.name}: training and evaluation curves"))
    if curves_lib.diagnostic_names(series):
      written.append(curves_lib.plot_diagnostics(series, storage.join(out, "diagnostics.png"),
                                                 f"{outputs.name}: run diagnostics (settings, health, timing)"))
  return written
