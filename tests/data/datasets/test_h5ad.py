"""data.name="h5ad": AnnData objects (dense, CSR, layers, obsm; categorical and string obs) written to .h5ad here
and loaded through the config's loader; the taxonomy, splits and errors; `SparseRows` against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from coarse2fine.config_base import base_config
from coarse2fine.data import labels
from coarse2fine.data.datasets import registry
from coarse2fine.data.sparse_rows import SparseRows

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")

TYPES = {"T": ["CD4", "CD8"], "B": ["naive B", "memory B", "plasma"], "Myeloid": ["mono"]}  # coarse -> fine
PARENT = {f: c for c, fs in TYPES.items() for f in fs}


def cells(n=60, genes=8, seed=0):
  """(x [n, genes] float32 with 60% zeros, fine names [n], coarse names [n]); every type present."""
  rng = np.random.default_rng(seed)
  fine = np.array(sorted(PARENT))[np.arange(n) % len(PARENT)]
  rng.shuffle(fine)
  x = rng.normal(size=(n, genes)).astype(np.float32)
  x[rng.random(x.shape) < 0.6] = 0
  return x, fine, np.array([PARENT[f] for f in fine])


def write(tmp_path, x, obs, name="cells.h5ad", **slots):
  adata = anndata.AnnData(X=x, obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(x.shape[0])]), **slots)
  path = str(tmp_path / name)
  adata.write_h5ad(path)
  return path


def load(**fields):
  config = base_config().data
  config.name = "h5ad"
  for key, value in fields.items():
    setattr(config, key, value)
  return registry.load_dataset(config)


@pytest.mark.parametrize("store", ["dense", "csr", "layer", "obsm"])
def test_inputs_and_labels(tmp_path, store):
  x, fine, coarse = cells()
  slots = {}
  if store == "layer":
    slots["layers"] = {"counts": scipy.sparse.csr_matrix(x)}
  if store == "obsm":
    slots["obsm"] = {"X_pca": x[:, :5].copy()}
  stored = scipy.sparse.csr_matrix(x) if store == "csr" else np.zeros_like(x) if store in ("layer", "obsm") else x
  path = write(tmp_path, stored, {"lineage": pd.Categorical(coarse, categories=["T", "B", "Myeloid"]),
                                  "type": fine}, **slots)  # a categorical, and plain strings
  use_rep = {"dense": "X", "csr": "X", "layer": "counts", "obsm": "X_pca"}[store]
  data = load(path=path, coarse_key="lineage", fine_key="type", use_rep=use_rep, test_fraction=0.0)
  expected = x[:, :5] if store == "obsm" else x
  assert isinstance(data.train.inputs, SparseRows) == (store in ("csr", "layer"))  # sparse stays sparse
  np.testing.assert_array_equal(np.asarray(data.train.inputs), expected)
  assert data.name == "h5ad" and data.test is data.train  # test_fraction=0: transductive
  # Coarse classes in the categorical's order; fine classes sorted (plain strings), each under its lineage.
  assert data.taxonomy.coarse_names == ("T", "B", "Myeloid")
  assert data.taxonomy.fine_names == tuple(sorted(PARENT))
  names = np.array(data.taxonomy.fine_names)
  np.testing.assert_array_equal(names[data.train.fine], fine)
  np.testing.assert_array_equal(np.array(data.taxonomy.coarse_names)[data.train.coarse], coarse)
  assert [data.taxonomy.coarse_names[p] for p in data.taxonomy.fine_to_coarse] == [PARENT[f] for f in names]
  np.testing.assert_array_equal(data.mean, expected.mean(0))
  np.testing.assert_array_equal(data.std, expected.std(0) + np.float32(1e-6))


def test_held_out_split_is_stratified_and_seeded(tmp_path):
  x, fine, coarse = cells(n=100)
  path = write(tmp_path, scipy.sparse.csr_matrix(x), {"lineage": coarse})
  data = load(path=path, coarse_key="lineage", test_fraction=0.2, split_seed=3)
  assert len(data.train) + len(data.test) == 100 and data.test is not data.train
  for c, name in enumerate(data.taxonomy.coarse_names):  # 20% of each coarse class, rounded
    assert (data.test.coarse == c).sum() == round(0.2 * (coarse == name).sum())
  assert (data.train.fine == -1).all()  # no fine_key: unknown, one placeholder fine class per coarse class
  assert data.taxonomy.num_fine == data.taxonomy.num_coarse == 3
  again = load(path=path, coarse_key="lineage", test_fraction=0.2, split_seed=3)
  np.testing.assert_array_equal(np.asarray(again.test.inputs), np.asarray(data.test.inputs))
  # The training statistics are those of the training cells only.
  np.testing.assert_array_equal(data.mean, np.asarray(data.train.inputs).mean(0))


def test_missing_fine_labels_are_unknown_and_missing_coarse_is_an_error(tmp_path):
  x, fine, coarse = cells()
  partly = pd.Categorical(np.where(np.arange(60) % 3 == 0, None, fine))
  path = write(tmp_path, x, {"lineage": coarse, "type": partly})
  data = load(path=path, coarse_key="lineage", fine_key="type", test_fraction=0.0)
  np.testing.assert_array_equal(data.train.fine == -1, np.arange(60) % 3 == 0)
  coarse_missing = pd.Categorical(np.where(np.arange(60) == 7, None, coarse))
  path = write(tmp_path, x, {"lineage": coarse_missing}, name="missing.h5ad")
  with pytest.raises(ValueError, match=r"obs column 'lineage' \(coarse\) is missing for 1 examples \(e.g. example 7\)"):
    load(path=path, coarse_key="lineage")


def test_errors_name_the_problem(tmp_path):
  x, fine, coarse = cells()
  path = write(tmp_path, x, {"lineage": coarse, "type": fine}, layers={"counts": x}, obsm={"X_pca": x[:, :3]})
  with pytest.raises(ValueError, match=r"'cell_type' is not a column of adata.obs; its columns are \['lineage', 'type'\]"):
    load(path=path, coarse_key="cell_type")
  with pytest.raises(ValueError, match=r"use_rep='X_umap' is not in the AnnData: use 'X', 'raw.X', a layer "
                                       r"\['counts'\] or an obsm entry \['X_pca'\]"):
    load(path=path, coarse_key="lineage", use_rep="X_umap")
  with pytest.raises(ValueError, match="needs data.path .* and data.coarse_key"):
    load(path=path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    load(path=str(tmp_path / "absent.h5ad"), coarse_key="lineage")
  two_parents = fine.copy()
  two_parents[np.flatnonzero(coarse == "B")[0]] = "CD4"  # a T-cell type under B as well
  path = write(tmp_path, x, {"lineage": coarse, "type": two_parents}, name="two.h5ad")
  with pytest.raises(ValueError, match=r"fine class CD4 appears under coarse classes \['B', 'T'\]"):
    load(path=path, coarse_key="lineage", fine_key="type")
  bad = x.copy()
  bad[5, 2] = np.nan
  path = write(tmp_path, scipy.sparse.csr_matrix(bad), {"lineage": coarse}, name="nan.h5ad")
  with pytest.raises(ValueError, match=r"1 values are NaN.*at index \(5, 2\)"):
    load(path=path, coarse_key="lineage")


def test_encode_labels_against_numpy():
  strings = np.array(["b", "a", "c", "a"])
  ids, names = labels.encode_labels(list(strings), 4, "coarse")
  np.testing.assert_array_equal(np.array(names)[ids], strings)
  assert names == sorted(set(strings))
  cat = pd.Categorical(["x", "z", "x"], categories=["z", "y", "x"])  # "y" unused: dropped
  ids, names = labels.encode_labels(pd.Series(cat), 3, "coarse")
  assert names == ["z", "x"] and ids.tolist() == [1, 0, 1]
  ids, names = labels.encode_labels(np.array(["p", None, np.nan, "q"], object), 4, "fine", unknown_allowed=True)
  assert ids.tolist() == [0, -1, -1, 1] and names == ["p", "q"]
  ids, names = labels.encode_labels([3, None, 5], 3, "fine", unknown_allowed=True)  # ints with None: integer ids
  assert ids.tolist() == [3, -1, 5] and names is None
  ids, names = labels.encode_labels(np.array([4, 0, 2]), 3, "coarse")
  assert ids.tolist() == [4, 0, 2] and names is None and ids.dtype == np.int64
  with pytest.raises(ValueError, match="coarse is missing for 1 examples"):
    labels.encode_labels(["a", None], 2, "coarse")


def test_sparse_rows_against_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 7)).astype(np.float32) * np.float32(1000)
  x[rng.random(x.shape) < 0.7] = 0
  rows = SparseRows(scipy.sparse.csc_matrix(x))  # any sparse format in
  index = np.array([[3, 0], [49, 3]])
  np.testing.assert_array_equal(rows[index], x[index])  # [2, 2, 7]: neighbour gathers
  np.testing.assert_array_equal(rows[7], x[7])
  np.testing.assert_array_equal(rows[10:20], x[10:20])
  np.testing.assert_array_equal(np.asarray(rows.subset([4, 1])), x[[4, 1]])
  assert rows.dtype == np.float32 and rows.shape == (50, 7) and len(rows) == 50 and rows.ndim == 2
  mean, std = rows.mean_std()
  np.testing.assert_array_equal(mean, x.mean(0))  # bit for bit: sparse and dense data train alike
  np.testing.assert_array_equal(std, x.std(0))
