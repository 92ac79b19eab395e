"""coarse2fine.figures (and `python -m coarse2fine.plot`): the selections, counts and layouts behind each figure
against numpy/scipy/PIL on hand-made inputs, and plot_run on tiny trained runs."""

import json
import math
import os

import ml_collections
import numpy as np
import pytest
import scipy.optimize
import scipy.special
from PIL import Image

pytest.importorskip("matplotlib")

from coarse2fine import figures  # noqa: E402
from coarse2fine.data.splits import HierarchicalData, Split  # noqa: E402
from coarse2fine.data.taxonomy import Taxonomy  # noqa: E402
from coarse2fine.engine import loop  # noqa: E402
from coarse2fine.figures import clusters, curves, embedding, relation  # noqa: E402
from coarse2fine.figures import run as run_figures  # noqa: E402
from coarse2fine.methods import Discovered  # noqa: E402


def _png_size(path) -> tuple[int, int]:
  """(width, height) of a PNG that decodes completely."""
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with Image.open(path) as image:
    image.load()  # decodes every pixel: a truncated file fails here
    assert image.format == "PNG"
    return image.size


def _pixels(inches: tuple[float, float]) -> tuple[int, int]:
  return round(inches[0] * figures.DPI), round(inches[1] * figures.DPI)


def _hungarian_order(pred, fine, num_clusters):
  """Discovered classes matched to fine classes by scipy on a numpy confusion, in fine-class order, then the rest."""
  confusion = np.zeros((num_clusters, fine.max() + 1))
  for p, t in zip(pred, fine):
    if t >= 0:
      confusion[p, t] += 1
  rows, cols = scipy.optimize.linear_sum_assignment(confusion, maximize=True)
  matched = [k for _, k in sorted(zip(cols, rows))]
  return np.array(matched + [k for k in range(num_clusters) if k not in matched]), confusion


def _most_confident(logits, max_rows=20, per_row=10):
  """(cluster, indices) by falling cluster size, each with its most probable members first."""
  pred = logits.argmax(1)
  prob = scipy.special.softmax(logits.astype(np.float64), axis=1).max(1)
  sizes = sorted(((-(pred == k).sum(), k) for k in range(logits.shape[1]) if (pred == k).any()))
  rows = []
  for _, k in sizes[:max_rows]:
    members = np.flatnonzero(pred == k)
    rows.append((k, members[np.argsort(-prob[members], kind="stable")][:per_row]))
  return rows


# ----------------------------------------------------------------------------- hand-made inputs


def test_contingency_equals_histogram2d():
  rng = np.random.default_rng(0)
  rows, cols = rng.integers(0, 7, 500), rng.integers(-1, 4, 500)  # -1: unknown fine labels, left out
  counts = figures.contingency(rows, cols, 7, 4)
  known = cols >= 0
  expected, _, _ = np.histogram2d(rows[known], cols[known], bins=[np.arange(8), np.arange(5)])
  np.testing.assert_array_equal(counts, expected.astype(np.int64))


def test_many_clusters_are_grouped_by_the_fine_class_they_match():
  """6 discovered classes over 3 fine classes: each fine class's Hungarian match first, then the extra classes
  that mostly hold it, larger first; an empty class last."""
  # cluster: (fine class, members)
  members = {0: [(1, 30), (0, 2)], 1: [(0, 20)], 2: [(2, 25)], 3: [(1, 5)], 4: [(0, 8), (2, 1)], 5: []}
  pred = np.concatenate([[k] * n for k, pairs in members.items() for _, n in pairs]).astype(int)
  fine = np.concatenate([[f] * n for pairs in members.values() for f, n in pairs]).astype(int)
  m = relation.match_clusters(pred, fine, 6, 3)
  # Matches (scipy on the counts): fine 0 -> 1, fine 1 -> 0, fine 2 -> 2; extra 4 holds mostly 0, 3 holds 1.
  np.testing.assert_array_equal(m.order, [1, 4, 0, 3, 2, 5])
  np.testing.assert_array_equal(m.fine, [1, 0, 2, 1, 0, -1])
  np.testing.assert_array_equal(m.matched, [True, True, True, False, False, False])
  order, confusion = _hungarian_order(pred, fine, 6)
  np.testing.assert_array_equal(m.order[m.matched[m.order]], order[:3])
  np.testing.assert_array_equal(m.counts, confusion.astype(int))
  assert relation.row_label(4, "Coat", False) == "cluster 4 -> mostly Coat"
  assert relation.row_label(1, "Coat", True) == "cluster 1 -> Coat"


def test_relation_order_recovers_a_permutation():
  """Clusters that are a relabelling of the fine classes (with noise) come back in fine-class order."""
  rng = np.random.default_rng(0)
  fine = rng.integers(0, 6, 600)
  relabel = np.array([4, 0, 7, 2, 6, 1])  # fine class -> cluster; clusters 3 and 5 hold only noise
  pred = np.where(rng.random(600) < 0.8, relabel[fine], rng.integers(0, 8, 600))
  m = figures.match_clusters(pred, fine, 8, 6)
  np.testing.assert_array_equal(m.order[m.matched[m.order]], relabel)
  np.testing.assert_array_equal(relabel, _hungarian_order(pred, fine, 8)[0][:6])
  assert (np.diff(m.fine[m.order]) >= 0).all()  # rows grouped by fine class: the noise clusters join one
  np.testing.assert_array_equal(figures.relation_order(pred, fine, 8), m.order)
  # Unlabelled examples (-1) are left out of the matching, not counted as a class.
  masked = np.where(rng.random(600) < 0.3, -1, fine)
  m = figures.match_clusters(pred, masked, 8, 6)
  np.testing.assert_array_equal(m.order[m.matched[m.order]], relabel)


def test_purity_against_a_numpy_count():
  rng = np.random.default_rng(1)
  fine = rng.choice([-1, 0, 3, 3, 5], 200)
  p = figures.purity(fine)
  known = fine[fine >= 0]
  values, counts = np.unique(known, return_counts=True)
  assert p == (values[counts.argmax()], pytest.approx(counts.max() / len(known)), 200)
  assert figures.purity(np.full(7, -1)).majority == -1 and math.isnan(figures.purity(np.full(7, -1)).share)
  label = clusters.row_label(3, "Tops", figures.Purity(1, 0.854, 812), ["a", "Coat"])
  assert label.splitlines() == ["cluster 3 -> Tops", "n=812", "mostly: Coat 85%"]
  assert clusters.row_label(3, "Tops", figures.Purity(-1, float("nan"), 9), []).endswith("mostly: ?")


def test_cluster_colours_follow_the_matched_fine_class():
  fine_colours = figures.palette(3)
  colours = embedding.cluster_colours(np.array([2, 0, 1, 1, -1, 1]), np.array([True, True, False, True, False, False]),
                                      fine_colours)
  np.testing.assert_array_equal(colours[[0, 1, 3]], fine_colours[[2, 0, 1]])  # matched: their fine class's colour
  lighter, darker = colours[2, :3] - fine_colours[1, :3], colours[5, :3] - fine_colours[1, :3]
  assert (lighter >= 0).all() and lighter.sum() > 0.1  # the first extra class of fine class 1: a lighter shade
  assert (darker <= 0).all() and darker.sum() < -0.1  # the second: a darker one
  np.testing.assert_array_equal(colours[4], [0.6, 0.6, 0.6, 1.0])  # no known fine label: grey
  assert len({tuple(c) for c in figures.palette(30)}) == 30  # 30 sub-classes without fine labels: 30 colours


def test_resolve_projections(monkeypatch):
  assert figures.resolve_projections("tsne") == (("tsne",), None)
  monkeypatch.setattr(embedding, "umap_available", lambda: False)
  projections, note = figures.resolve_projections("auto")
  assert projections == ("tsne",) and "umap-learn is not installed" in note
  with pytest.raises(ImportError, match="umap-learn"):
    figures.resolve_projections("umap")
  with pytest.raises(ValueError, match="tsne, umap, both"):
    figures.resolve_projections("pca")
  monkeypatch.setattr(embedding, "umap_available", lambda: True)
  assert figures.resolve_projections("both") == (("tsne", "umap"), None)
  assert figures.resolve_projections("auto") == (("tsne", "umap"), None)


def test_science_curves_and_diagnostics_are_separate(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = [{"step": 2, "train/loss": 3.0, "train/epoch": 0.5, "train/ce": 1.0, "train/coarse_accuracy": 0.4,
            "train/learning_rate": 0.1, "train/grad_norm": 2.0, "train/tau": 1.0},
           {"step": 4, "train/loss": 2.0}, {"step": 4, "train/loss": 1.5},  # a resumed run logs step 4 again
           {"step": 4, "test/coarse_top1": 50.0, "fewshot/5way_1shot": 40.0, "fewshot/5way_1shot_ci95": 1.5,
            "discovery/acc": 30.0, "discovery/kmeans_acc": 25.0, "discovery/clusters_acc": 30.0,
            "discovery/kmeans_nmi": 10.0, "discovery/ged": 2.0, "relation/beta": 0.1, "time/step_seconds": 0.2,
            "estep/nmi": 30.0, "estep/purity": 40.0, "estep/iterations": 70},
           {"step": 8, "train/loss": 1.0}, {"step": 8, "test/coarse_top1": 70.0}]
  path.write_text("".join(json.dumps(line) + "\n" for line in lines))
  series = figures.read_curves(str(path))
  np.testing.assert_array_equal(series["train/loss"][0], [2, 4, 8])
  np.testing.assert_array_equal(series["train/loss"][1], [3.0, 1.5, 1.0])
  panels = figures.science_panels(series)
  assert panels == [("train/loss", ["train/loss"]), ("loss terms", ["train/ce"]),
                    ("training accuracies (batch share)", ["train/coarse_accuracy"]),
                    ("evaluation: test (%)", ["test/coarse_top1"]),
                    ("evaluation: discovery (%)", ["discovery/acc"]),
                    ("evaluation: discovery accuracy vs k-means (%)", ["discovery/clusters_acc", "discovery/kmeans_acc"]),
                    ("evaluation: relation edit distance (lower is better)", ["discovery/ged"]),
                    ("evaluation: fewshot (%)", ["fewshot/5way_1shot"]),
                    ("estep: against the fine labels", ["estep/nmi", "estep/purity"])]
  assert figures.diagnostic_names(series) == ["estep/iterations", "relation/beta", "time/step_seconds",
                                              "train/grad_norm", "train/learning_rate", "train/tau"]
  # 9 panels, 3 a row: 3 rows of 2.8 inches under a 0.5-inch title; diagnostics 6 panels, 4 a row: 2 rows.
  assert _png_size(figures.plot_curves(series, str(tmp_path / "c.png"))) == _pixels((12.0, 0.5 + 3 * 2.8))
  assert _png_size(figures.plot_diagnostics(series, str(tmp_path / "d.png"))) == _pixels((12.0, 0.5 + 2 * 2.2))
  with pytest.raises(ValueError, match="train/loss"):
    figures.plot_curves({"test/acc": series["test/coarse_top1"]}, str(tmp_path / "e.png"))
  assert not (tmp_path / "e.png").exists()
  assert sorted(os.listdir(tmp_path)) == ["c.png", "d.png", "metrics.jsonl"]  # no temporary files left


def _hand_made_outputs(fine_known: bool, relation_known: bool = True) -> run_figures.RunOutputs:
  """12 grey 6x6 images in 3 coarse x 2 fine classes; 5 discovered classes (4 populated) with logits by hand."""
  taxonomy = Taxonomy.from_groups("t", {"tops": ["shirt", "coat"], "shoes": ["boot", "sandal"],
                                        "bags": ["bag", "purse"]})
  fine = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 0])
  coarse = taxonomy.fine_to_coarse[fine]
  images = (np.arange(12)[:, None, None, None] * 20 * np.ones((1, 6, 6, 1))).astype(np.uint8)
  pred = np.array([0, 0, 0, 3, 1, 1, 1, 3, 2, 2, 2, 0])  # class 4 stays empty
  logits = np.full((12, 5), -2.0)
  logits[np.arange(12), pred] = np.linspace(1, 3, 12)
  split = Split(images, coarse.astype(np.int32), (fine if fine_known else np.full(12, -1)).astype(np.int32))
  data = HierarchicalData("hand", taxonomy, split, split)
  parents = np.eye(3, dtype=np.int64)[[0, 1, 2, 0, 1]]
  config = ml_collections.ConfigDict({"method": "toy", "data": {"name": "hand"}, "eval": {"features": "features"}})
  features = np.random.default_rng(0).normal(size=(12, 4)) + np.eye(5)[pred][:, :4] * 3
  return run_figures.RunOutputs(config, data, split, {"features": features, "cluster_logits": logits},
                                Discovered([parents]) if relation_known else None)


@pytest.mark.parametrize("fine_known", [True, False])
def test_figures_of_hand_made_outputs(fine_known, tmp_path):
  outputs = _hand_made_outputs(fine_known)
  # Embedding: the left panel the discovered classes, the right the fine classes (coarse without fine labels).
  points = outputs.predictions["features"]
  left, right = run_figures.embedding_panels(outputs, np.arange(12), points, seed=0)
  np.testing.assert_array_equal(left.labels, outputs.predictions["cluster_logits"].argmax(1))
  np.testing.assert_array_equal(right.labels, outputs.split.fine if fine_known else outputs.split.coarse)
  assert ("fine class" in right.title) == fine_known and ("no fine labels" in right.title) != fine_known
  if fine_known:  # a discovered class shares its matched fine class's colour
    m = relation.match_clusters(left.labels, outputs.split.fine, 5, 6)
    for k in np.flatnonzero(m.matched):
      np.testing.assert_array_equal(left.colours[k], right.colours[m.fine[k]])
  (written,) = run_figures.write_embeddings(outputs, str(tmp_path), ("tsne",), 100, 0)
  assert _png_size(written) == _pixels(figures.EMBEDDING_SIZE)
  # Clusters grid: the 4 populated classes of 5, a row each, and the title says so.
  path = run_figures.write_clusters(outputs, str(tmp_path / "clusters.png"))
  assert _png_size(path) == _pixels(clusters.clusters_figure_size(4))
  rows = figures.cluster_rows(outputs.predictions["cluster_logits"])
  assert [k for k, _ in rows] == [k for k, _ in _most_confident(outputs.predictions["cluster_logits"])]
  # Relation: drawn either way (against fine or coarse classes).
  assert _png_size(run_figures.write_relation(outputs, str(tmp_path / "relation.png")))[0] > 300
  assert sorted(os.listdir(tmp_path)) == ["clusters.png", "embedding_tsne.png", "relation.png"]


@pytest.mark.slow  # 80 s in the default suite: UMAP's numba compilation
def test_umap_map(tmp_path):
  pytest.importorskip("umap")
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 5, (3, 8))
  labels = np.repeat(np.arange(3), 20)
  points = centres[labels] + rng.normal(0, 0.3, (60, 8))
  xy, means_xy = figures.project(points, "umap", centres, seed=0)
  assert xy.shape == (60, 2) and means_xy.shape == (3, 2) and np.isfinite(xy).all()
  # Well-separated blobs stay apart: each point's nearest other point is in its own blob.
  distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(60) * 1e9
  assert (labels[distances.argmin(1)] == labels).all()
  outputs = _hand_made_outputs(True)
  (written,) = run_figures.write_embeddings(outputs, str(tmp_path), ("umap",), 100, 0)
  assert os.path.basename(written) == "embedding_umap.png"
  assert _png_size(written) == _pixels(figures.EMBEDDING_SIZE)


def test_without_cluster_predictions_the_map_uses_kmeans(tmp_path):
  outputs = _hand_made_outputs(True, relation_known=False)
  outputs.predictions.pop("cluster_logits")
  left, _ = run_figures.embedding_panels(outputs, np.arange(12), outputs.predictions["features"], seed=0)
  assert "k-means within each coarse class (6 clusters" in left.title
  # Within-coarse k-means: every cluster lies inside one coarse class.
  for k in np.unique(left.labels):
    assert len(np.unique(outputs.split.coarse[left.labels == k])) == 1


# ----------------------------------------------------------------------------- tiny trained runs


@pytest.fixture
def scgm_workdir(tiny_config, tmp_path):
  config = tiny_config
  config.method = "scgm_g"
  config.scgm.num_subclasses = 9
  config.eval.protocols = ("classification", "clusters")
  config.eval.every_epochs = 1  # an evaluation at the end of epoch 1 too: metrics at two steps
  workdir = str(tmp_path / "scgm")
  loop.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture
def fsc_images_workdir(tiny_config, tmp_path):
  config = tiny_config
  config.method = "fsc"
  config.fsc.head = "fsc"
  config.fsc.num_sub = 4
  config.data.synthetic.kind = "images"
  config.data.synthetic.image_shape = (8, 8, 1)
  config.data.synthetic.num_train = 128
  config.data.synthetic.num_test = 64
  config.data.views = ("crop_flip",)
  config.model.encoder = "convnet"
  config.model.encoder_args = ml_collections.ConfigDict({"widths": (8, 16)})
  config.train.batch_size = 32
  config.eval.batch_size = 64
  config.eval.protocols = ("classification", "clusters")
  workdir = str(tmp_path / "fsc")
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_scgm_run(scgm_workdir, tmp_path):
  out = str(tmp_path / "figures")
  projections = ("tsne",)  # UMAP: test_umap_map (its numba compile takes a while)
  written = figures.plot_run(scgm_workdir, out, max_points=100, seed=3, projection="tsne")
  names = ["embedding_tsne.png", "relation.png", "curves.png", "diagnostics.png"]
  assert written == [os.path.join(out, n) for n in names]
  assert sorted(os.listdir(out)) == sorted(names)  # no temporary files left behind
  for path in written[:len(projections)]:
    assert _png_size(path) == _pixels(figures.EMBEDDING_SIZE)
  outputs = figures.load_outputs(scgm_workdir)
  test = outputs.data.test
  # The 3 super-class + 9 sub-class means come out of the same fit as the points.
  super_means, sub_means = outputs.discovered.prototypes
  assert super_means.vectors.shape == (3, 32) and sub_means.vectors.shape == (9, 32)
  index = figures.subsample_indices(len(test), 100, seed=3)
  assert len(index) == len(np.unique(index)) == 100 and index.max() < len(test)
  for projection in projections:
    xy, means_xy = figures.project(outputs.predictions["embedding"][index],
                                   projection, np.concatenate([super_means.vectors, sub_means.vectors]), seed=3)
    assert xy.shape == (100, 2) and means_xy.shape == (12, 2) and np.isfinite(xy).all()
  # Relation rows: the Hungarian matches of scipy on a numpy confusion of the test cluster argmax come first.
  pred = outputs.predictions["cluster_logits"].argmax(1)
  m = relation.match_clusters(pred, test.fine, 9, outputs.data.taxonomy.num_fine)
  confusion = _hungarian_order(pred, test.fine, 9)[1]
  np.testing.assert_array_equal(m.counts, confusion)
  rows, cols = scipy.optimize.linear_sum_assignment(confusion, maximize=True)
  matched = m.order[m.matched[m.order]]
  assert confusion[matched, m.fine[matched]].sum() == confusion[rows, cols].sum()  # scipy's optimum
  # Curves: the evaluation after epochs 1 and 2 is a curve of two points, beside the training loss.
  series = figures.read_curves(os.path.join(scgm_workdir, "metrics.jsonl"))
  assert len(series["test/coarse_top1"][0]) == 2
  panels = [title for title, _ in figures.science_panels(series)]
  assert panels[0] == "train/loss" and "evaluation: test (%)" in panels and "evaluation: discovery (%)" in panels
  assert _png_size(written[-2]) == _pixels(curves.curves_figure_size(len(panels)))
  assert "train/learning_rate" in figures.diagnostic_names(series)


def test_image_run_clusters_grid(fsc_images_workdir, tmp_path):
  out = str(tmp_path / "figures")
  written = figures.plot_run(fsc_images_workdir, out, projection="tsne", max_rows=5)
  names = ["embedding_tsne.png", "relation.png", "clusters.png", "curves.png", "diagnostics.png"]
  assert written == [os.path.join(out, n) for n in names]
  outputs = figures.load_outputs(fsc_images_workdir)
  logits = outputs.predictions["cluster_logits"]
  assert logits.shape == (64, 12) and outputs.discovered.prototypes == ()
  rows = figures.cluster_rows(logits, 5)
  expected = _most_confident(logits, 5)
  assert [k for k, _ in rows] == [k for k, _ in expected]
  for (_, got), (_, want) in zip(rows, expected):
    np.testing.assert_array_equal(got, want)
  assert _png_size(written[2]) == _pixels(clusters.clusters_figure_size(len(expected)))
  # F-SC's fixed relation: sub-centre i*4 + k under class i, whatever the order.
  np.testing.assert_array_equal(outputs.relation, np.repeat(np.eye(3, dtype=int), 4, axis=0))
