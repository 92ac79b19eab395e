"""The final results table: headline first, one table per protocol, each value once."""

import re

from coarse2fine.engine.reporting import headline_summary, metrics_table
from coarse2fine.methods import METHODS

NAMES = ("acc", "macro_acc", "ari", "nmi", "ged", "ged_invariant", "relation_acc")


def _discovery(tag, base):
  return {f"discovery/{tag}{name}": base + i for i, name in enumerate(NAMES)}


def _hand_made(alias_of="kmeans_"):
  """The keys of an evaluation with every protocol (evaluation/evaluator.py), values easy to tell apart."""
  metrics = {"test/coarse_top1": 95.25, "test/fine_top1": 61.5, "test/fine_top5": 90.0,
             "retrieval/recall@10": 97.0, "retrieval/recall@1": 80.0, "retrieval/recall@2": 85.0,
             "fewshot/5way_1shot": 70.0, "fewshot/5way_1shot_ci95": 0.8,
             "fewshot/allway_1shot": 40.0, "fewshot/allway_1shot_ci95": 0.25}
  metrics.update(_discovery("kmeans_", 10.0))
  metrics.update(_discovery("kmeans_within_", 20.0))
  if alias_of:
    metrics.update({f"discovery/{n}": metrics[f"discovery/{alias_of}{n}"] for n in NAMES if
                    f"discovery/{alias_of}{n}" in metrics})
  return metrics


def _sections(table):
  """{heading: [rows as lists of cell strings]}, in order, from the markdown (header and rule rows dropped)."""
  sections, notes = {}, {}
  current = None
  for line in table.splitlines():
    if line.startswith("### "):
      current = line[4:]
      sections[current], notes[current] = [], []
    elif line.startswith("|") and not re.fullmatch(r"\|[-:|]+\|", line):
      sections[current].append([cell.strip() for cell in line.strip("|").split("|")])
    elif line.strip():
      notes[current].append(line)
  for rows in sections.values():
    del rows[0]  # the column names
  return sections, notes


def test_headline_then_protocol_groups_each_value_once():
  metrics = _hand_made()
  sections, notes = _sections(metrics_table(metrics, headline=("fewshot/*", "*/coarse_top1")))
  # Few-shot: all of it in the headline, so no table of its own.
  assert list(sections) == ["Headline", "Discovery", "Retrieval", "Classification"]
  assert sections["Headline"] == [["fewshot/5way_1shot", "70.00 ± 0.80"], ["fewshot/allway_1shot", "40.00 ± 0.25"],
                                  ["test/coarse_top1", "95.25"]]
  assert sections["Retrieval"] == [["retrieval/recall@1", "80.00"], ["retrieval/recall@2", "85.00"],
                                   ["retrieval/recall@10", "97.00"]]
  assert sections["Classification"] == [["test/fine_top1", "61.50"], ["test/fine_top5", "90.00"]]
  # Discovery: one row per clustering, columns the metric names; discovery/* repeat k-means and are not printed.
  rows = {row[0]: row[1:] for row in sections["Discovery"]}
  assert list(rows) == ["discovery/kmeans_*", "discovery/kmeans_within_*"]
  assert rows["discovery/kmeans_*"] == [f"{10.0 + i:.2f}" for i in range(len(NAMES))]
  assert rows["discovery/kmeans_within_*"] == [f"{20.0 + i:.2f}" for i in range(len(NAMES))]
  assert any("discovery/* = discovery/kmeans_*" in note for note in notes["Discovery"])


def test_empty_groups_are_left_out_and_without_headline_all_metrics_are_grouped():
  sections, _ = _sections(metrics_table({"test/coarse_top1": 90.0, "retrieval/recall@1": 50.0, "speed": 3.0}))
  assert sections == {"Retrieval": [["retrieval/recall@1", "50.00"]], "Classification": [["test/coarse_top1", "90.00"]],
                      "Other": [["speed", "3.00"]]}


def test_discovery_aliases_the_method_classes_when_they_are_equal():
  metrics = _hand_made(alias_of=None)
  metrics.update(_discovery("clusters_", 30.0))
  metrics["discovery/clusters_purity"] = 77.0
  metrics.update({f"discovery/{n}": 30.0 + i for i, n in enumerate(NAMES)})
  metrics["discovery/purity"] = 77.0
  sections, notes = _sections(metrics_table(metrics))
  rows = {row[0]: row[1:] for row in sections["Discovery"]}
  assert list(rows) == ["discovery/clusters_*", "discovery/kmeans_*", "discovery/kmeans_within_*"]
  assert rows["discovery/clusters_*"][-1] == "77.00" and rows["discovery/kmeans_*"][-1] == "-"  # purity column
  assert any("discovery/* = discovery/clusters_*" in note for note in notes["Discovery"])


def test_discovery_keys_that_repeat_nothing_keep_their_row():
  metrics = _hand_made(alias_of=None)
  metrics["discovery/acc"] = 99.0  # equal to no clustering's acc
  sections, notes = _sections(metrics_table(metrics))
  rows = {row[0]: row[1:] for row in sections["Discovery"]}
  assert rows["discovery/*"][0] == "99.00" and rows["discovery/*"][1:] == ["-"] * (len(NAMES) - 1)
  assert not any("discovery/* =" in note for note in notes["Discovery"])


def test_every_method_declares_headline_patterns():
  for name, cls in METHODS.items():  # read when the test runs: other tests register and remove methods
    patterns = cls.headline_metrics
    assert isinstance(patterns, tuple) and patterns and all(isinstance(p, str) and "/" in p for p in patterns), name


def test_falcon_leads_with_its_discovery_metrics():
  metrics = _hand_made(alias_of="kmeans_")
  sections, _ = _sections(metrics_table(metrics, METHODS["falcon"].headline_metrics))
  assert [row[0] for row in sections["Headline"]] == ["discovery/acc", "discovery/ari", "discovery/nmi",
                                                      "discovery/ged", "test/coarse_top1"]


def test_headline_summary_names_the_first_headline_metrics_in_order():
  metrics = _hand_made()
  line = headline_summary(metrics, ("retrieval/recall@*", "*/coarse_top1"), limit=3)
  # recall@1, @2, @10 in natural order; coarse_top1 is the fourth headline key, counted but not shown.
  assert line == "retrieval/recall@1 80.0, retrieval/recall@2 85.0, retrieval/recall@10 97.0 (+1 more)"
  assert headline_summary({"a/x": 1.25, "a/x_ci95": 0.5}, ("nothing/*",)) == "a/x 1.2"


def test_figures_are_wanted_only_with_matplotlib_the_setting_and_the_environment(monkeypatch):
  import importlib.util

  from coarse2fine.config_base import base_config
  from coarse2fine.engine import reporting

  config = base_config()
  monkeypatch.setenv(reporting.FIGURES_ENV, "1")
  installed = importlib.util.find_spec("matplotlib") is not None
  assert reporting.figures_wanted(config) == installed
  real = importlib.util.find_spec
  monkeypatch.setattr(reporting.importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib"
                      else real(name, *a))
  assert not reporting.figures_wanted(config)  # the README's plain install: no "drawing figures" line
  monkeypatch.setattr(reporting.importlib.util, "find_spec", real)
  config.logging.figures = False
  assert not reporting.figures_wanted(config)
  config.logging.figures = True
  monkeypatch.setenv(reporting.FIGURES_ENV, "0")
  assert not reporting.figures_wanted(config)
