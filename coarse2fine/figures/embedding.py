"""embedding_tsne.png / embedding_umap.png: a 2-D map of the test embeddings in two panels.

Left: coloured by discovered class (the method's cluster predictions, or k-means within each coarse class
for methods without clusters). Right: coloured by the true fine class, or by the coarse class when no fine
label is known. A discovered class matched to a fine class (Hungarian matching, figures/relation.py) has
that fine class's colour, so two panels that look alike mean the classes were found. Each class's name sits
at the median of its points; methods with prototypes (SCGM's super-class and sub-class means) show them,
embedded in the same fit. t-SNE is scikit-learn's; UMAP is umap-learn's (`pip install umap-learn`).
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple, Optional, Sequence

import numpy as np

from coarse2fine.figures.common import pyplot, save_figure, short

PROJECTIONS = ("tsne", "umap")
PROJECTION_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}
EMBEDDING_SIZE = (14.0, 7.0)
MAX_NAMED = 40  # classes named on the map; more would cover it
PROTOTYPE_SHAPES = ("*", "P", "D")


class Means(NamedTuple):
  """Learned vectors drawn in the map: their label and [m, 2] positions."""

  label: str
  points2d: np.ndarray


class Panel(NamedTuple):
  """One panel: [n] class ids (-1: unknown, drawn grey), [num_classes] names, [num_classes, 4] colours, title."""

  labels: np.ndarray
  names: Sequence[str]
  colours: np.ndarray
  title: str


def umap_available() -> bool:
  return importlib.util.find_spec("umap") is not None


def resolve_projections(projection: str) -> tuple[tuple[str, ...], Optional[str]]:
  """(projections to draw, a note or None) for --projection=tsne|umap|both|auto.

  auto: both when umap-learn is installed, else t-SNE with a note; umap without umap-learn is an error.
  """
  if projection not in ("tsne", "umap", "both", "auto"):
    raise ValueError(f"--projection={projection!r}: use tsne, umap, both or auto.")
  if projection == "tsne":
    return ("tsne",), None
  if umap_available():
    return (("umap",) if projection == "umap" else PROJECTIONS), None
  if projection == "auto":
    return ("tsne",), 'UMAP map skipped: umap-learn is not installed (pip install -e ".[plot]"); t-SNE only.'
  raise ImportError(f'--projection={projection} needs umap-learn: pip install -e ".[plot]", or --projection=tsne.')


def project(points: np.ndarray, projection: str, means: Optional[np.ndarray] = None,
            seed: int = 0) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """2-D t-SNE or UMAP of [n, e] `points` and [m, e] `means` in one fit: ([n, 2], [m, 2] or None)."""
  stacked = (np.concatenate([points, means]) if means is not None else np.asarray(points)).astype(np.float32)
  if projection == "tsne":
    from sklearn.manifold import TSNE

    # sklearn needs perplexity < samples; its default 30 for all but tiny inputs.
    perplexity = max(1.0, min(30.0, (len(stacked) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(stacked)
  elif projection == "umap":
    import umap

    # umap-learn's default 15 neighbours, fewer on tiny inputs (it needs neighbours < samples);
    # cosine, as the methods compare embeddings. One thread: a seeded fit is reproducible only so.
    neighbours = max(2, min(15, len(stacked) - 1))
    xy = umap.UMAP(n_neighbors=neighbours, metric="cosine", random_state=seed, n_jobs=1,
                   init="spectral" if len(stacked) > neighbours + 1 else "random").fit_transform(stacked)
  else:
    raise ValueError(f"Unknown projection {projection!r}; use one of {PROJECTIONS}.")
  xy = np.asarray(xy, np.float64)
  n = len(points)
  return xy[:n], (xy[n:] if means is not None else None)


def shade(colour: np.ndarray, j: int) -> np.ndarray:
  """The j-th variant (j >= 0) of an RGBA colour: alternately lighter and darker, further each time."""
  rgb = np.asarray(colour[:3], np.float64)
  step = 0.3 + 0.2 * (j // 2)
  rgb = rgb + (1 - rgb) * min(step, 0.8) if j % 2 == 0 else rgb * max(1 - step, 0.25)
  return np.concatenate([rgb, [1.0]])


def cluster_colours(shown_fine: np.ndarray, matched: np.ndarray, fine_colours: np.ndarray) -> np.ndarray:
  """[r, 4] colours of the discovered classes: a class Hungarian-matched to fine class f takes f's colour, the
  others a lighter or darker shade of the colour of the fine class they mostly hold (grey when none is known)."""
  colours = np.tile(np.asarray([0.6, 0.6, 0.6, 1.0]), (len(shown_fine), 1))
  extras: dict[int, int] = {}
  for k, (f, m) in enumerate(zip(np.asarray(shown_fine), np.asarray(matched, bool))):
    if f < 0:
      continue
    if m:
      colours[k] = fine_colours[f]
    else:
      colours[k] = shade(fine_colours[f], extras.get(f, 0))
      extras[f] = extras.get(f, 0) + 1
  return colours


def plot_embedding(points2d: np.ndarray, panels: Sequence[Panel], path: str, title: str,
                   means: Sequence[Means] = ()) -> str:
  """Side-by-side scatters of the same [n, 2] points, one per `Panel`, each class named at its median."""
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=EMBEDDING_SIZE, layout="constrained", squeeze=False)
  size = 12 if len(points2d) <= 2000 else 5
  for ax, panel in zip(axes[0], panels):
    labels = np.asarray(panel.labels)
    unknown = labels < 0
    if unknown.any():
      ax.scatter(points2d[unknown, 0], points2d[unknown, 1], c="#bbbbbb", s=size, linewidths=0, label="unknown")
    known = ~unknown
    ax.scatter(points2d[known, 0], points2d[known, 1], c=panel.colours[labels[known]], s=size, alpha=0.7,
               linewidths=0)
    present = np.unique(labels[known])
    if len(present) <= MAX_NAMED:
      for k in present:
        x, y = np.median(points2d[labels == k], axis=0)
        ax.annotate(short(panel.names[k], 14), (x, y), xytext=(0, 7), textcoords="offset points",  # above, not on
                    fontsize=7, ha="center", va="bottom", weight="bold",
                    color=panel.colours[k], bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=panel.colours[k],
                                                      alpha=0.85, lw=0.8))
    for means_set, shape in zip(means, PROTOTYPE_SHAPES):
      ax.scatter(means_set.points2d[:, 0], means_set.points2d[:, 1], c="white", marker=shape,
                 s=200 if shape == "*" else 90, edgecolors="black", linewidths=1.0, label=means_set.label)
    if means or unknown.any():
      ax.legend(fontsize=7, loc="lower right", framealpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(panel.title, fontsize=9)
  fig.suptitle(title, fontsize=10)
  return save_figure(fig, path)
