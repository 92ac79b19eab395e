"""configs/falcon_subclasses_fashion_mnist.py: the 10 classes as coarse ones, 25 sub-classes, no fine labels."""

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import fashion_mnist
from coarse2fine.data.taxonomy import FASHION_MNIST_CLASSES
from coarse2fine.engine import loop

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs", "falcon_subclasses_fashion_mnist.py")


def _config():
  spec = importlib.util.spec_from_file_location("falcon_subclasses_fashion_mnist", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.fixture
def tiny_fashion_mnist(monkeypatch):
  """12 train and 4 test images per class in class order, each class two looks (a bright left or right half)."""
  rng = np.random.default_rng(0)

  def split(per_class):
    labels = np.repeat(np.arange(10), per_class)
    images = rng.integers(0, 40, (len(labels), 28, 28, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
      half = slice(0, 14) if i % 2 else slice(14, 28)
      images[i, 2 * label:2 * label + 8, half] = 220
    return images, labels

  arrays = {"train": split(12), "test": split(4)}
  monkeypatch.setattr(fashion_mnist, "read_arrays", lambda data_dir: arrays)
  return arrays


def test_the_ten_classes_are_the_coarse_ones_and_no_fine_label_is_known(tiny_fashion_mnist):
  config = _config()
  assert config.falcon.num_fine == 25 and config.eval.protocols == ("classification",)
  data = load_dataset(config.data)
  assert data.taxonomy.coarse_names == FASHION_MNIST_CLASSES
  for split, (images, labels) in ((data.train, tiny_fashion_mnist["train"]), (data.test, tiny_fashion_mnist["test"])):
    np.testing.assert_array_equal(split.inputs, images)
    np.testing.assert_array_equal(split.coarse, labels)
    assert (split.fine == -1).all()


@pytest.mark.slow  # a run with figures (54 s)
def test_a_few_steps_write_the_relation_and_the_clusters_grid(tiny_fashion_mnist, tmp_path):
  pytest.importorskip("matplotlib")
  from coarse2fine import figures

  config = _config()
  config.train.num_epochs, config.train.batch_size = 2, 40  # 3 steps an epoch
  config.train.log_every_steps = 1
  config.falcon.solve_every, config.falcon.warmup_steps, config.falcon.soft_label_epochs = 1, 0, 1
  config.falcon.neighbours, config.falcon.neighbours_used = 5, 2
  workdir = str(tmp_path / "run")
  metrics = loop.train_and_evaluate(config, workdir)["metrics"]  # under tests/conftest.py's unoptimised compiles
  assert set(metrics) == {"test/coarse_top1", "test/coarse_top5"}  # nothing that needs fine labels
  written = figures.plot_run(workdir, str(tmp_path / "plots"), max_rows=25, projection="tsne")
  assert [os.path.basename(p) for p in written] == ["embedding_tsne.png", "relation.png", "clusters.png",
                                                    "curves.png", "diagnostics.png"]
  outputs = figures.load_outputs(workdir)
  populated = len(np.unique(outputs.predictions["cluster_logits"].argmax(1)))
  with Image.open(written[2]) as grid:  # a 0.6-inch title, then a 0.8-inch row per populated class, at 100 dpi
    assert grid.size == (945, 60 + 80 * populated)
  relation = outputs.relation
  # 25 discovered classes, each under one of the 10 classes, every class with at least one.
  assert relation.shape == (25, 10) and (relation.sum(1) == 1).all() and (relation.sum(0) >= 1).all()
