"""A method defined only in tests/ runs through every entry point: main, the API, evaluate and plot.

Nothing in coarse2fine/ names it: the class registers itself (`register_method`), its config
section joins the schema (`base_config`), and a run records its module (`method_modules`).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.methods.toy import method as toy_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

CONFIG_FILE = f'''
import {toy_module.MODULE}  # registers "toy" before the schema is assembled
from coarse2fine.config_base import base_config


def get_config():
  config = base_config()
  config.method = "toy"
  config.method_modules = ("{toy_module.MODULE}",)
  config.data.name = "synthetic"
  config.data.synthetic.kind = "images"
  config.data.synthetic.image_shape = (8, 8, 1)
  config.data.synthetic.num_train = 256
  config.data.synthetic.num_test = 128
  config.data.views = ("none",)
  config.train.num_epochs = 2
  config.train.batch_size = 32
  config.train.log_every_steps = 4
  config.eval.batch_size = 64
  config.eval.protocols = ("classification", "clusters")
  config.logging.progress = False
  return config
'''


def _run(*args, cwd):
  # The toy's package (this repository's tests/) is on PYTHONPATH, as a user's own package would be installed.
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get(
      "PYTHONPATH")]))}
  done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                        env=env, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


@pytest.mark.slow  # four commands (64 s); the API half below stays in the default suite
@pytest.mark.usefixtures("toy_registered")
def test_toy_method_runs_through_main_evaluate_and_plot(tmp_path):
  config_file = tmp_path / "toy_config.py"
  config_file.write_text(CONFIG_FILE)
  workdir = tmp_path / "run"
  _run("coarse2fine.main", f"--config={config_file}", f"--workdir={workdir}", "--config.toy.num_clusters=4",
       cwd=REPO)
  with open(workdir / "config.json") as f:
    recorded = json.load(f)
  assert recorded["toy"] == {"num_clusters": 4, "embedding_dim": 8}  # the section and the override
  with open(workdir / "results.json") as f:
    trained = json.load(f)["metrics"]
  assert trained["test/coarse_top1"] > 60.0  # 3 well-separated coarse classes; chance is 33
  assert {"discovery/clusters_acc", "discovery/clusters_nmi"} <= set(trained)  # the toy's own classes

  # A fresh process that knows nothing of "toy" but what config.json says restores the same model.
  _run("coarse2fine.evaluate", f"--workdir={workdir}", cwd=str(tmp_path))
  with open(workdir / "eval.json") as f:
    evaluated = json.load(f)["metrics"]
  for name, value in trained.items():
    assert evaluated[name] == pytest.approx(value, abs=1e-6), name

  printed = _run("coarse2fine.plot", f"--workdir={workdir}", "--max_points=100", "--projection=tsne",
                 cwd=str(tmp_path)).split()
  assert sorted(os.path.basename(p) for p in printed) == [
      "clusters.png", "curves.png", "diagnostics.png", "embedding_tsne.png", "relation.png"]
  for path in printed:
    with Image.open(path) as image:
      assert image.format == "PNG" and min(image.size) > 100


@pytest.fixture
def toy_registered():
  """The toy stays registered only during the test that uses it (the schema of other tests has no `toy`)."""
  from coarse2fine.methods import METHODS
  METHODS["toy"] = toy_module.Toy
  yield
  METHODS.pop("toy", None)


@pytest.mark.usefixtures("toy_registered")
def test_toy_method_through_the_api(tmp_path):
  import coarse2fine as c2f
  from coarse2fine.config_base import base_config

  assert base_config().toy.num_clusters == 6  # the registered method's section is in the schema
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 3, (3, 12))
  coarse = rng.integers(0, 3, 300)
  x = (centres[coarse] + rng.normal(0, 1, (300, 12))).astype(np.float32)
  model = c2f.fit(x, coarse, method="toy", num_fine=5, workdir=str(tmp_path / "api"),
                  config_overrides={"train.num_epochs": 3})
  assert model.config.toy.num_clusters == 5  # num_fine reaches the field the method declares

  # Embeddings and clusters against a numpy forward of the restored parameters; vectors enter
  # standardised by the training split's per-feature statistics (all of x: no test_fraction).
  params = {k: {n: np.asarray(v, np.float64) for n, v in layer.items()} for k, layer in model.state.params.items()}
  standardised = (x - x.mean(0)) / (x.std(0) + 1e-6)
  features = standardised @ params["embed"]["kernel"] + params["embed"]["bias"]
  np.testing.assert_allclose(model.embed(x), features, rtol=1e-4, atol=1e-4)
  ids, relation = model.discover(x)
  np.testing.assert_array_equal(ids, np.argmax(features @ params["clusters"]["kernel"] + params["clusters"]["bias"],
                                               axis=1))
  np.testing.assert_array_equal(relation, np.eye(3, dtype=np.int64)[np.arange(5) % 3])

  reloaded = c2f.load(str(tmp_path / "api"))
  np.testing.assert_allclose(reloaded.embed(x[:10]), model.embed(x[:10]), rtol=1e-6)
