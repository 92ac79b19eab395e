"""Figures of a finished run (the command line is `python -m coarse2fine.plot`, coarse2fine/cli/plot.py).

`plot_run(workdir, out)` restores the newest checkpoint of the run in `workdir` (its `config.json`
names the method and data), predicts the split, and writes PNGs to `out`, each through a temporary file and a
rename (never half-written):
  embedding_tsne.png: t-SNE of the `eval.features` embeddings, coloured by coarse class;
    methods with prototypes (SCGM's super-class and sub-class means) add them, embedded in the
    same fit, and the map shows their space,
  relation.png: the learned [r, C] relation next to the true fine-to-coarse one, discovered
    classes in Hungarian order (methods whose `discovered` gives one),
  clusters.png: the most confident images of the most populated discovered classes
    (image data with `cluster_logits`),
  curves.png: training curves from `metrics.jsonl`.
The functions that draw take arrays, so they work on any run's outputs.
Needs matplotlib: `pip install -e ".[plot]"`.
"""

from __future__ import annotations

import io
import json
import math
from typing import NamedTuple, Optional, Sequence

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.splits import HierarchicalData, Split
from coarse2fine.engine import runs
from coarse2fine.evaluation import discovery
from coarse2fine.evaluation.evaluator import make_predict_step, predict_split
from coarse2fine.methods import Discovered
from coarse2fine.methods.common.normalize import l2_normalize_host

DPI = 100  # pixels per inch of every PNG: figure sizes below are in inches
MAX_CLUSTER_ROWS = 20
IMAGES_PER_ROW = 8
CELL_INCHES = 1.0  # one image of the clusters grid
LABEL_INCHES = 3.0  # the label column of the clusters grid
TITLE_INCHES = 0.5  # above the clusters grid
EMBEDDING_SIZE = (8.0, 7.0)
RELATION_SIZE = (11.0, 5.5)
CURVES_WIDTH, LOSS_HEIGHT, PANEL_HEIGHT, PANEL_COLUMNS = 12.0, 3.5, 2.4, 4
MAX_TICK_LABELS = 40  # more rows or columns than this go unlabelled


# ----------------------------------------------------------------------------- files


def _pyplot():
  """matplotlib.pyplot on the Agg backend (files only, no display)."""
  try:
    import matplotlib
  except ImportError as e:
    raise ImportError('coarse2fine.plot needs matplotlib: pip install -e ".[plot]"') from e
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path: str) -> str:
  """Writes `fig` as a PNG of DPI pixels per inch, never half-written (`storage.write_bytes_atomically`); closes it."""
  try:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    storage.write_bytes_atomically(path, buffer.getvalue())
  finally:
    _pyplot().close(fig)
  return path


def coarse_colours(num_coarse: int) -> np.ndarray:
  """[C, 4] RGBA: tab10 / tab20 for few coarse classes, evenly spread turbo beyond."""
  plt = _pyplot()
  if num_coarse <= 20:
    cmap = plt.get_cmap("tab10" if num_coarse <= 10 else "tab20")
    return np.asarray([cmap(c) for c in range(num_coarse)])
  return plt.get_cmap("turbo")(np.linspace(0, 1, num_coarse))


# ----------------------------------------------------------------------------- embedding map


class Means(NamedTuple):
  """Learned vectors drawn in the embedding map: [m, 2] positions and the [m] coarse class of each."""

  label: str
  points2d: np.ndarray
  coarse: np.ndarray


def subsample_indices(n: int, max_points: int, seed: int) -> np.ndarray:
  """Sorted indices of a seeded random subset of at most `max_points` of `n` examples."""
  if n <= max_points:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def tsne_coordinates(points: np.ndarray, means: Optional[np.ndarray] = None,
                     seed: int = 0) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """2-D t-SNE of [n, e] `points` and [m, e] `means` in one fit: ([n, 2], [m, 2] or None)."""
  from sklearn.manifold import TSNE

  stacked = np.concatenate([points, means]) if means is not None else np.asarray(points)
  # sklearn needs perplexity < samples; its default 30 for all but tiny inputs.
  perplexity = max(1.0, min(30.0, (len(stacked) - 1) / 3))
  xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
      stacked.astype(np.float32))
  n = len(points)
  return xy[:n], (xy[n:] if means is not None else None)


def sibling_rank(fine: np.ndarray, fine_to_coarse: np.ndarray) -> np.ndarray:
  """[n] position of each example's fine class among the fine classes of its coarse class."""
  fine_to_coarse = np.asarray(fine_to_coarse)
  rank = np.zeros(len(fine_to_coarse), np.int64)
  for c in np.unique(fine_to_coarse):
    children = np.flatnonzero(fine_to_coarse == c)
    rank[children] = np.arange(len(children))
  return rank[np.asarray(fine)]


def plot_embedding(points2d: np.ndarray, coarse: np.ndarray, coarse_names: Sequence[str], path: str,
                   marker_ids: Optional[np.ndarray] = None, means: Sequence[Means] = (),
                   title: str = "") -> str:
  """Scatter of [n, 2] points coloured by [n] coarse class, markers by [n] `marker_ids` (e.g. fine
  class within its coarse class); each `Means` as larger edged markers in its coarse colour."""
  plt = _pyplot()
  colours = coarse_colours(len(coarse_names))
  fig, ax = plt.subplots(figsize=EMBEDDING_SIZE, layout="constrained")
  shapes = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")
  marker_ids = np.zeros(len(points2d), np.int64) if marker_ids is None else np.asarray(marker_ids)
  for m in np.unique(marker_ids):
    sel = marker_ids == m
    ax.scatter(points2d[sel, 0], points2d[sel, 1], c=colours[coarse[sel]], marker=shapes[m % len(shapes)],
               s=10, alpha=0.6, linewidths=0)
  for means_set, shape in zip(means, ("*", "P", "D")):
    ax.scatter(means_set.points2d[:, 0], means_set.points2d[:, 1], c=colours[means_set.coarse], marker=shape,
               s=260 if shape == "*" else 130, edgecolors="black", linewidths=1.2, label=means_set.label)
  handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[c], label=name)
             for c, name in enumerate(coarse_names)][:20]  # a longer legend would hide the map
  handles += [plt.Line2D([], [], marker=shape, linestyle="", color="white", markeredgecolor="black",
                         markersize=12, label=m.label) for m, shape in zip(means, ("*", "P", "D"))]
  ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.8)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title or "t-SNE of the embeddings, coloured by coarse class", fontsize=10)
  return save_figure(fig, path)


# ----------------------------------------------------------------------------- relation


def relation_order(cluster_pred: np.ndarray, fine: np.ndarray, num_clusters: int) -> np.ndarray:
  """[r] permutation of the discovered classes: those Hungarian-matched to a fine class, in the
  order of their fine class, then the unmatched ones by id. Examples without a fine label
  (-1) are left out of the matching."""
  known = np.asarray(fine) >= 0
  matching = discovery.hungarian_match(np.asarray(cluster_pred)[known], np.asarray(fine)[known])
  matched = sorted((f, k) for k, f in matching.items() if k < num_clusters)
  head = [k for _, k in matched]
  rest = sorted(set(range(num_clusters)) - set(head))
  return np.asarray(head + rest, np.int64)


def plot_relation(learned: np.ndarray, true: np.ndarray, coarse_names: Sequence[str], fine_names: Sequence[str],
                  path: str, row_ids: Optional[np.ndarray] = None) -> str:
  """Two heatmaps: the learned [r, C] relation (rows already ordered, labelled by `row_ids`) and
  the true [K, C] fine-to-coarse one."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=RELATION_SIZE, layout="constrained")
  row_ids = np.arange(len(learned)) if row_ids is None else np.asarray(row_ids)
  panels = ((learned, "learned: discovered class -> coarse\n(Hungarian order)", [str(k) for k in row_ids]),
            (true, "true: fine class -> coarse", list(fine_names)))
  for ax, (matrix, title, row_labels) in zip(axes, panels):
    ax.imshow(np.asarray(matrix, np.float32), aspect="auto", cmap="Greys", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("coarse class")
    _tick_labels(ax.set_xticks, coarse_names, rotation=90)
    _tick_labels(ax.set_yticks, row_labels)
  return save_figure(fig, path)


def _tick_labels(set_ticks, labels: Sequence[str], rotation: float = 0) -> None:
  """Every tick labelled when there are few, none when there are too many to read."""
  if len(labels) <= MAX_TICK_LABELS:
    set_ticks(np.arange(len(labels)), labels, fontsize=6, rotation=rotation)
  else:
    set_ticks([])


# ----------------------------------------------------------------------------- clusters grid


def softmax_confidence(logits: np.ndarray) -> np.ndarray:
  """[n] highest softmax probability of each row of [n, r] logits."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(1, keepdims=True)
  p = np.exp(z)
  return (p / p.sum(1, keepdims=True)).max(1)


def cluster_rows(cluster_logits: np.ndarray, max_rows: int = MAX_CLUSTER_ROWS,
                 per_row: int = IMAGES_PER_ROW) -> list[tuple[int, np.ndarray]]:
  """[(cluster, example indices)]: the `max_rows` most populated clusters (ties: lower id first),
  each with its `per_row` most confident members (softmax probability), most confident first."""
  pred = np.asarray(cluster_logits).argmax(1)
  confidence = softmax_confidence(cluster_logits)
  counts = np.bincount(pred, minlength=cluster_logits.shape[1])
  populated = [k for k in np.argsort(-counts, kind="stable") if counts[k] > 0][:max_rows]
  rows = []
  for k in populated:
    members = np.flatnonzero(pred == k)
    rows.append((int(k), members[np.argsort(-confidence[members], kind="stable")[:per_row]]))
  return rows


def majority(labels: np.ndarray) -> int:
  """The most frequent non-negative label (lowest on ties), or -1 when there is none."""
  labels = np.asarray(labels)
  labels = labels[labels >= 0]
  return int(np.bincount(labels).argmax()) if labels.size else -1


def clusters_figure_size(num_rows: int, per_row: int = IMAGES_PER_ROW) -> tuple[float, float]:
  """(width, height) in inches of the clusters grid."""
  return LABEL_INCHES + per_row * CELL_INCHES, TITLE_INCHES + num_rows * CELL_INCHES


def as_display_image(image: np.ndarray) -> np.ndarray:
  """[H, W] or [H, W, 3] in [0, 1] from a uint8 or float [H, W, C] image."""
  x = np.asarray(image)
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else np.clip(x.astype(np.float32), 0, 1)
  return x[..., 0] if x.shape[-1] == 1 else x[..., :3]


def plot_clusters(images: np.ndarray, rows: list[tuple[int, np.ndarray]], row_labels: Sequence[str],
                  path: str, per_row: int = IMAGES_PER_ROW) -> str:
  """Grid: one row per (cluster, indices) of `rows`, its label, then images[indices] ([N, H, W, C])."""
  plt = _pyplot()
  width, height = clusters_figure_size(len(rows), per_row)
  fig = plt.figure(figsize=(width, height))
  fig.suptitle("discovered classes: most confident test images", fontsize=10, y=1 - 0.15 / height)
  for r, ((_, indices), label) in enumerate(zip(rows, row_labels)):
    top = 1 - (TITLE_INCHES + r * CELL_INCHES) / height
    fig.text(0.1 / width, top - 0.5 * CELL_INCHES / height, label, fontsize=8, va="center")
    for j in range(per_row):
      ax = fig.add_axes(((LABEL_INCHES + j * CELL_INCHES + 0.05) / width, top - 0.95 * CELL_INCHES / height,
                         0.9 * CELL_INCHES / width, 0.9 * CELL_INCHES / height))
      ax.set_axis_off()
      if j < len(indices):
        ax.imshow(as_display_image(images[indices[j]]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  return save_figure(fig, path)


# ----------------------------------------------------------------------------- curves


def read_curves(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{name: ([s] int64 steps, [s] float64 values)} of every scalar in a metrics.jsonl, by step.

  A step logged twice (a run resumed from a checkpoint before it) keeps its last value.
  """
  by_name: dict[str, dict[int, float]] = {}
  for line in storage.read_text(path).split("\n"):
    if not line.strip():
      continue
    record = json.loads(line)
    step = int(record.pop("step"))
    for name, value in record.items():
      by_name.setdefault(name, {})[step] = float(value)
  return {name: (np.asarray(sorted(values), np.int64), np.asarray([values[s] for s in sorted(values)], np.float64))
          for name, values in by_name.items()}


def curve_panels(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[str]:
  """Names to draw: train/loss, the other train/* scalars, then any other metric logged at 2+ steps.

  train/epoch is left out: it is the step rescaled.
  """
  names = ["train/loss"] if "train/loss" in series else []
  names += sorted(n for n in series if n.startswith("train/") and n not in ("train/loss", "train/epoch"))
  names += sorted(n for n in series if not n.startswith("train/") and len(series[n][0]) >= 2)
  return names


def curves_figure_size(num_small_panels: int) -> tuple[float, float]:
  """(width, height) in inches: a wide loss panel above rows of PANEL_COLUMNS small panels."""
  return CURVES_WIDTH, LOSS_HEIGHT + PANEL_HEIGHT * math.ceil(num_small_panels / PANEL_COLUMNS)


def plot_curves(series: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> str:
  """train/loss against step in a wide panel, each other `curve_panels` name in a small one."""
  plt = _pyplot()
  names = curve_panels(series)
  if not names or names[0] != "train/loss":
    raise ValueError("No train/loss in the metrics: nothing to plot.")
  small = names[1:]
  rows = math.ceil(len(small) / PANEL_COLUMNS)
  fig = plt.figure(figsize=curves_figure_size(len(small)), layout="constrained")
  grid = fig.add_gridspec(1 + rows, PANEL_COLUMNS, height_ratios=[LOSS_HEIGHT] + [PANEL_HEIGHT] * rows)
  axes = [fig.add_subplot(grid[0, :])] + [fig.add_subplot(grid[1 + i // PANEL_COLUMNS, i % PANEL_COLUMNS])
                                          for i in range(len(small))]
  for ax, name in zip(axes, names):
    steps, values = series[name]
    ax.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3)
    ax.set_title(name, fontsize=10 if name == "train/loss" else 8)
    ax.tick_params(labelsize=7)
  axes[0].set_xlabel("step")
  return save_figure(fig, path)


# ----------------------------------------------------------------------------- a run's outputs


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

  @property
  def relation(self) -> Optional[np.ndarray]:
    return None if self.discovered is None else np.asarray(self.discovered.relation)

  @property
  def map_space(self) -> str:
    """The outputs the t-SNE map shows: where the method's prototypes live, else `eval.features`."""
    if self.discovered is not None and self.discovered.prototypes:
      return self.discovered.prototype_space
    return self.config.eval.features


def load_outputs(workdir: str, split: str = "test") -> RunOutputs:
  """Restores the run in `workdir` and predicts its `split` ("test" or "val"), sharded over the mesh."""
  config = runs.load_run_config(workdir)
  config.eval.split = split  # setup_run checks that the split exists
  run = runs.setup_run(config, for_training=False)
  state = runs.restore_newest(workdir, config, run.state)
  split_data = getattr(run.data, split)
  outputs = RunOutputs(config, run.data, split_data, {}, run.method.discovered(state))
  predictions = predict_split(make_predict_step(run.method, run.mesh, run.data), state, split_data, run.mesh,
                              config.eval.batch_size, keys=(outputs.map_space, "cluster_logits"))
  return outputs._replace(predictions=predictions)


# ----------------------------------------------------------------------------- the four figures


def write_embedding(outputs: RunOutputs, path: str, max_points: int, seed: int) -> str:
  """embedding_tsne.png of a seeded subset, with the method's prototypes embedded in the same fit."""
  taxonomy = outputs.data.taxonomy
  index = subsample_indices(len(outputs.split), max_points, seed)
  points = outputs.predictions[outputs.map_space][index]
  prototypes = outputs.discovered.prototypes if outputs.discovered is not None else ()
  vectors = None
  if prototypes:
    # Prototypes are compared with examples by cosine only: put all of them on the unit sphere.
    points = l2_normalize_host(points, np.float64)
    vectors = l2_normalize_host(np.concatenate([p.vectors for p in prototypes]), np.float64)
  xy, prototypes_xy = tsne_coordinates(points, vectors, seed)
  fine = outputs.split.fine[index]
  markers = sibling_rank(fine, taxonomy.fine_to_coarse) if (fine >= 0).all() else None
  drawn, start = [], 0
  for p in prototypes:
    drawn.append(Means(p.label, prototypes_xy[start:start + len(p.vectors)], np.asarray(p.coarse)))
    start += len(p.vectors)
  title = (f"{outputs.config.method} on {outputs.config.data.name}: t-SNE of {len(index)} "
           f"{outputs.map_space}s (colour: coarse, marker: fine within coarse)")
  return plot_embedding(xy, outputs.split.coarse[index], taxonomy.coarse_names, path, markers, drawn, title)


def write_relation(outputs: RunOutputs, path: str) -> str:
  """relation.png: learned rows in Hungarian order (from the cluster_logits argmax) beside the truth."""
  taxonomy = outputs.data.taxonomy
  relation = outputs.relation
  logits = outputs.predictions.get("cluster_logits")
  order = (np.arange(len(relation)) if logits is None
           else relation_order(logits.argmax(1), outputs.split.fine, len(relation)))
  true = np.eye(taxonomy.num_coarse, dtype=np.int64)[taxonomy.fine_to_coarse]
  return plot_relation(relation[order], true, taxonomy.coarse_names, taxonomy.fine_names, path, row_ids=order)


def cluster_label(cluster: int, parent: int, fine: int, outputs: RunOutputs) -> str:
  """'cluster k / parent coarse / majority fine' for a row of the clusters grid."""
  taxonomy = outputs.data.taxonomy
  fine_name = taxonomy.fine_names[fine] if fine >= 0 else "?"
  return f"cluster {cluster}\nparent: {taxonomy.coarse_names[parent]}\nmostly: {fine_name}"


def write_clusters(outputs: RunOutputs, path: str, max_rows: int = MAX_CLUSTER_ROWS) -> str:
  """clusters.png: the `max_rows` most populated discovered classes and their most confident images."""
  logits = outputs.predictions["cluster_logits"]
  pred = logits.argmax(1)
  relation = outputs.relation
  if relation is None:  # no learned parents (SCAN): each cluster's majority coarse label
    relation = discovery.relation_from_clusters(pred, outputs.split.coarse, logits.shape[1],
                                                outputs.data.num_coarse)
  rows = cluster_rows(logits, max_rows)
  labels = [cluster_label(k, int(np.asarray(relation[k]).argmax()), majority(outputs.split.fine[pred == k]),
                          outputs) for k, _ in rows]
  return plot_clusters(outputs.split.inputs, rows, labels, path)


def plot_run(workdir: str, out: Optional[str] = None, split: str = "test", max_points: int = 2000,
             seed: int = 0, max_rows: int = MAX_CLUSTER_ROWS) -> list[str]:
  """Writes the figures of the run in `workdir` to `out` (default workdir/plots); returns their paths.

  max_rows: discovered classes in the clusters grid (the most populated ones).
  """
  out = out or storage.join(workdir, "plots")
  outputs = load_outputs(workdir, split)
  written = [write_embedding(outputs, storage.join(out, "embedding_tsne.png"), max_points, seed)]
  if outputs.relation is not None:
    written.append(write_relation(outputs, storage.join(out, "relation.png")))
  if outputs.data.is_image and "cluster_logits" in outputs.predictions:
    written.append(write_clusters(outputs, storage.join(out, "clusters.png"), max_rows))
  metrics_path = storage.join(workdir, "metrics.jsonl")
  if storage.isfile(metrics_path):
    series = read_curves(metrics_path)
    if "train/loss" in series:
      written.append(plot_curves(series, storage.join(out, "curves.png")))
  return written
