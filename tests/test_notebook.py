"""notebooks/quickstart.ipynb: how it finds the configs, its saved outputs, and end-to-end runs (nbclient): on
tiny local Fashion-MNIST-shaped data in the default suite, and as shipped on the real data under `slow`."""

import ast
import json
import os
import re
import time

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from coarse2fine.data.datasets import fashion_mnist, idx
from tests import multi_device

NOTEBOOK = os.path.join(multi_device.REPO, "notebooks", "quickstart.ipynb")
BADGE = "https://colab.research.google.com/github/{org}/coarse2fine/blob/main/notebooks/quickstart.ipynb"


def _read():
  return nbformat.read(NOTEBOOK, as_version=4)


def _code(notebook):
  return [c for c in notebook.cells if c.cell_type == "code"]


def _parameters_cell(notebook):
  cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
  assert len(cells) == 1, "the notebook needs exactly one cell tagged 'parameters'"
  return cells[0]


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


def _execute(notebook, cwd, timeout=900):
  start = time.perf_counter()
  NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
  return time.perf_counter() - start


def _outputs(notebook, kind):
  return [out for cell in _code(notebook) for out in cell.get("outputs", []) if kind in out.get("data", {})]


def _stream(notebook):
  return "".join(out.get("text", "") for cell in _code(notebook) for out in cell.get("outputs", [])
                 if out.get("output_type") == "stream")


def _tables(notebook):
  """{row label: [cells]} of every markdown table the notebook displays."""
  rows = {}
  for out in _outputs(notebook, "text/markdown"):
    for line in out["data"]["text/markdown"].splitlines():
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      if len(cells) > 1 and not line.startswith("|---") and cells[0] != "model":
        rows[cells[0]] = cells[1:]
  return rows


def _check_tables_and_figures(notebook, workdir):
  """The tables show each run's results.json, each metric where the method is meant to be scored."""
  results = {}
  for run in ("coarse", "scgm", "falcon"):
    with open(os.path.join(workdir, run, "results.json")) as f:
      results[run] = json.load(f)["metrics"]
  rows = _tables(notebook)
  for label, run in (("coarse (baseline)", "coarse"), ("SCGM", "scgm")):
    m = results[run]
    assert rows[label] == [f"{m['fewshot/allway_1shot']:.1f} ± {m['fewshot/allway_1shot_ci95']:.1f}",
                           f"{m['fewshot/intra_1shot']:.1f} ± {m['fewshot/intra_1shot_ci95']:.1f}",
                           f"{m['test/coarse_top1']:.1f}"], label
  for label, run in (("coarse + k-means (baseline)", "coarse"), ("FALCON", "falcon")):
    m = results[run]
    assert rows[label] == [f"{m[k]:.1f}" for k in ("discovery/acc", "discovery/ari", "discovery/nmi",
                                                   "discovery/relation_acc")], label
  assert "discovery/kmeans_acc" in results["coarse"]  # the baseline's discovery is k-means on its features
  assert "discovery/clusters_acc" in results["falcon"]  # FALCON's is its own classifier
  for run, name in (("scgm", "embedding_tsne.png"), ("falcon", "relation.png"), ("falcon", "clusters.png")):
    assert os.path.getsize(os.path.join(workdir, run, name)) > 1000, (run, name)
  assert len(_outputs(notebook, "image/png")) == 3  # SCGM's map, FALCON's relation and its classes
  for run in ("coarse", "scgm", "falcon"):  # a progress line while each trains, and its time at the end
    assert re.search(rf"== {run}: trained and evaluated in \d+ s", _stream(notebook)), run
  # the tqdm bar's text as the kernel's stderr receives it: "step 6/12 [00:03<00:03, loss 1.0642, 2,341 ex/s]"
  assert len(re.findall(r"step \d+/\d+ \[[^\]]*loss \d", _stream(notebook))) >= 3


# ----------------------------------------------------------------------------- the shipped file


def test_notebook_carries_a_badge_and_the_outputs_of_a_real_run():
  notebook = _read()
  first = notebook.cells[0].source
  assert re.search(re.escape(BADGE).replace(r"\{org\}", r"[\w.-]+"), first), "no Open-in-Colab badge"
  counts = [cell.get("execution_count") for cell in _code(notebook)]
  assert counts == list(range(1, len(counts) + 1)), f"not saved from one run in order: {counts}"
  for cell in _code(notebook):
    assert not [o for o in cell.outputs if o.get("output_type") == "error"], cell.source[:200]
  rows = _tables(notebook)
  assert set(rows) == {"coarse (baseline)", "SCGM", "coarse + k-means (baseline)", "FALCON"}
  assert len(_outputs(notebook, "image/png")) == 3
  # the saved run is the shipped parameters' run: its step counts follow from them
  params = {}
  exec(_parameters_cell(notebook).source, params)  # noqa: S102 (the repository's own notebook)
  n, epochs = params["COMMON"]["data.train_examples"], params["OVERRIDES"]["falcon"]["train.num_epochs"]
  assert f"step {epochs * (n // 256)}/{epochs * (n // 256)}" in _stream(notebook)  # FALCON: batch 256, full batches


def _find_repository(namespace):
  """The notebook's `find_repository`, run in `namespace`."""
  setup = next(c.source for c in _code(_read()) if "def find_repository" in c.source)
  tree = ast.parse(setup)
  keep = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
  exec(compile(ast.Module(body=keep, type_ignores=[]), "notebook", "exec"), namespace)  # noqa: S102
  return namespace["find_repository"]


def test_finds_the_repository_from_a_clone_from_the_package_or_says_what_to_do(tmp_path, monkeypatch):
  clone = tmp_path / "clone"
  (clone / "configs").mkdir(parents=True)
  (clone / "setup.py").write_text("")
  (clone / "notebooks" / "deep").mkdir(parents=True)
  monkeypatch.chdir(clone / "notebooks" / "deep")  # a clone: found by walking up
  namespace = {"REPO_URL": ""}
  find = _find_repository(namespace)
  assert find() == str(clone)
  outside = tmp_path / "elsewhere"
  outside.mkdir()
  monkeypatch.chdir(outside)  # not in a clone: the installed package's folder (an editable install here)
  assert find() == multi_device.REPO
  monkeypatch.setattr(namespace["importlib"].util, "find_spec", lambda name: None)  # nothing installed
  with pytest.raises(FileNotFoundError, match="run the notebook inside a clone"):
    find()


# ----------------------------------------------------------------------------- executed


@pytest.mark.slow  # executes every cell (67 s); the static checks above stay in the default suite
def test_runs_on_tiny_data(tmp_path, monkeypatch):
  """The whole notebook in seconds: 600 training images, one epoch, 20 episodes, run from notebooks/."""
  data_dir, workdir = tmp_path / "fmnist", tmp_path / "runs"
  data_dir.mkdir()
  _write_fashion_mnist(str(data_dir))
  notebook = _read()
  tiny = {"train.num_epochs": 1, "train.batch_size": 100, "eval.batch_size": 100, "eval.fewshot_episodes": 20,
          "eval.fewshot_settings": ("allway", "intra"), "train.log_every_steps": 2, "checkpoint.every_steps": 100,
          "logging.figures": False}
  overrides = {"coarse": {"eval.protocols": ("classification", "fewshot", "kmeans")},
               "scgm": {"train.num_epochs": 2, "eval.protocols": ("classification", "fewshot")},
               "falcon": {"falcon.warmup_steps": 0, "falcon.solve_every": 2,
                          "eval.protocols": ("classification", "clusters")}}
  _parameters_cell(notebook).source = (f"REPO_URL = ''\nDATA_DIR = {str(data_dir)!r}\nWORKDIR = {str(workdir)!r}\n"
                                       f"COMMON = {tiny!r}\nOVERRIDES = {overrides!r}\n")
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")  # the kernel compiles three runs: values suffice here
  _execute(notebook, os.path.join(multi_device.REPO, "notebooks"))
  _check_tables_and_figures(notebook, workdir)


@pytest.mark.slow
def test_runs_as_shipped_on_fashion_mnist(tmp_path):
  """The shipped parameters on the real Fashion-MNIST, run from outside the clone (the package's configs)."""
  if fashion_mnist.read_idx_dir(fashion_mnist.DEBIAN_DIR) is None:
    pytest.skip(f"no Fashion-MNIST in {fashion_mnist.DEBIAN_DIR}")
  notebook = _read()
  _parameters_cell(notebook).source += f"\nWORKDIR = {str(tmp_path / 'runs')!r}\n"
  seconds = _execute(notebook, tmp_path, timeout=1800)
  _check_tables_and_figures(notebook, tmp_path / "runs")
  print(f"quickstart.ipynb as shipped: {seconds:.0f} s")
