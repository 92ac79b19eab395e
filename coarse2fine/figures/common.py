"""What every figure shares: matplotlib on Agg, atomic PNG writes, palettes, names and counts."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from coarse2fine import storage

DPI = 100  # pixels per inch of every PNG: figure sizes are in inches
UNKNOWN = -1  # a fine label that is not known (data.hide_fine_labels, an API run without `fine`)


def pyplot():
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
    pyplot().close(fig)
  return path


def palette(n: int) -> np.ndarray:
  """[n, 4] RGBA colours, distinct for up to 60: tab10, tab20, then tab20 + tab20b + tab20c; turbo beyond."""
  plt = pyplot()
  if n <= 10:
    return np.asarray([plt.get_cmap("tab10")(i) for i in range(n)]).reshape(n, 4)
  if n <= 20:
    return np.asarray([plt.get_cmap("tab20")(i) for i in range(n)])
  if n <= 60:
    return np.asarray([plt.get_cmap(name)(i) for name in ("tab20", "tab20b", "tab20c") for i in range(20)][:n])
  return plt.get_cmap("turbo")(np.linspace(0, 1, n))


def subsample_indices(n: int, max_points: int, seed: int) -> np.ndarray:
  """Sorted indices of a seeded random subset of at most `max_points` of `n` examples."""
  if n <= max_points:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def contingency(rows: np.ndarray, cols: np.ndarray, num_rows: int, num_cols: int) -> np.ndarray:
  """[num_rows, num_cols] int64 counts of the (row, col) pairs; pairs with a negative (unknown) id are left out."""
  rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
  keep = (rows >= 0) & (cols >= 0)
  return np.bincount(rows[keep] * num_cols + cols[keep], minlength=num_rows * num_cols).reshape(num_rows, num_cols)


def short(name: str, width: int = 18) -> str:
  """A class name cut to `width` characters (long names would eat the plot)."""
  name = str(name)
  return name if len(name) <= width else name[:width - 1] + "…"


def tick_labels(set_ticks, labels: Sequence[str], max_labels: int = 60, **kwargs) -> None:
  """Every tick labelled when there are few enough to read, none otherwise."""
  if len(labels) <= max_labels:
    set_ticks(np.arange(len(labels)), labels, **kwargs)
  else:
    set_ticks([])
