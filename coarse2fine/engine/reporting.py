"""Writing results: atomic JSON files, the final markdown tables of metrics, the end-of-run figures."""

from __future__ import annotations

import fnmatch
import importlib.util
import inspect
import json
import os
import re
import sys
import tempfile
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from coarse2fine import storage


def write_text_atomically(path: str, text: str) -> None:
  """Writes `text` to `path`, never half-written: temp file and rename locally, one put on an object store."""
  storage.write_text_atomically(path, text)


def write_json_atomically(path: str, payload: Any) -> None:
  write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


FIGURES_ENV = "C2F_FIGURES"  # "0": no end-of-run figures whatever the config (test suites, CI)
FIGURE_POINTS = 300  # examples on the embedding map drawn at the end of a run (t-SNE's cost grows with them)


def figures_wanted(config) -> bool:
  """Whether a run draws its figures for TensorBoard at the end (see `write_figures`)."""
  return (config.logging.get("figures", True) and os.environ.get(FIGURES_ENV, "1") != "0"
          and importlib.util.find_spec("matplotlib") is not None and jax.process_count() == 1)


def write_figures(writer, workdir: str, config, step: int) -> list[str]:
  """After results.json: `figures.plot_run`'s PNGs of the run as TensorBoard images `figures/<name>`.

  Done when `config.logging.figures` is on, matplotlib is installed, `C2F_FIGURES` is not "0" and the
  run has one process. A figure that fails is reported on stderr, never raised: the results are saved
  already. Returns the image names written.
  """
  if not figures_wanted(config):
    return []
  from PIL import Image

  from coarse2fine import figures  # imported here: it needs matplotlib, and imports the engine

  with tempfile.TemporaryDirectory(prefix="c2f_figures_") as out:
    try:
      options = dict(out=out, split=config.eval.split, max_points=FIGURE_POINTS, seed=config.seed)
      if "projection" in inspect.signature(figures.plot_run).parameters:
        options["projection"] = "tsne"  # one map: a UMAP fit (numba's compile) would add many seconds
      paths = figures.plot_run(workdir, **options)
      images = {}
      for path in paths:
        with Image.open(path) as image:
          images["figures/" + os.path.splitext(os.path.basename(path))[0]] = np.asarray(image.convert("RGB"))
    except Exception as error:  # noqa: BLE001 (a convenience after the results: never fails the run)
      print(f"Figures skipped ({type(error).__name__}: {error}); the results are saved. Draw them with "
            f"`python -m coarse2fine.plot --workdir={workdir}`, or set config.logging.figures=False.",
            file=sys.stderr, flush=True)
      return []
  writer.write_images(step, images)
  return list(images)


# The discovery metric names of `evaluation.discovery.discovery_metrics` (and the clusters protocol's purity),
# in the order of the table's columns.
DISCOVERY_NAMES = ("acc", "macro_acc", "ari", "nmi", "ged", "ged_invariant", "relation_acc", "purity")
# Which clustering the `discovery/*` keys repeat, looked for in this order (evaluation/evaluator.py: a method's
# own classes when the clusters protocol runs, else overall k-means).
_ALIASED = ("clusters", "kmeans")
CI_SUFFIX = "_ci95"


def metrics_table(metrics: Mapping[str, float], headline: Sequence[str] = ()) -> str:
  """Markdown tables of `{key: value}`: the headline first, then one table per protocol.

  headline: fnmatch patterns of the keys the method reports first (`Method.headline_metrics`), in
  order. The groups follow, each under a `###` heading: few-shot, discovery, retrieval,
  classification, other; each metric appears once outside the headline. A `<key>_ci95` value is
  printed as `± ci` next to `<key>`. Discovery is one row per clustering (`discovery/<row>_<column>`);
  the `discovery/*` keys, which repeat one clustering's values, are not printed again, and a line
  says which clustering they repeat.
  """
  metrics = {k: float(v) for k, v in metrics.items()}
  shown = _shown(metrics)
  first = headline_keys(metrics, headline)
  groups: dict[str, list[str]] = {title: [] for title, _ in _GROUPS}
  for key in shown:
    if key not in first:
      groups[next(title for title, belongs in _GROUPS if belongs(key))].append(key)
  blocks = [_rows_table("Headline", first, metrics)] if first else []
  for title, _ in _GROUPS:
    if not groups[title]:
      continue
    if title == "Discovery":
      blocks.append(_discovery_tables(groups[title], metrics))
    else:
      blocks.append(_rows_table(title, sorted(groups[title], key=_natural), metrics))
  return "\n\n".join(blocks)


def _shown(metrics: Mapping[str, float]) -> list[str]:
  """The keys printed as rows: a `<key>_ci95` goes next to its `<key>`, not on a row of its own."""
  return [k for k in metrics if not (k.endswith(CI_SUFFIX) and k[:-len(CI_SUFFIX)] in metrics)]


def headline_keys(metrics: Mapping[str, float], headline: Sequence[str]) -> list[str]:
  """The keys of `metrics` matching the fnmatch patterns `headline`, pattern by pattern, in natural order."""
  shown, first = _shown(metrics), []
  for pattern in headline:
    first += [k for k in sorted((k for k in shown if fnmatch.fnmatchcase(k, pattern)), key=_natural)
              if k not in first]
  return first


def headline_summary(metrics: Mapping[str, float], headline: Sequence[str], limit: int = 4) -> str:
  """One line of the first `limit` headline metrics, 'fewshot/5way_1shot 71.2, test/coarse_top1 88.0'
  (the first `limit` metrics when none matches): what an evaluation during training prints."""
  keys = headline_keys(metrics, headline) or _shown(metrics)
  more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
  return ", ".join(f"{k} {float(metrics[k]):.1f}" for k in keys[:limit]) + more


def _is_classification(key: str) -> bool:
  return re.fullmatch(r"[^/]+/(coarse|fine)_top\d+", key) is not None


_GROUPS = (
    ("Few-shot", lambda k: k.startswith("fewshot/")),
    ("Discovery", lambda k: k.startswith("discovery/")),
    ("Retrieval", lambda k: k.startswith("retrieval/")),
    ("Classification", _is_classification),
    ("Other", lambda k: True),
)


def _natural(key: str) -> list:
  """Sort key with the digit runs as numbers: recall@2 before recall@10."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _format(metrics: Mapping[str, float], key: str) -> str:
  ci = metrics.get(key + CI_SUFFIX)
  return f"{metrics[key]:.2f}" + (f" ± {ci:.2f}" if ci is not None else "")


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  """A markdown table, the first column left-aligned and the others right-aligned, padded to align."""
  widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

  def line(cells):
    return "| " + " | ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                             for i, (c, w) in enumerate(zip(cells, widths))) + " |"

  rule = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
  return [line(header), rule] + [line(row) for row in rows]


def _rows_table(title: str, keys: Sequence[str], metrics: Mapping[str, float]) -> str:
  return "\n".join([f"### {title}", ""] + _markdown(["metric", "value"], [[k, _format(metrics, k)] for k in keys]))


def _split_discovery(key: str) -> tuple[str, str]:
  """`discovery/kmeans_within_macro_acc` -> ("kmeans_within", "macro_acc"); ("", name) for `discovery/<name>`;
  (rest, "") when no known name ends the key."""
  rest = key[len("discovery/"):]
  for name in sorted(DISCOVERY_NAMES, key=len, reverse=True):
    if rest == name:
      return "", name
    if rest.endswith("_" + name):
      return rest[:-len(name) - 1], name
  return rest, ""


def _discovery_tables(keys: Sequence[str], metrics: Mapping[str, float]) -> str:
  cells: dict[str, dict[str, str]] = {}  # clustering -> name -> key
  loose = []
  for key in keys:
    clustering, name = _split_discovery(key)
    if name:
      cells.setdefault(clustering, {})[name] = key
    else:
      loose.append(key)
  note = []
  plain = cells.get("")
  if plain:  # discovery/<name>: the headline keys, equal to one clustering's (evaluation/evaluator.py)
    source = next((c for c in _ALIASED if c in cells and all(
        n in cells[c] and metrics[cells[c][n]] == metrics[k] for n, k in plain.items())), None)
    if source is not None:
      del cells[""]
      what = "the method's discovered classes" if source == "clusters" else "the overall k-means clusters"
      note = [f"discovery/* = discovery/{source}_* ({what}), shown once here."]
  order = sorted(cells, key=lambda c: (c != "", c != "clusters", not c.startswith("clusters"), _natural(c)))
  names = [n for n in DISCOVERY_NAMES if any(n in cells[c] for c in order)]
  rows = [[f"discovery/{c}_*" if c else "discovery/*"] + [_format(metrics, cells[c][n]) if n in cells[c] else "-"
                                                         for n in names] for c in order]
  lines = ["### Discovery", ""] + note + ([""] if note else [])
  if rows:
    lines += _markdown(["clustering"] + names, rows)
  if loose:
    lines += [""] + _markdown(["metric", "value"], [[k, _format(metrics, k)] for k in sorted(loose, key=_natural)])
  return "\n".join(lines)
