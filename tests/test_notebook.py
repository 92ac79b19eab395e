"""notebooks/quickstart.ipynb end to end (nbclient) on a tiny local Fashion-MNIST-shaped dataset."""

import json
import os

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from coarse2fine.data.datasets import fashion_mnist, idx
from tests import multi_device

pytestmark = pytest.mark.slow  # executes the notebook: about 2 minutes (the second CI step)

NOTEBOOK = os.path.join(multi_device.REPO, "notebooks", "quickstart.ipynb")


def _write_fashion_mnist(folder, n_train=600, n_test=200, seed=0):
  """IDX files whose classes differ in brightness and layout, so the runs have something to learn."""
  rng = np.random.default_rng(seed)
  for split, n in (("train", n_train), ("test", n_test)):
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
      images[i, 2 * label:2 * label + 8, :] += 150  # a bright band whose height tells the class
    image_file, label_file = fashion_mnist.FILES[split]
    idx.write_idx(os.path.join(folder, image_file + ".gz"), images)
    idx.write_idx(os.path.join(folder, label_file + ".gz"), labels.astype(np.uint8))


def _parameters(data_dir, workdir):
  overrides = {"train.num_epochs": 2, "train.batch_size": 100, "eval.batch_size": 100, "eval.fewshot_episodes": 20,
               "falcon.warmup_steps": 0, "falcon.solve_every": 2, "checkpoint.every_steps": 100}
  return (f"REPO_URL = ''\nREPO_DIR = {multi_device.REPO!r}\nDATA_DIR = {str(data_dir)!r}\n"
          f"WORKDIR = {str(workdir)!r}\nOVERRIDES = {overrides!r}\n")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  folder = tmp_path_factory.mktemp("notebook")
  data_dir, workdir = folder / "fmnist", folder / "runs"
  data_dir.mkdir()
  _write_fashion_mnist(str(data_dir))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  parameters = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
  assert len(parameters) == 1, "the notebook needs exactly one cell tagged 'parameters'"
  parameters[0].source = _parameters(data_dir, workdir)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(folder)}}).execute()
  return notebook, workdir


def _outputs(notebook, kind):
  return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
          if kind in out.get("data", {})]


def test_the_table_shows_both_runs_results(executed):
  notebook, workdir = executed
  (table,) = [out["data"]["text/markdown"] for out in _outputs(notebook, "text/markdown")]
  rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| S") or
          line.startswith("| F")}
  for name, run in (("SCGM", "scgm"), ("FALCON", "falcon")):
    with open(os.path.join(workdir, run, "results.json")) as f:
      metrics = json.load(f)["metrics"]
    cells = [c.strip() for c in rows[name].split("|")[2:-1]]
    assert cells[0] == f"{metrics['test/coarse_top1']:.1f}"
    assert cells[4] == f"{metrics['discovery/acc']:.1f}"  # each method's own discovered classes


def test_the_figures_are_written_and_shown(executed):
  notebook, workdir = executed
  for run, names in (("scgm", ("embedding_tsne.png", "relation.png", "curves.png")),
                     ("falcon", ("embedding_tsne.png", "relation.png", "clusters.png", "curves.png"))):
    for name in names:
      assert os.path.getsize(os.path.join(workdir, run, "plots", name)) > 1000, (run, name)
  assert len(_outputs(notebook, "image/png")) == 5  # SCGM's map, FALCON's relation and clusters, two curves
