"""relation.png: which true fine classes each discovered class holds, and the coarse parent the method gave it.

Left: the contingency of discovered classes (rows) against true fine classes (columns, named with their coarse
parent), the count in each cell and its share of the row as the shade. Rows are grouped by the fine class
they match: Hungarian matching pairs each fine class with one discovered class (scipy's
linear_sum_assignment, as the discovery accuracy does), and the classes left over (SCGM's 30 sub-classes
against 10 fine classes) join the fine class most of their examples have. Right: the learned coarse parent
of each row, green where it is the true parent of the row's fine class, red where it is not.
Without fine labels the columns are the true coarse classes instead, and green means "the coarse class most
of its examples have".
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple, Optional, Sequence

import numpy as np

from coarse2fine.evaluation import discovery
from coarse2fine.figures.common import DPI, contingency, pyplot, save_figure, short, tick_labels

MAX_ANNOTATED_CELLS = 900  # beyond this many cells the counts are too small to read: shades only
GREEN, RED, GREY = "#2ca02c", "#d62728", "#7f7f7f"


class Matching(NamedTuple):
  """How discovered classes line up with fine classes.

  order: [r] the discovered classes in display order; fine: [r] the fine class each is shown with
  (its Hungarian match, else its majority fine class, -1 when none of its examples has a known
  fine label); matched: [r] bool, whether `fine` is the Hungarian match; counts: [r, K] contingency
  (rows in discovered-class id order, not `order`).
  """

  order: np.ndarray
  fine: np.ndarray
  matched: np.ndarray
  counts: np.ndarray


def match_clusters(pred: np.ndarray, fine: np.ndarray, num_clusters: int, num_fine: int) -> Matching:
  """Groups the `num_clusters` discovered classes (pred [n]) by the fine class (fine [n], -1 unknown) they match.

  Display order: by fine class; within one, the Hungarian-matched class first, then the others by
  falling size; classes without any known fine label last, by id.
  """
  pred, fine = np.asarray(pred, np.int64), np.asarray(fine, np.int64)
  counts = contingency(pred, fine, num_clusters, num_fine)
  known = fine >= 0
  matching = discovery.hungarian_match(pred[known], fine[known]) if known.any() else {}
  shown = np.where(counts.sum(1) > 0, counts.argmax(1), -1)  # majority fine class (lowest id on ties)
  matched = np.zeros(num_clusters, bool)
  for k, f in matching.items():
    if k < num_clusters and f < num_fine and counts[k, f] > 0:
      shown[k], matched[k] = f, True
  sizes = np.bincount(pred[pred >= 0], minlength=num_clusters)[:num_clusters]
  key = [(f if f >= 0 else num_fine, not m, -s, k) for k, (f, m, s) in enumerate(zip(shown, matched, sizes))]
  order = np.asarray([k for *_, k in sorted(key)], np.int64)
  return Matching(order, shown, matched, counts)


def relation_order(pred: np.ndarray, fine: np.ndarray, num_clusters: int) -> np.ndarray:
  """[r] discovered classes in the display order of `match_clusters`."""
  fine = np.asarray(fine)
  num_fine = int(fine.max()) + 1 if (fine >= 0).any() else 0
  return match_clusters(pred, fine, num_clusters, num_fine).order


def row_label(cluster: int, fine_name: Optional[str], matched: bool) -> str:
  """'cluster 3 -> coat' (the Hungarian match), 'cluster 12 -> mostly coat' (an extra class), 'cluster 5'."""
  if fine_name is None:
    return f"cluster {cluster}"
  return f"cluster {cluster} -> {'' if matched else 'mostly '}{short(fine_name)}"


def plot_relation(counts: Optional[np.ndarray], relation: np.ndarray, row_names: Sequence[str],
                  col_names: Sequence[str], coarse_names: Sequence[str], expected_parent: np.ndarray, path: str,
                  title: str, counts_label: str) -> str:
  """Two aligned panels over the same rows: [r, m] `counts` (rows already in display order; None: relation only)
  and the learned [r, C] `relation`, each row's parent green where it equals `expected_parent` [r] (-1: grey)."""
  plt = pyplot()
  relation = np.asarray(relation)
  r, num_coarse = relation.shape
  m = 0 if counts is None else counts.shape[1]
  height = 1.6 + max(3.0, 0.22 * r)
  width = 2.6 + 0.42 * m + 0.42 * num_coarse + 1.2
  fig = plt.figure(figsize=(width, height), layout="constrained")
  ratios = ([max(m, 1) * 1.0] if counts is not None else []) + [max(num_coarse, 1) * 1.0]
  grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios)
  axes = [fig.add_subplot(grid[0, i]) for i in range(len(ratios))]
  if counts is not None:
    ax = axes[0]
    counts = np.asarray(counts)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    ax.imshow(share, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if counts.size <= MAX_ANNOTATED_CELLS:
      for (i, j), value in np.ndenumerate(counts):
        if value:
          ax.text(j, i, str(value), ha="center", va="center", fontsize=6,
                  color="white" if share[i, j] > 0.6 else "black")
    tick_labels(ax.set_xticks, list(col_names), fontsize=7, rotation=60, ha="right", rotation_mode="anchor")
    tick_labels(ax.set_yticks, list(row_names), fontsize=7)
    ax.set_xlabel(counts_label, fontsize=8)
    ax.set_title("examples per discovered class (shade: share of the row)", fontsize=9)
  ax = axes[-1]
  parent = relation.argmax(1)
  has_parent = relation.max(1) > 0
  colours = np.where(expected_parent < 0, GREY, np.where(parent == expected_parent, GREEN, RED))
  ax.scatter(parent[has_parent], np.flatnonzero(has_parent), c=colours[has_parent], marker="s", s=60)
  ax.set_xlim(-0.5, num_coarse - 0.5)
  ax.set_ylim(r - 0.5, -0.5)
  ax.set_xticks(np.arange(num_coarse + 1) - 0.5, minor=True)
  ax.grid(which="minor", color="#dddddd", linewidth=0.6)
  ax.tick_params(which="minor", length=0)
  tick_labels(ax.set_xticks, [short(n) for n in coarse_names], fontsize=7, rotation=60, ha="right",
              rotation_mode="anchor")
  if counts is not None:
    ax.set_yticks(np.arange(r), [""] * r)  # the same rows as the left panel
  else:
    tick_labels(ax.set_yticks, list(row_names), fontsize=7)
  ax.set_xlabel("coarse class", fontsize=8)
  ax.set_title("learned coarse parent", fontsize=9)
  chars = int(width * DPI / 6.5)  # about the characters of a 9-point line across the figure
  fig.suptitle("\n".join(textwrap.fill(line, chars) for line in title.split("\n")), fontsize=9)
  return save_figure(fig, path)
