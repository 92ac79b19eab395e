"""coarse2fine.figures (and `python -m coarse2fine.plot`): figures of tiny trained runs, and the selections behind them against numpy/scipy."""

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
from coarse2fine.engine import loop  # noqa: E402


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


def _metrics_lines(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def _expected_panels(lines: list[dict]) -> list[str]:
  """train/loss, the other train/* scalars but train/epoch, then other names logged at 2+ steps."""
  steps: dict[str, set] = {}
  for line in lines:
    for name in line:
      if name != "step":
        steps.setdefault(name, set()).add(line["step"])
  others = sorted(n for n in steps if n.startswith("train/") and n not in ("train/loss", "train/epoch"))
  return ["train/loss"] + others + sorted(n for n in steps if not n.startswith("train/") and len(steps[n]) > 1)


def _hungarian_order(pred, fine, num_clusters):
  """Discovered classes matched to fine classes by scipy on a numpy confusion, in fine-class order, then the rest."""
  confusion = np.zeros((num_clusters, fine.max() + 1))
  for p, t in zip(pred, fine):
    confusion[p, t] += 1
  rows, cols = scipy.optimize.linear_sum_assignment(confusion, maximize=True)
  matched = [k for _, k in sorted(zip(cols, rows))]
  return np.array(matched + [k for k in range(num_clusters) if k not in matched]), confusion


def _most_confident(logits, max_rows=20, per_row=8):
  """(cluster, indices) by falling cluster size, each with its most probable members first."""
  pred = logits.argmax(1)
  prob = scipy.special.softmax(logits.astype(np.float64), axis=1).max(1)
  sizes = sorted(((-(pred == k).sum(), k) for k in range(logits.shape[1]) if (pred == k).any()))
  rows = []
  for _, k in sizes[:max_rows]:
    members = np.flatnonzero(pred == k)
    rows.append((k, members[np.argsort(-prob[members], kind="stable")][:per_row]))
  return rows


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
  written = figures.plot_run(scgm_workdir, out, max_points=100, seed=3)
  names = ["embedding_tsne.png", "relation.png", "curves.png"]
  assert written == [os.path.join(out, n) for n in names]
  assert sorted(os.listdir(out)) == sorted(names)  # no temporary files left behind
  lines = _metrics_lines(scgm_workdir)
  panels = _expected_panels(lines)
  assert "test/coarse_top1" in panels  # evaluated after epochs 1 and 2
  assert _png_size(written[0]) == _pixels(figures.EMBEDDING_SIZE) == (800, 700)
  assert _png_size(written[1]) == _pixels(figures.RELATION_SIZE)
  assert _png_size(written[2]) == _pixels((12.0, 3.5 + 2.4 * math.ceil((len(panels) - 1) / 4)))

  outputs = figures.load_outputs(scgm_workdir)
  test = outputs.data.test
  # t-SNE: the subset honours max_points, and the 3 super-class + 9 sub-class means come out of the same fit.
  index = figures.subsample_indices(len(test), 100, seed=3)
  assert len(index) == len(np.unique(index)) == 100 and index.max() < len(test)
  super_means, sub_means = outputs.discovered.prototypes
  assert super_means.vectors.shape == (3, 32) and sub_means.vectors.shape == (9, 32)
  assert outputs.map_space == "embedding"
  # Colours: each super-class mean its own class, each sub-class mean the parent in the relation.
  np.testing.assert_array_equal(super_means.coarse, np.arange(3))
  np.testing.assert_array_equal(sub_means.coarse, outputs.relation.argmax(1))
  means = np.concatenate([super_means.vectors, sub_means.vectors])
  xy, means_xy = figures.tsne_coordinates(outputs.predictions["embedding"][index], means, seed=3)
  assert xy.shape == (100, 2) and means_xy.shape == (12, 2)
  assert np.isfinite(xy).all() and np.isfinite(means_xy).all()
  # Relation rows: the Hungarian order of scipy on a numpy confusion of the test cluster argmax.
  pred = outputs.predictions["cluster_logits"].argmax(1)
  order = figures.relation_order(pred, test.fine, 9)
  expected, confusion = _hungarian_order(pred, test.fine, 9)
  assert sorted(order) == list(range(9))
  # Both orders reach the optimum; when it is unique (no ties) they are the same order.
  assert confusion[order, np.arange(9)].sum() == confusion[expected, np.arange(9)].sum()
  np.testing.assert_array_equal(order, expected)
  # Curves: exactly the steps and losses written.
  series = figures.read_curves(os.path.join(scgm_workdir, "metrics.jsonl"))
  losses = [(line["step"], line["train/loss"]) for line in lines if "train/loss" in line]
  np.testing.assert_array_equal(series["train/loss"][0], [s for s, _ in losses])
  np.testing.assert_array_equal(series["train/loss"][1], [v for _, v in losses])
  evals = [(line["step"], line["test/coarse_top1"]) for line in lines if "test/coarse_top1" in line]
  assert [tuple(p) for p in zip(*series["test/coarse_top1"])] == evals and len(evals) == 2
  assert figures.curve_panels(series) == panels


def test_image_run_clusters_grid(fsc_images_workdir, tmp_path):
  out = str(tmp_path / "figures")
  written = figures.plot_run(fsc_images_workdir, out)
  names = ["embedding_tsne.png", "relation.png", "clusters.png", "curves.png"]
  assert written == [os.path.join(out, n) for n in names]
  outputs = figures.load_outputs(fsc_images_workdir)
  logits = outputs.predictions["cluster_logits"]
  assert logits.shape == (64, 12) and outputs.discovered.prototypes == ()
  assert outputs.map_space == outputs.config.eval.features
  rows = figures.cluster_rows(logits)
  expected = _most_confident(logits)
  assert [k for k, _ in rows] == [k for k, _ in expected]
  for (_, got), (_, want) in zip(rows, expected):
    np.testing.assert_array_equal(got, want)
  assert _png_size(written[2]) == (1100, 50 + 100 * len(expected))
  # F-SC's fixed relation: sub-centre i*4 + k under class i, whatever the order.
  np.testing.assert_array_equal(outputs.relation, np.repeat(np.eye(3, dtype=int), 4, axis=0))


def test_relation_order_recovers_a_permutation():
  """Clusters that are a relabelling of the fine classes (with noise) come back in fine-class order."""
  rng = np.random.default_rng(0)
  fine = rng.integers(0, 6, 600)
  relabel = np.array([4, 0, 7, 2, 6, 1])  # fine class -> cluster; clusters 3 and 5 stay empty
  pred = np.where(rng.random(600) < 0.8, relabel[fine], rng.integers(0, 8, 600))
  order = figures.relation_order(pred, fine, 8)
  np.testing.assert_array_equal(order, [4, 0, 7, 2, 6, 1, 3, 5])
  np.testing.assert_array_equal(order, _hungarian_order(pred, fine, 8)[0])
  # Unlabelled examples (-1) are left out of the matching, not counted as a class.
  masked = np.where(rng.random(600) < 0.3, -1, fine)
  np.testing.assert_array_equal(figures.relation_order(pred, masked, 8), order)


def test_read_curves_keeps_the_last_value_of_a_repeated_step(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = [{"step": 2, "train/loss": 3.0, "train/epoch": 0.5}, {"step": 4, "train/loss": 2.0},
           {"step": 4, "train/loss": 1.5},  # a resumed run logs step 4 again
           {"step": 4, "test/acc": 50.0}, {"step": 8, "train/loss": 1.0}, {"step": 8, "test/acc": 70.0},
           {"step": 8, "discovery/acc": 40.0}]
  path.write_text("".join(json.dumps(line) + "\n" for line in lines))
  series = figures.read_curves(str(path))
  np.testing.assert_array_equal(series["train/loss"][0], [2, 4, 8])
  np.testing.assert_array_equal(series["train/loss"][1], [3.0, 1.5, 1.0])
  # One evaluation only (discovery/acc): no curve; train/epoch: the step rescaled.
  assert figures.curve_panels(series) == ["train/loss", "test/acc"]
  written = figures.plot_curves(series, str(tmp_path / "c.png"))
  assert _png_size(written) == (1200, 590)
  with pytest.raises(ValueError, match="train/loss"):
    figures.plot_curves({"test/acc": series["test/acc"]}, str(tmp_path / "d.png"))
  assert not (tmp_path / "d.png").exists()
