"""clusters.png: the largest discovered classes, each a row of its most confident test images.

Each row is labelled with the class id, its learned coarse parent, its size and its purity: the share of
its examples (with a known fine label) that carry its majority fine class ("mostly: ?" when no fine label is
known). The title says how many classes are shown of how many.
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple, Sequence

import numpy as np

from coarse2fine.figures.common import DPI, UNKNOWN, pyplot, save_figure

MAX_CLUSTER_ROWS = 20
IMAGES_PER_ROW = 10
CELL_INCHES = 0.8  # one image of the grid
LABEL_INCHES = 1.45  # the label column
TITLE_INCHES = 0.6  # above the grid


class Purity(NamedTuple):
  """A discovered class's majority fine class (-1: no known fine label), its share of the known labels
  (nan without any), and the class's size (all its examples)."""

  majority: int
  share: float
  size: int


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


def purity(fine: np.ndarray) -> Purity:
  """`Purity` of the members' fine labels [m] (-1 unknown): majority lowest id on ties."""
  fine = np.asarray(fine)
  known = fine[fine != UNKNOWN]
  if not known.size:
    return Purity(-1, float("nan"), len(fine))
  votes = np.bincount(known)
  return Purity(int(votes.argmax()), float(votes.max() / known.size), len(fine))


def row_label(cluster: int, parent: str, p: Purity, fine_names: Sequence[str]) -> str:
  """Three short lines: 'cluster 3 -> coarse', 'n=812', 'mostly: coat 85%' (or 'mostly: ?')."""
  mostly = "?" if p.majority < 0 else f"{fine_names[p.majority][:14]} {100 * p.share:.0f}%"
  return f"cluster {cluster} -> {parent[:12]}\nn={p.size}\nmostly: {mostly}"


def clusters_figure_size(num_rows: int, per_row: int = IMAGES_PER_ROW) -> tuple[float, float]:
  """(width, height) in inches of the clusters grid."""
  return LABEL_INCHES + per_row * CELL_INCHES, TITLE_INCHES + num_rows * CELL_INCHES


def as_display_image(image: np.ndarray) -> np.ndarray:
  """[H, W] or [H, W, 3] in [0, 1] from a uint8 or float [H, W, C] image."""
  x = np.asarray(image)
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else np.clip(x.astype(np.float32), 0, 1)
  return x[..., 0] if x.shape[-1] == 1 else x[..., :3]


def plot_clusters(images: np.ndarray, rows: list[tuple[int, np.ndarray]], row_labels: Sequence[str],
                  path: str, title: str, per_row: int = IMAGES_PER_ROW) -> str:
  """Grid: one row per (cluster, indices) of `rows`, its label, then images[indices] ([N, H, W, C])."""
  plt = pyplot()
  width, height = clusters_figure_size(len(rows), per_row)
  fig = plt.figure(figsize=(width, height))
  chars = int(width * DPI / 6.0)  # about the characters of a 9-point line across the figure
  title = "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))
  fig.suptitle(title, fontsize=9, y=1 - 0.08 / height, va="top")
  for r, ((_, indices), label) in enumerate(zip(rows, row_labels)):
    top = 1 - (TITLE_INCHES + r * CELL_INCHES) / height
    fig.text(0.08 / width, top - 0.5 * CELL_INCHES / height, label, fontsize=7, va="center", linespacing=1.3)
    for j in range(per_row):
      ax = fig.add_axes(((LABEL_INCHES + j * CELL_INCHES + 0.04) / width, top - 0.96 * CELL_INCHES / height,
                         0.92 * CELL_INCHES / width, 0.92 * CELL_INCHES / height))
      ax.set_axis_off()
      if j < len(indices):
        ax.imshow(as_display_image(images[indices[j]]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  return save_figure(fig, path)
