"""curves.png (what the run learned) and diagnostics.png (how the run went), from metrics.jsonl.

curves.png: the training loss, the loss terms together, the training accuracies together, one panel per
family of evaluation metrics (test/, val/, discovery/, fewshot/, retrieval/, with their 95% intervals as
error bars), and other scores against labels (SCGM's estep/nmi, estep/purity), all on the same step axis so
evaluations line up with training.
diagnostics.png: everything else (learning rate, gradient norm, temperatures, queue fill, timing, solver
figures), one small panel each.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from coarse2fine import storage
from coarse2fine.figures.common import pyplot, save_figure

Series = dict[str, tuple[np.ndarray, np.ndarray]]

EVAL_PREFIXES = ("test/", "val/", "discovery/", "fewshot/", "retrieval/")
# Parts of a training scalar's name that make it a setting or a health figure, not something learned.
DIAGNOSTIC_WORDS = re.compile(r"learning_rate|(^|_)lr($|_)|norm|tau|temperature|warmup|momentum|time|second|"
                              r"per_sec|throughput|queue|fill|beta|objective|changed|memory|epoch|step")
# Outside train/ and the evaluation families, scalars that score something learned against labels (SCGM's
# estep/nmi, estep/purity) are science too, drawn per prefix.
QUALITY_WORDS = re.compile(r"(^|_)(nmi|ari|purity|acc|accuracy)$")
ACCURACY_WORDS = re.compile(r"accuracy|acc($|_)|rank1|top1|top5|target_on_positive")
CURVES_WIDTH, PANEL_HEIGHT, CURVES_COLUMNS = 12.0, 2.8, 3
DIAGNOSTIC_COLUMNS, DIAGNOSTIC_HEIGHT = 4, 2.2


def read_curves(path: str) -> Series:
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
      if isinstance(value, (int, float)):
        by_name.setdefault(name, {})[step] = float(value)
  return {name: (np.asarray(sorted(values), np.int64), np.asarray([values[s] for s in sorted(values)], np.float64))
          for name, values in by_name.items()}


def is_diagnostic(name: str) -> bool:
  """Whether a metric goes to diagnostics.png: training scalars that are settings or health figures, and any
  name outside train/ and the evaluation families."""
  if name.startswith(EVAL_PREFIXES):
    return False
  if name.startswith("train/"):
    return bool(DIAGNOSTIC_WORDS.search(name[len("train/"):]))
  return not QUALITY_WORDS.search(name.rsplit("/", 1)[-1])


def science_panels(series: Series) -> list[tuple[str, list[str]]]:
  """[(panel title, names drawn in it)] of curves.png: the loss, loss terms, training accuracies, then one
  panel per evaluation family (the `_ci95` companions become error bars, not names)."""
  train = sorted(n for n in series if n.startswith("train/") and not is_diagnostic(n) and n != "train/loss")
  accuracies = [n for n in train if ACCURACY_WORDS.search(n)]
  terms = [n for n in train if n not in accuracies]
  panels = [("train/loss", ["train/loss"])] if "train/loss" in series else []
  if terms:
    panels.append(("loss terms", terms))
  if accuracies:
    panels.append(("training accuracies (batch share)", accuracies))
  for prefix in EVAL_PREFIXES:
    if prefix == "discovery/":
      panels += _discovery_panels(series)
      continue
    names = sorted((n for n in series if n.startswith(prefix) and not n.endswith("_ci95")), key=_natural)
    if names:
      panels.append((f"evaluation: {prefix.rstrip('/')} (%)", names))
  others = sorted(n for n in series if not n.startswith(("train/",) + EVAL_PREFIXES) and not is_diagnostic(n))
  for prefix in sorted({n.rsplit("/", 1)[0] for n in others}):
    panels.append((f"{prefix}: against the fine labels", [n for n in others if n.rsplit("/", 1)[0] == prefix]))
  return panels


def _natural(name: str) -> list:
  """Sort key with numbers by value: recall@2 before recall@10."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _discovery_panels(series: Series) -> list[tuple[str, list[str]]]:
  """The headline discovery metrics (the method's own classes, else k-means), the method's accuracy beside the
  k-means baselines', and the relation's edit distances; the other discovery/* keys stay in results.json."""
  def present(*names):
    return [f"discovery/{n}" for n in names if f"discovery/{n}" in series]

  panels = []
  headline = present("acc", "macro_acc", "nmi", "ari", "purity", "relation_acc")
  if headline:
    panels.append(("evaluation: discovery (%)", headline))
  versus = present("clusters_acc", "kmeans_acc", "kmeans_within_acc")
  if len(versus) > 1:
    panels.append(("evaluation: discovery accuracy vs k-means (%)", versus))
  ged = present("ged", "ged_invariant")
  if ged:
    panels.append(("evaluation: relation edit distance (lower is better)", ged))
  return panels


def diagnostic_names(series: Series) -> list[str]:
  """The names of diagnostics.png, sorted."""
  return sorted(n for n in series if is_diagnostic(n) and n != "train/epoch")  # train/epoch: the step rescaled


def _draw(ax, series: Series, names: list[str], legend: bool) -> None:
  """Each name as a line (markers when few points; error bars from NAME_ci95), with a legend if asked."""
  for name in names:
    steps, values = series[name]
    label = name.split("/", 1)[-1]
    ci = series.get(name + "_ci95")
    if ci is not None and np.array_equal(ci[0], steps):
      ax.errorbar(steps, values, yerr=ci[1], marker="o", markersize=3, capsize=2, label=label)
    else:
      ax.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=label)
  if legend:
    ax.legend(fontsize=6, loc="best", framealpha=0.7)
  ax.tick_params(labelsize=7)
  ax.grid(alpha=0.3)


def curves_figure_size(num_panels: int, columns: int = CURVES_COLUMNS, height: float = PANEL_HEIGHT,
                       ) -> tuple[float, float]:
  """(width, height) in inches of a grid of `num_panels` panels, `columns` a row, plus a title."""
  return CURVES_WIDTH, 0.5 + height * math.ceil(num_panels / columns)


def plot_curves(series: Series, path: str, title: str = "") -> str:
  """curves.png: `science_panels` on a shared step axis."""
  panels = science_panels(series)
  if not panels or panels[0][1] != ["train/loss"]:
    raise ValueError("No train/loss in the metrics: nothing to plot.")
  return _grid(series, panels, path, title or "training and evaluation curves", CURVES_COLUMNS, PANEL_HEIGHT)


def plot_diagnostics(series: Series, path: str, title: str = "") -> str:
  """diagnostics.png: one small panel per `diagnostic_names` entry."""
  names = diagnostic_names(series)
  if not names:
    raise ValueError("No diagnostics in the metrics: nothing to plot.")
  return _grid(series, [(n, [n]) for n in names], path, title or "run diagnostics", DIAGNOSTIC_COLUMNS,
               DIAGNOSTIC_HEIGHT)


def _grid(series: Series, panels: list[tuple[str, list[str]]], path: str, title: str, columns: int,
          height: float) -> str:
  plt = pyplot()
  columns = min(columns, len(panels))
  rows = math.ceil(len(panels) / columns)
  fig, axes = plt.subplots(rows, columns, figsize=curves_figure_size(len(panels), columns, height),
                           layout="constrained", squeeze=False)
  last = max(int(series[n][0].max()) for _, names in panels for n in names)
  for ax, (panel_title, names) in zip(axes.flat, panels):
    _draw(ax, series, names, legend=[panel_title] != names)  # a panel of one metric named by its title
    ax.set_title(panel_title, fontsize=9)
    ax.set_xlim(0, max(last, 1) * 1.03)  # one step axis: evaluations line up with training
    ax.set_xlabel("step", fontsize=7)
  for ax in axes.flat[len(panels):]:
    ax.set_axis_off()
  fig.suptitle(title, fontsize=10)
  return save_figure(fig, path)
