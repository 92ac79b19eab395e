"""The Python API on small arrays: fit, embed, discover, adapt, save/load, and errors on bad input."""

import json
import os
import types

import ml_collections
import numpy as np
import pytest
import scipy.sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score

import coarse2fine as c2f
from coarse2fine import api
from coarse2fine.config_base import base_config
from coarse2fine.data.sparse_rows import SparseRows
from coarse2fine.data.splits import HierarchicalData, Split, carve_validation
from coarse2fine.data.taxonomy import Taxonomy
from coarse2fine.engine import runs
from coarse2fine.engine.checkpointing import Checkpointer
from coarse2fine.methods import build_method

# Tiny budgets: 3 epochs of batch 32 over 360 points (11 steps an epoch), a small MLP.
TINY = {"train.num_epochs": 3, "train.batch_size": 32, "model.encoder_args.hidden_sizes": (64, 64),
        "logging.progress": False}
CENTRES = np.random.default_rng(0).normal(0, 4.0, (3, 16))  # coarse centres in 16-D
FINE_CENTRES = np.repeat(CENTRES, 3, 0) + np.random.default_rng(1).normal(0, 2.0, (9, 16))


def blobs(per_fine: int, seed: int):
  """([9 * per_fine, 16] float32 points, coarse [n], fine [n]): 3 coarse x 3 fine Gaussian clusters."""
  fine = np.repeat(np.arange(9), per_fine)
  x = FINE_CENTRES[fine] + np.random.default_rng(seed).normal(0, 0.5, (len(fine), 16))
  return x.astype(np.float32), fine // 3, fine


X, COARSE, FINE = blobs(40, seed=2)


@pytest.fixture(scope="module")
def scgm(tmp_path_factory):
  """SCGM-G trained on coarse labels only."""
  return c2f.fit(X, COARSE, method="scgm_g", workdir=str(tmp_path_factory.mktemp("scgm")), num_fine=9,
                 config_overrides=TINY)


@pytest.fixture(scope="module")
def falcon(tmp_path_factory):
  """FALCON with fine labels given (for its metrics) and a held-out fifth for the final evaluation."""
  return c2f.fit(X, COARSE, method="falcon", workdir=str(tmp_path_factory.mktemp("falcon")), fine=FINE,
                 num_fine=9, config_overrides=TINY, test_fraction=0.2)


def direct_predict(model, x):
  """The method's predict on the checkpoint's raw arrays, inputs normalised here: a path independent of api."""
  with open(f"{model.workdir}/config.json") as f:
    config = ml_collections.ConfigDict(json.load(f))
  checkpointer = Checkpointer(model.workdir, config)
  saved = checkpointer.read_state()
  checkpointer.close()
  taxonomy = Taxonomy.from_groups("t", {f"c{c}": [f"f{c}"] for c in range(3)})
  split = Split(X, COARSE.astype(np.int32), np.full(len(X), -1, np.int32))
  method = build_method(config, HierarchicalData("t", taxonomy, split, split))
  train_x = X  # normalised by the statistics of the training part: the same stratified split as fit's
  if config.data.test_fraction > 0:
    train_x = carve_validation(split, config.data.test_fraction, config.data.split_seed)[0].inputs
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  state = types.SimpleNamespace(variables={"params": saved["params"], "batch_stats": saved["batch_stats"]},
                                extra=saved["extra"])
  outputs = method.predict(state, ((x - mean) / std).astype(np.float32))
  return {k: np.asarray(v) for k, v in outputs.items()}, config


def stored_relation(model) -> np.ndarray:
  """[r, C] parents from the checkpoint's raw arrays: SCGM's nearest super-class mean by cosine, FALCON's M."""
  with open(f"{model.workdir}/config.json") as f:
    config = ml_collections.ConfigDict(json.load(f))
  checkpointer = Checkpointer(model.workdir, config)
  saved = checkpointer.read_state()
  checkpointer.close()
  if config.method == "falcon":
    return np.asarray(saved["extra"]["relations"])[0, :, :3]
  unit = lambda m: np.asarray(m, np.float64) / np.linalg.norm(np.asarray(m, np.float64), axis=1, keepdims=True)
  parents = (unit(saved["params"]["mu_z"]) @ unit(saved["params"]["mu_y"]).T).argmax(1)
  return np.eye(3, dtype=np.int64)[parents]


@pytest.mark.parametrize("name", ["scgm", "falcon"])
def test_embed_and_discover_match_the_methods_predict(name, request):
  model = request.getfixturevalue(name)
  direct, config = direct_predict(model, X)
  z = model.embed(X)
  assert z.shape == (len(X), direct[config.eval.features].shape[1]) and z.dtype == np.float32
  np.testing.assert_allclose(z, direct[config.eval.features], rtol=1e-4, atol=1e-4)
  ids, relation = model.discover(X)
  np.testing.assert_array_equal(ids, direct["cluster_logits"].argmax(1))
  assert relation.shape == (9, 3) and (relation.sum(1) == 1).all()  # one coarse parent per discovered class
  np.testing.assert_array_equal(relation, stored_relation(model))


# Measured with these budgets over seeds 0, 1, 2: SCGM-G ARI 0.39-0.43 and parent accuracy 0.66-0.89,
# FALCON ARI 0.63-1.0 and parent accuracy 0.97-1.0 (ARI of chance: 0; parent accuracy of chance: 1/3).
@pytest.mark.parametrize("name,least_ari,least_parent_acc", [("scgm", 0.25, 0.55), ("falcon", 0.45, 0.9)])
def test_discovered_classes_recover_the_fine_clusters(name, least_ari, least_parent_acc, request):
  ids, relation = request.getfixturevalue(name).discover(X)
  assert adjusted_rand_score(FINE, ids) > least_ari
  # Most points' discovered class sits under the point's own coarse class.
  assert np.mean(relation[ids].argmax(1) == COARSE) > least_parent_acc


def test_falcon_with_fine_labels_reports_discovery_metrics(falcon):
  results = json.loads(open(f"{falcon.workdir}/results.json").read())
  assert tuple(falcon.config.eval.protocols) == ("classification", "clusters")
  assert results["metrics"]["test/coarse_top1"] > 90.0
  assert "discovery/clusters_ari" in results["metrics"]
  assert falcon.taxonomy.num_fine == 9 and falcon.taxonomy.num_coarse == 3


def test_adapt_is_logistic_regression_on_normalised_embeddings(scgm):
  support_x, _, support_y = blobs(5, seed=3)
  query_x, _, query_y = blobs(20, seed=4)
  clf = scgm.adapt(support_x, support_y)
  predicted = clf.predict(query_x)
  assert predicted.shape == (len(query_x),)
  assert np.mean(predicted == query_y) > 0.5  # 9 classes: chance is 0.11
  normalise = lambda z: z / np.linalg.norm(z, axis=1, keepdims=True)
  reference = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(normalise(scgm.embed(support_x)), support_y)
  np.testing.assert_array_equal(predicted, reference.predict(normalise(scgm.embed(query_x))))
  np.testing.assert_allclose(clf.predict_proba(query_x), reference.predict_proba(normalise(scgm.embed(query_x))),
                             atol=2e-3)
  # Labels of any kind come back as given.
  names = np.array([f"type{k}" for k in range(9)])
  np.testing.assert_array_equal(scgm.adapt(support_x, names[support_y]).predict(query_x), names[predicted])


def test_save_and_load_round_trip(scgm, tmp_path):
  saved = scgm.save(str(tmp_path / "copy"))
  loaded = c2f.load(saved)
  np.testing.assert_array_equal(loaded.embed(X), scgm.embed(X))
  np.testing.assert_array_equal(loaded.discover(X)[0], scgm.discover(X)[0])
  assert loaded.config.method == "scgm_g" and loaded.taxonomy == scgm.taxonomy
  with pytest.raises(FileExistsError, match="not empty"):
    scgm.save(saved)
  with pytest.raises(FileNotFoundError, match="api_meta.json not found"):
    c2f.load(str(tmp_path))


def test_save_overwrite_replaces_a_saved_model(scgm, falcon, tmp_path):
  target = str(tmp_path / "copy")
  assert scgm.save(target) == target
  for model in (falcon, scgm):  # twice, each replacing the model saved there before
    assert model.save(target, overwrite=True) == target
    loaded = c2f.load(target)
    assert loaded.config.method == model.config.method
    np.testing.assert_array_equal(loaded.embed(X[:20]), model.embed(X[:20]))
  assert sorted(os.listdir(tmp_path)) == ["copy"]  # no staging or set-aside folder left behind
  assert sorted(os.listdir(target)) == sorted(["api_meta.json", "checkpoints", "config.json", "data",
                                               "metrics.jsonl", "results.json"])
  # A folder that is not a saved model is never deleted, overwrite or not.
  other = tmp_path / "notes"
  other.mkdir()
  (other / "keep.txt").write_text("mine")
  with pytest.raises(FileExistsError, match="not a saved model"):
    scgm.save(str(other), overwrite=True)
  assert (other / "keep.txt").read_text() == "mine"


def test_a_fit_keeps_its_arrays_and_evaluates_and_plots_from_its_workdir(falcon, tmp_path):
  """The workdir's data/arrays.npz holds the fit's training and held-out rows; evaluate reproduces the fit's
  results from them, and a saved copy reads its own copy of the arrays."""
  with np.load(os.path.join(falcon.workdir, "data", "arrays.npz")) as npz:
    x, x_test = npz["x"], npz["x_test"]
    coarse, fine, fine_test = npz["coarse"], npz["fine"], npz["fine_test"]
  assert len(x) + len(x_test) == len(X) and 0 < len(x_test) < len(x)
  rows = {row.tobytes(): i for i, row in enumerate(X)}  # every stored row is one of X's, each once
  index = np.array([rows[row.tobytes()] for row in np.concatenate([x, x_test])])
  assert sorted(index) == list(range(len(X)))
  np.testing.assert_array_equal(coarse, COARSE[index[:len(x)]])
  names = [falcon.taxonomy.fine_names[f] for f in np.concatenate([fine, fine_test])]
  assert names == [str(f) for f in FINE[index]]
  with open(os.path.join(falcon.workdir, "config.json")) as f:
    data = json.load(f)["data"]
  assert (data["path"], data["taxonomy"]) == ("data/arrays.npz", "data/user.json")  # relative: copies work
  copy = falcon.save(str(tmp_path / "copy"))
  config = runs.load_run_config(copy)
  assert runs.workdir_data_config(config.data, copy).path == os.path.join(copy, "data", "arrays.npz")
  evaluated = runs.evaluate_checkpoint(config, copy)["metrics"]
  with open(os.path.join(falcon.workdir, "results.json")) as f:
    trained = json.load(f)["metrics"]
  assert evaluated == pytest.approx(trained, abs=1e-6)
  pytest.importorskip("matplotlib")
  from coarse2fine import figures

  written = figures.plot_run(copy, str(tmp_path / "plots"), max_points=50, projection="tsne")
  assert [os.path.basename(p) for p in written] == ["embedding_tsne.png", "relation.png", "curves.png",
                                                    "diagnostics.png"]


def test_the_same_fit_again_loads_the_trained_model(falcon, capsys):
  """A notebook cell run twice: the second fit trains and evaluates nothing, leaves every file as it was,
  and returns the same model."""
  files = ("metrics.jsonl", "results.json", "config.json")
  before = {name: open(os.path.join(falcon.workdir, name), "rb").read() for name in files}
  checkpoints = sorted(os.listdir(os.path.join(falcon.workdir, "checkpoints")))
  again = c2f.fit(X, COARSE, method="falcon", workdir=falcon.workdir, fine=FINE, num_fine=9, config_overrides=TINY,
                  test_fraction=0.2)
  out = capsys.readouterr().out
  assert f"{falcon.workdir}: fitted already on these arrays with this config" in out, out
  assert "evaluating" not in out and "| " not in out  # no results table: nothing was evaluated
  assert {name: open(os.path.join(falcon.workdir, name), "rb").read() for name in files} == before
  assert sorted(os.listdir(os.path.join(falcon.workdir, "checkpoints"))) == checkpoints
  np.testing.assert_array_equal(again.embed(X[:20]), falcon.embed(X[:20]))
  assert again.report == falcon.report


def test_images_embed_and_discover_needs_a_discovering_method(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.random((64, 8, 8, 1)).astype(np.float32)  # floats in [0, 1]
  coarse = np.arange(64) % 2
  model = c2f.fit(images, coarse, method="coarse", workdir=str(tmp_path),
                  config_overrides={"train.num_epochs": 1, "train.batch_size": 16, "logging.progress": False})
  assert model.config.model.encoder == "convnet" and tuple(model.config.data.views) == ("crop_flip",)
  z = model.embed((images[:5] * 255).round().astype(np.uint8))
  assert z.shape == (5, 128)  # the ConvNet's last width
  np.testing.assert_allclose(model.embed(images[:5, :, :, 0]), z, rtol=1e-5, atol=1e-5)  # [n, H, W] and floats
  with pytest.raises(ValueError, match=r"'coarse' \(as configured\) discovers no classes.*scgm_g, scgm_a, falcon, fsc"):
    model.discover(images)


@pytest.mark.parametrize("kwargs,message", [
    (dict(x=X[:, 0]), r"expected \[N, F\] vectors or \[N, H, W\(, C\)\] images"),
    (dict(coarse=COARSE[:-1]), "coarse has 359 labels for the 360 examples"),
    (dict(coarse=COARSE.astype(float)), "integer class ids"),
    (dict(x=np.where(np.arange(16) == 3, np.nan, X)), "360 values are NaN or infinite"),
    (dict(x=np.full((4, 8, 8), 2.0), coarse=np.array([0, 1, 0, 1])), r"float images must lie in \[0, 1\]"),
    (dict(method="scgm"), "Unknown method 'scgm'"),
    (dict(method="falcon", num_fine="guess"), "num_fine='guess': give a number of fine classes, or 'estimate'"),
    (dict(num_fine=2), "num_fine=2 is below the 3 coarse classes"),
    (dict(config_overrides={"train.epochs": 2}), "Unknown config key 'train.epochs'"),
    (dict(config_overrides={"training.num_epochs": 2}), "no field 'training'"),
    (dict(fine=np.where(np.arange(360) == 0, 8, FINE)), r"fine class 8 appears under coarse classes"),
    (dict(coarse_names=["a", "b"]), r"coarse ids must lie in \[0, 2\)"),
])
def test_bad_inputs_are_named(kwargs, message, tmp_path):
  args = dict(x=X, coarse=COARSE, method="scgm_g", num_fine=9, workdir=str(tmp_path), config_overrides=TINY)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    c2f.fit(args.pop("x"), args.pop("coarse"), **args)


def test_bad_inputs_to_a_trained_model(scgm, tmp_path):
  with pytest.raises(ValueError, match=r"examples of shape \(15,\), but the model was trained on \(16,\)"):
    scgm.embed(X[:, :15])
  with pytest.raises(ValueError, match="one label per support example"):
    scgm.adapt(X[:10], FINE[:9])
  with pytest.raises(ValueError, match="a classifier needs 2 or more"):
    scgm.adapt(X[:10], np.zeros(10, int))
  with pytest.raises(ValueError, match="fitted on other arrays"):  # a workdir is never resumed with other data
    c2f.fit(X[::-1], COARSE[::-1], method="scgm_g", workdir=scgm.workdir, num_fine=9, config_overrides=TINY)


def test_config_defaults_overrides_and_derived_settings():
  data = api.build_data(X, COARSE)
  assert data.num_fine == 3 and (data.train.fine == -1).all() and data.test is data.train
  config = api.make_config("falcon", data, num_fine=9, overrides={"train.batch_size": 64, "falcon.neighbours": 7})
  assert config.falcon.num_fine == 9 and config.data.views == ("none", "none") and config.model.encoder == "mlp"
  assert config.falcon.neighbours == 7  # an override wins over the derived setting
  assert config.falcon.solve_every == 2  # 5 steps an epoch at batch 64: solves after steps 2 and 4
  assert config.eval.protocols == ("classification",)  # no fine labels: nothing else can be scored
  assert config.falcon.soft_label_epochs == config.train.num_epochs  # vectors: soft labels over the whole run
  images = api.build_data(np.random.default_rng(0).integers(0, 256, (360, 8, 8), np.uint8), COARSE)
  image_config = api.make_config("falcon", images, overrides={"train.num_epochs": 10, "train.batch_size": 64})
  assert image_config.falcon.soft_label_epochs == 3  # images: the Fashion-MNIST recipe's 3 of 10
  # lambda3: PBMC's 0.5 for vectors (docs/fit_defaults.md#per-method), the paper's 2.0 for images
  assert config.falcon.lambda_entropy == 0.5
  assert image_config.falcon.lambda_entropy == base_config().falcon.lambda_entropy == 2.0
  # beta: the section's balance prior where coarse classes are of similar size, 0 where one holds over twice
  # another's examples (docs/fit_defaults.md#unbalanced-coarse-classes)
  assert config.falcon.beta == image_config.falcon.beta == base_config().falcon.beta > 0
  keep = np.flatnonzero((COARSE != 0) | (np.arange(len(COARSE)) % 4 == 0))  # a quarter of coarse class 0
  sizes = np.bincount(COARSE[keep])
  unbalanced = api.make_config("falcon", api.build_data(X[keep], COARSE[keep]), num_fine=9)
  assert sizes.max() > 2 * sizes.min() and unbalanced.falcon.beta == 0.0
  nearly = np.flatnonzero((COARSE != 0) | (np.arange(len(COARSE)) % 3 != 0))  # two thirds: within a factor 2
  assert api.make_config("falcon", api.build_data(X[nearly], COARSE[nearly]), num_fine=9).falcon.beta > 0
  # SCGM: the head's logits scaled in fit (docs/methods/scgm.md#small-data); the reference's 1 in configs
  assert api.make_config("scgm_g", data).scgm.ce_scale == 10.0 and base_config().scgm.ce_scale == 1.0
  # F-SC: sub-centres spread by sigma^2 0.1 in fit (docs/methods/fsc.md#small-data); the paper's 1e-3 in configs
  assert api.make_config("fsc", data).fsc.sigma2 == 0.1 and base_config().fsc.sigma2 == 1e-3
  fine = np.where(np.arange(360) % 4 == 0, -1, FINE * 10 + 5)  # any ids, a quarter unknown
  with_fine = api.build_data(X, COARSE, fine=fine, test_fraction=0.25)
  assert with_fine.taxonomy.fine_names == tuple(str(v) for v in range(5, 90, 10))
  np.testing.assert_array_equal(with_fine.taxonomy.fine_to_coarse, np.arange(9) // 3)
  assert len(with_fine.test) == 90 and len(with_fine.train) == 270
  assert set(np.concatenate([with_fine.train.fine, with_fine.test.fine])) == set(range(-1, 9))


# ----------------------------------------------------------------------------- labels, sparse inputs, AnnData

NAMES = np.array(["Tops", "Shoes", "Bags"])  # coarse names by id


def test_labels_of_any_kind_give_the_same_data():
  pandas = pytest.importorskip("pandas")
  fine_names = np.array([f"type {k}" for k in range(9)])
  reference = api.build_data(X, COARSE, fine=FINE)
  for coarse in (NAMES[COARSE], list(NAMES[COARSE]), pandas.Categorical(NAMES[COARSE], categories=NAMES),
                 pandas.Series(NAMES[COARSE], dtype="category")):
    data = api.build_data(X, coarse, fine=pandas.Categorical(fine_names[FINE]))
    names = np.array(data.taxonomy.coarse_names)
    np.testing.assert_array_equal(names[data.train.coarse], NAMES[COARSE])
    np.testing.assert_array_equal(np.array(data.taxonomy.fine_names)[data.train.fine], fine_names[FINE])
    # The same partition as the integer labels'.
    assert adjusted_rand_score(data.train.fine, reference.train.fine) == 1.0
  data = api.build_data(X, pandas.Categorical(NAMES[COARSE], categories=NAMES))
  assert data.taxonomy.coarse_names == tuple(NAMES)  # a categorical's own order
  assert api.build_data(X, NAMES[COARSE]).taxonomy.coarse_names == tuple(sorted(NAMES))  # strings: sorted
  with pytest.raises(ValueError, match="drop coarse_names"):
    api.build_data(X, NAMES[COARSE], coarse_names=["a", "b", "c"])


def test_sparse_and_dense_inputs_train_identically(tmp_path):
  sparse_x = np.where(np.abs(X) < 2, 0, X).astype(np.float32)  # about half zeros
  tiny = {**TINY, "train.num_epochs": 2}
  dense = c2f.fit(sparse_x, COARSE, method="scgm_g", workdir=str(tmp_path / "dense"), num_fine=9,
                  config_overrides=tiny)
  csr = scipy.sparse.csr_matrix(sparse_x)
  pandas = pytest.importorskip("pandas")
  named = pandas.Categorical(NAMES[COARSE], categories=NAMES)  # names in id order: the same coarse ids
  sparse = c2f.fit(csr, named, method="scgm_g", workdir=str(tmp_path / "sparse"), num_fine=9,
                   config_overrides=tiny)
  data = api.build_data(csr, COARSE)
  assert isinstance(data.train.inputs, SparseRows)  # kept sparse; batches are densified one at a time
  np.testing.assert_array_equal(data.train.inputs[np.array([5, 2])], sparse_x[[5, 2]])
  np.testing.assert_array_equal(sparse.embed(csr), dense.embed(sparse_x))
  np.testing.assert_array_equal(sparse.embed(sparse_x), dense.embed(sparse_x))
  np.testing.assert_array_equal(sparse.discover(csr)[0], dense.discover(sparse_x)[0])


@pytest.fixture(scope="module")
def cells():
  """An AnnData of the blobs: CSR X, string coarse labels, a categorical of fine labels with a quarter missing."""
  anndata = pytest.importorskip("anndata")
  pandas = pytest.importorskip("pandas")
  fine = np.array([f"{NAMES[f // 3]} {f % 3}" for f in FINE], object)
  fine[np.arange(len(FINE)) % 4 == 0] = None
  obs = pandas.DataFrame({"group": NAMES[COARSE], "kind": pandas.Categorical(fine)},
                         index=[f"cell{i}" for i in range(len(X))])
  return anndata.AnnData(X=scipy.sparse.csr_matrix(X), obs=obs, var=pandas.DataFrame(
      index=[f"gene{j}" for j in range(X.shape[1])]))


@pytest.fixture(scope="module")
def cells_model(cells, tmp_path_factory):
  return c2f.fit(cells, "group", method="falcon", fine="kind", workdir=str(tmp_path_factory.mktemp("cells")),
                 num_fine=9, config_overrides=TINY)


def test_fit_on_anndata_and_annotate(cells, cells_model, tmp_path):
  anndata = pytest.importorskip("anndata")
  model = cells_model
  assert model.anndata["coarse_key"] == "group" and model.anndata["use_rep"] == "X"
  assert model.taxonomy.coarse_names == ("Bags", "Shoes", "Tops") and model.taxonomy.num_fine == 9
  adata = cells.copy()
  model.annotate(adata, key="c2f")
  np.testing.assert_array_equal(adata.obsm["X_c2f"], model.embed(X))  # the AnnData's X is the dense X's CSR
  ids, relation = model.discover(X, NAMES[COARSE])  # annotate reads each cell within its obs coarse label
  parents = np.array(model.taxonomy.coarse_names)[relation.argmax(1)]
  rank = [int((parents[:j] == parents[j]).sum()) for j in range(len(relation))]  # k-th class under its coarse
  expected = [f"{parents[j]}/{rank[j]}" for j in ids]
  assert adata.obs["c2f_fine"].dtype.name == "category"
  assert adata.obs["c2f_fine"].astype(str).tolist() == expected
  assert set(adata.obs["c2f_fine"].cat.categories) == set(expected)  # the classes some cell falls in
  uns = adata.uns["c2f"]
  assert uns["parent"] == parents.tolist() and uns["relation"] == relation.tolist()
  assert uns["method"] == "falcon" and json.loads(uns["config"])["method"] == "falcon"
  json.dumps(uns)  # JSON-able
  adata.write_h5ad(tmp_path / "annotated.h5ad")  # and h5ad-able, as scanpy tools' results are
  back = anndata.read_h5ad(tmp_path / "annotated.h5ad")
  assert back.obs["c2f_fine"].astype(str).tolist() == expected and list(back.uns["c2f"]["classes"]) == uns["classes"]
  # A saved model reads AnnData the same way.
  loaded = c2f.load(model.workdir)
  assert loaded.anndata == model.anndata and loaded.report == model.report
  np.testing.assert_array_equal(loaded.embed(cells), model.embed(X))


def test_the_printed_report_keeps_its_order_after_a_save(cells_model):
  """results.json sorts its keys; the printed report still lists the method's row first and the coarse classes
  in the taxonomy's order (the fixture's names, not their alphabetical order)."""
  from coarse2fine.evaluation.baselines import format_report

  per_coarse = cells_model.report["clusters_per_coarse"]
  report = dict(cells_model.report, coarse_names=["Tops", "Bags", "Shoes"])  # an order that sorting would change
  saved = json.loads(json.dumps(report, sort_keys=True))
  assert list(saved["clusters_per_coarse"]) == ["Bags", "Shoes", "Tops"]
  lines = format_report(saved).splitlines()
  method_row = next(name for name in report["rows"] if not name.startswith("k-means"))
  assert [line[2:36].strip() for line in lines[2:5]] == [method_row, "k-means on the inputs", "k-means on its features"]
  assert lines[-1].endswith(f"Tops {per_coarse['Tops']}, Bags {per_coarse['Bags']}, Shoes {per_coarse['Shoes']})")


def test_report_equals_sklearn(cells_model):
  """fit's report against k-means and scores computed here with scikit-learn and scipy."""
  from scipy.optimize import linear_sum_assignment
  from sklearn.cluster import KMeans
  from sklearn.metrics import normalized_mutual_info_score

  report = cells_model.report
  known = np.arange(len(X)) % 4 != 0  # the examples with a fine label (transductive: all of them are evaluated)
  assert report["examples"] == int(known.sum()) and report["transductive"]
  coarse = np.array([{"Bags": 0, "Shoes": 1, "Tops": 2}[name] for name in NAMES[COARSE]])[known]
  fine = FINE[known]
  ids, relation = cells_model.discover(X[known], coarse)  # as the report reads them: within the coarse class
  per_coarse = relation.sum(0)
  assert report["clusters_per_coarse"] == dict(zip(["Bags", "Shoes", "Tops"], per_coarse.tolist()))

  def score(pred):
    counts = np.zeros((pred.max() + 1, fine.max() + 1))
    np.add.at(counts, (pred, fine), 1)
    rows, cols = linear_sum_assignment(-counts)
    return [100 * counts[rows, cols].sum() / len(fine), 100 * adjusted_rand_score(fine, pred),
            100 * normalized_mutual_info_score(fine, pred)]

  def kmeans(z):
    pred = np.zeros(len(z), np.int64)
    for c in range(3):
      members = np.flatnonzero(coarse == c)
      found = KMeans(n_clusters=int(max(per_coarse[c], 1)), n_init=10, random_state=0).fit_predict(z[members])
      pred[members] = per_coarse[:c].sum() + found
    return pred

  mean, std = X.mean(0), X.std(0) + np.float32(1e-6)  # the training statistics (all cells train)
  inputs = (X[known].astype(np.float64) - mean) / std
  z = cells_model.embed(X[known]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  rows = report["rows"]
  expected = {"falcon (its discovered classes)": score(ids), "k-means on the inputs": score(kmeans(inputs)),
              "k-means on its features": score(kmeans(z))}
  assert list(rows) == list(expected)
  for name, values in expected.items():
    np.testing.assert_allclose([rows[name][k] for k in ("acc", "ari", "nmi")], values, rtol=1e-9, atol=1e-9)
  results = json.loads(open(f"{cells_model.workdir}/results.json").read())
  assert results["report"] == report  # stored with the run's results


def test_anndata_errors_are_named(cells, cells_model, tmp_path):
  with pytest.raises(ValueError, match=r"coarse='cell_type' is not a column of adata.obs; its columns are "
                                       r"\['group', 'kind'\]"):
    c2f.fit(cells, "cell_type", workdir=str(tmp_path), num_fine=9, config_overrides=TINY)
  with pytest.raises(ValueError, match=r"use_rep='X_pca' is not in the AnnData: use 'X', 'raw.X', a layer \[\] or "
                                       r"an obsm entry \[\]"):
    c2f.fit(cells, "group", use_rep="X_pca", workdir=str(tmp_path), num_fine=9, config_overrides=TINY)
  with pytest.raises(ValueError, match="takes the names of obs columns"):
    c2f.fit(cells, "group", fine=FINE, workdir=str(tmp_path), num_fine=9, config_overrides=TINY)
  reordered = cells[:, ::-1].copy()
  with pytest.raises(ValueError, match="other features \\(or another order\\)"):
    cells_model.embed(reordered)
  with pytest.raises(ValueError, match="annotate writes into an AnnData"):
    cells_model.annotate(X)
  assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_discover_given_coarse_labels_picks_among_their_children(cells_model):
  """With coarse labels: every class is a child of the example's coarse class, and where the best class of all
  already was one, it is the same (the argmax of a subset that holds the overall maximum)."""
  coarse_names = NAMES[COARSE]
  plain, relation = cells_model.discover(X)
  within, same_relation = cells_model.discover(X, coarse_names)
  np.testing.assert_array_equal(relation, same_relation)
  coarse = np.array([list(cells_model.taxonomy.coarse_names).index(name) for name in coarse_names])
  has_children = relation.sum(0)[coarse] > 0
  assert (relation[within, coarse] == 1)[has_children].all()
  agrees = relation[plain, coarse] == 1
  np.testing.assert_array_equal(within[agrees], plain[agrees])
  np.testing.assert_array_equal(cells_model.discover(X, coarse)[0], within)  # ids work as names do
  with pytest.raises(ValueError, match="not among the model's coarse classes"):
    cells_model.discover(X[:2], np.array(["Bags", "Hats"]))
  with pytest.raises(ValueError, match="one per input"):
    cells_model.discover(X[:3], coarse[:2])
