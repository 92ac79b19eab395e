"""PBMC cells: h5ad files written here with anndata, the lineages, errors, and the real file (old layout).

The real-file tests read `$C2F_PBMC_FILE`, else the loader's own search ($C2F_DATA_DIR/pbmc/,
~/.cache/coarse2fine/pbmc, an installed scanpy), and are skipped when none has the file (see
coarse2fine/data/datasets/pbmc.py for how to get it). The real file is in anndata's < 0.7 layout;
the loader reads it with anndata, and it is checked here against values read with h5py alone.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import scipy.sparse

from coarse2fine.config_base import base_config
from coarse2fine.data.datasets import pbmc
from coarse2fine.data.sparse_rows import SparseRows
from coarse2fine.data.taxonomy import Taxonomy

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")

CONFIG_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                           "configs", "falcon_pbmc.py")
# The file's category order (not sorted by lineage), as in the real file.
CATEGORIES = ["CD4+/CD25 T Reg", "CD4+/CD45RA+/CD25- Naive T", "CD4+/CD45RO+ Memory", "CD8+ Cytotoxic T",
              "CD8+/CD45RA+ Naive Cytotoxic", "CD14+ Monocyte", "CD19+ B", "CD34+", "CD56+ NK", "Dendritic"]


def _data_config(**fields):
  config = base_config().data
  config.name = "pbmc"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def write_h5ad(path, x, codes, categories=CATEGORIES, sparse=False, raw=None):
  """An .h5ad written by anndata: X (dense or CSR), obs bulk_labels (categorical, code -1 missing), raw.X (CSR)."""
  obs = pd.DataFrame({"bulk_labels": pd.Categorical.from_codes(codes, categories)},
                     index=[f"cell{i}" for i in range(len(codes))])
  adata = anndata.AnnData(X=scipy.sparse.csr_matrix(x) if sparse else x, obs=obs)
  if raw is not None:
    adata.raw = anndata.AnnData(X=scipy.sparse.csr_matrix(raw), obs=obs)
  adata.write_h5ad(path)


def _cells(seed=0, per_type=3):
  rng = np.random.default_rng(seed)
  codes = rng.permutation(np.repeat(np.arange(len(CATEGORIES)), per_type))
  x = rng.normal(size=(len(codes), 6)).astype(np.float32)
  x[rng.random(x.shape) < 0.4] = 0  # zeros, so CSR drops entries
  return x, codes


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_inputs_labels_and_lineages(tmp_path, sparse):
  x, codes = _cells()
  path = str(tmp_path / "cells.h5ad")
  write_h5ad(path, x, codes, sparse=sparse)
  data = pbmc.load(_data_config(path=path))
  assert data.name == "pbmc" and not data.is_image and data.input_shape == (6,)
  assert data.train.inputs.dtype == np.float32
  assert isinstance(data.train.inputs, SparseRows) == sparse  # a sparse X stays sparse on the host
  np.testing.assert_array_equal(np.asarray(data.train.inputs), x)
  # Fine ids follow the file's category order; each cell's coarse class is its type's lineage.
  assert data.taxonomy.fine_names == tuple(CATEGORIES)
  assert data.taxonomy.coarse_names == ("T cell", "NK cell", "B cell", "Myeloid", "Progenitor")
  np.testing.assert_array_equal(data.train.fine, codes)
  lineage_of = {cell: lineage for lineage, cells in pbmc.LINEAGES.items() for cell in cells}
  assert [data.taxonomy.coarse_names[c] for c in data.train.coarse] == [lineage_of[CATEGORIES[k]] for k in codes]
  assert data.test is data.train  # transductive
  np.testing.assert_allclose(data.mean, x.mean(0), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(data.std, x.std(0) + 1e-6, rtol=1e-5)


def test_raw_counts_are_log_normalised_and_log_values_kept(tmp_path):
  x, codes = _cells()
  counts = np.random.default_rng(1).poisson(3.0, size=x.shape).astype(np.float32)
  counts[0] = 0  # an empty cell stays zero
  path = str(tmp_path / "counts.h5ad")
  write_h5ad(path, x, codes, raw=counts)
  got = pbmc.load(_data_config(path=path, variant="raw")).train.inputs
  assert isinstance(got, SparseRows)  # raw.X is CSR: kept sparse, normalised without densifying
  got = np.asarray(got)
  expected = np.zeros(counts.shape)
  for i, row in enumerate(counts.astype(np.float64)):
    if row.sum() > 0:
      expected[i] = np.log(1 + row / row.sum() * 1e4)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  np.testing.assert_allclose(np.expm1(got[1:].astype(np.float64)).sum(1), 1e4, rtol=1e-5)
  # Values that are not counts (already log-normalised, as in the real file) are used as stored.
  logged = np.log1p(counts) + 0.25 * (counts > 0)
  write_h5ad(path, x, codes, raw=logged)
  np.testing.assert_array_equal(np.asarray(pbmc.load(_data_config(path=path, variant="raw")).train.inputs), logged)
  write_h5ad(path, x, codes)  # no raw at all
  with pytest.raises(ValueError, match="has no raw"):
    pbmc.load(_data_config(path=path, variant="raw"))
  with pytest.raises(ValueError, match="variants"):
    pbmc.load(_data_config(path=path, variant="counts"))


def test_taxonomy_file(tmp_path):
  x, codes = _cells()
  path = str(tmp_path / "cells.h5ad")
  write_h5ad(path, x, codes)
  myeloid = {"CD14+ Monocyte", "Dendritic", "CD34+"}
  taxonomy_path = str(tmp_path / "compartments.csv")
  with open(taxonomy_path, "w") as f:
    f.write("fine,coarse\n" + "".join(f"{c},{'myeloid' if c in myeloid else 'lymphoid'}\n" for c in CATEGORIES))
  data = pbmc.load(_data_config(path=path, taxonomy=taxonomy_path))
  assert data.taxonomy.coarse_names == ("lymphoid", "myeloid")
  assert data.taxonomy.fine_names == tuple(CATEGORIES)  # file order, whatever the taxonomy's order
  is_myeloid = np.array([CATEGORIES[k] in myeloid for k in codes])
  np.testing.assert_array_equal(data.train.coarse, is_myeloid.astype(np.int32))


def test_unmapped_labels_are_named(tmp_path):
  x, codes = _cells()
  categories = CATEGORIES[:-1] + ["Platelet"]
  path = str(tmp_path / "cells.h5ad")
  write_h5ad(path, x, codes, categories=categories)
  with pytest.raises(ValueError, match=r"without a coarse parent in taxonomy 'pbmc_lineages': \['Platelet'\]"):
    pbmc.load(_data_config(path=path))
  taxonomy_path = str(tmp_path / "partial.json")
  Taxonomy.from_groups("partial", {"T": CATEGORIES[:5], "rest": categories[5:-1]}).save(taxonomy_path)
  with pytest.raises(ValueError, match=r"taxonomy 'partial': \['Platelet'\]"):
    pbmc.load(_data_config(path=path, taxonomy=taxonomy_path))


def test_builtin_keeps_only_the_declared_types(tmp_path):
  keep = ["CD14+ Monocyte", "CD19+ B", "Dendritic"]
  x, _ = _cells()
  codes = np.arange(len(x)) % 3
  path = str(tmp_path / "cells.h5ad")
  write_h5ad(path, x, codes, categories=keep, sparse=True)
  data = pbmc.load(_data_config(path=path))
  assert data.taxonomy.fine_names == tuple(keep) and data.taxonomy.coarse_names == ("B cell", "Myeloid")
  np.testing.assert_array_equal(data.train.coarse, np.array([1, 0, 1])[codes])


def test_cells_without_a_label(tmp_path):
  x, codes = _cells()
  codes[4] = -1
  path = str(tmp_path / "cells.h5ad")
  write_h5ad(path, x, codes)
  with pytest.raises(ValueError, match=r"obs column 'bulk_labels' is missing for 1 examples \(e.g. example 4\)"):
    pbmc.load(_data_config(path=path))


def test_missing_file_says_how_to_get_it(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match="pip download scanpy --no-deps"):
    pbmc.load(_data_config(path=str(tmp_path / "absent.h5ad")))
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "data"))
  monkeypatch.setattr(pbmc, "scanpy_copy", lambda: None)
  monkeypatch.setattr(pbmc, "CACHE_DIR", str(tmp_path / "cache"))
  with pytest.raises(FileNotFoundError, match=r"looked in .*data/pbmc/10x_pbmc68k_reduced\.h5ad.*"
                                              r"python -m coarse2fine\.data\.datasets\.pbmc.*set --config\.data\.path="):
    pbmc.load(_data_config())


def test_named_dir_without_the_file_is_an_error_not_a_fallback(tmp_path, monkeypatch):
  x, codes = _cells()
  monkeypatch.setattr(pbmc, "scanpy_copy", lambda: None)
  monkeypatch.setattr(pbmc, "CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "data"))
  (tmp_path / "data" / "pbmc").mkdir(parents=True)
  write_h5ad(str(tmp_path / "data" / "pbmc" / pbmc.FILE_NAME), x, codes)  # what the old search fell back to
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError) as error:
    pbmc.load(_data_config(dir=str(tmp_path / "empty")))
  message = str(error.value)
  assert "\n" not in message and f"data.dir={str(tmp_path / 'empty')!r} has no {pbmc.FILE_NAME};" in message
  assert f"python -m coarse2fine.data.datasets.pbmc {tmp_path / 'empty'}" in message and "leave data.dir unset" in message
  assert len(pbmc.load(_data_config()).train) == len(x)  # unset: the default places still serve


def test_search_order(tmp_path, monkeypatch):
  x, codes = _cells()
  monkeypatch.setattr(pbmc, "scanpy_copy", lambda: str(tmp_path / "scanpy" / pbmc.FILE_NAME))
  monkeypatch.setattr(pbmc, "CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("C2F_DATA_DIR", str(tmp_path / "data"))
  places = {"scanpy": tmp_path / "scanpy", "cache": tmp_path / "cache", "env": tmp_path / "data" / "pbmc"}
  for name, folder in places.items():  # each later one takes precedence
    folder.mkdir(parents=True)
    write_h5ad(str(folder / pbmc.FILE_NAME), x, codes)
    assert pbmc.find_file("", "") == str(folder / pbmc.FILE_NAME), name
  (tmp_path / "dir").mkdir()
  write_h5ad(str(tmp_path / "dir" / pbmc.FILE_NAME), x, codes)
  assert pbmc.find_file("", str(tmp_path / "dir")) == str(tmp_path / "dir" / pbmc.FILE_NAME)
  assert pbmc.find_file(str(places["scanpy"] / pbmc.FILE_NAME), str(tmp_path / "dir")).startswith(
      str(places["scanpy"]))


def test_fetch_takes_the_file_out_of_the_wheel_once(tmp_path, monkeypatch):
  import zipfile
  x, codes = _cells()
  write_h5ad(str(tmp_path / "cells.h5ad"), x, codes)
  wheel = tmp_path / "wheels" / "scanpy-1.0-py3-none-any.whl"
  wheel.parent.mkdir()
  with zipfile.ZipFile(wheel, "w") as archive:
    archive.write(tmp_path / "cells.h5ad", pbmc.WHEEL_MEMBER)
    archive.writestr("scanpy/__init__.py", "")
  downloads = []
  monkeypatch.setattr(pbmc, "download_wheel", lambda folder: downloads.append(folder) or str(wheel))
  path = pbmc.fetch(str(tmp_path / "cache"))
  assert path == str(tmp_path / "cache" / pbmc.FILE_NAME)
  assert (tmp_path / "cache" / pbmc.FILE_NAME).read_bytes() == (tmp_path / "cells.h5ad").read_bytes()
  assert os.listdir(tmp_path / "cache") == [pbmc.FILE_NAME]  # no temporary file left behind
  assert pbmc.fetch(str(tmp_path / "cache")) == path and len(downloads) == 1  # the second call finds it
  with zipfile.ZipFile(tmp_path / "wheels" / "other.whl", "w") as archive:
    archive.writestr("other/__init__.py", "")
  with pytest.raises(FileNotFoundError, match="is it a scanpy wheel"):
    pbmc.extract_from_wheel(str(tmp_path / "wheels" / "other.whl"), str(tmp_path / "cache2"))


def test_scanpy_location_is_found_without_importing_it():
  if importlib.util.find_spec("scanpy") is None:
    assert pbmc.scanpy_copy() is None
  else:
    assert pbmc.scanpy_copy().endswith(os.path.join("scanpy", "datasets", pbmc.FILE_NAME))


def test_config_trains_end_to_end(tmp_path, monkeypatch):
  """configs/falcon_pbmc.py for two short epochs on a written file, the dataset registered here."""
  from coarse2fine.data.datasets import registry
  from coarse2fine.engine import loop

  spec = importlib.util.spec_from_file_location("falcon_pbmc", CONFIG_FILE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  x, codes = _cells(per_type=16)  # 13+ cells per lineage for the config's 12 neighbours
  path = str(tmp_path / "cells.h5ad")
  write_h5ad(path, x, codes, sparse=True)
  config.data.path = path
  config.train.num_epochs = 2  # 2 steps an epoch on this small file: one solve, after in-epoch step 1 of epoch 1
  config.falcon.solve_every = 1
  config.logging.progress = False
  monkeypatch.setitem(registry.DATASETS, "pbmc", pbmc.load)
  metrics = loop.train_and_evaluate(config, str(tmp_path / "work"))["metrics"]
  assert 0 <= metrics["discovery/clusters_acc"] <= 100 and np.isfinite(metrics["test/coarse_top1"])


def _real_file():
  path = os.environ.get("C2F_PBMC_FILE", "")
  try:
    return pbmc.find_file(path)
  except FileNotFoundError:
    pytest.skip("10x_pbmc68k_reduced.h5ad not found: set $C2F_PBMC_FILE or $C2F_DATA_DIR (file in its pbmc/), "
                "or install scanpy.")


def test_the_bundled_file():
  path = _real_file()
  data = pbmc.load(_data_config(path=path))
  assert data.train.inputs.shape == (700, 765) and len(data.test) == 700
  counts = dict(zip(data.taxonomy.fine_names, np.bincount(data.train.fine, minlength=10).tolist()))
  assert counts == {"CD4+/CD25 T Reg": 68, "CD4+/CD45RA+/CD25- Naive T": 8, "CD4+/CD45RO+ Memory": 19,
                    "CD8+ Cytotoxic T": 54, "CD8+/CD45RA+ Naive Cytotoxic": 43, "CD14+ Monocyte": 129,
                    "CD19+ B": 95, "CD34+": 13, "CD56+ NK": 31, "Dendritic": 240}
  assert sum(counts.values()) == 700
  lineages = dict(zip(data.taxonomy.coarse_names, np.bincount(data.train.coarse).tolist()))
  assert lineages == {"T cell": 192, "NK cell": 31, "B cell": 95, "Myeloid": 369, "Progenitor": 13}
  # X was scaled per gene (on the cells before subsampling, so these 700 are near, not at, 0 and 1).
  np.testing.assert_allclose(data.train.inputs.mean(0), 0, atol=0.1)
  np.testing.assert_allclose([data.train.inputs.mean(), data.train.inputs.std()], [0, 1], atol=0.01)
  raw = np.asarray(pbmc.load(_data_config(path=path, variant="raw")).train.inputs)
  assert raw.shape == (700, 765) and raw.min() == 0 and not pbmc.is_counts(raw)  # log-normalised, not counts
  np.testing.assert_array_equal(raw > 0, np.abs(data.train.inputs - data.train.inputs.min(0)) > 1e-4)


def test_the_bundled_file_equals_its_h5py_contents():
  """The anndata path against the file's arrays read with h5py alone (its anndata < 0.7 layout, by hand)."""
  h5py = pytest.importorskip("h5py")
  path = _real_file()
  with h5py.File(path, "r") as h5:
    x = h5["X"][()]
    raw_group = h5["raw.X"]
    raw = scipy.sparse.csr_matrix((raw_group["data"][()], raw_group["indices"][()], raw_group["indptr"][()]),
                                  shape=tuple(raw_group.attrs["h5sparse_shape"])).toarray()
    codes = h5["obs"]["bulk_labels"].astype(np.int64)
    categories = [v.decode() for v in h5["uns/bulk_labels_categories"][()]]
  data = pbmc.load(_data_config(path=path))
  np.testing.assert_array_equal(data.train.inputs, x)
  assert data.taxonomy.fine_names == tuple(categories) == tuple(CATEGORIES)
  np.testing.assert_array_equal(data.train.fine, codes)
  np.testing.assert_array_equal(data.mean, x.mean(0))
  np.testing.assert_array_equal(data.std, x.std(0) + np.float32(1e-6))
  raw_data = pbmc.load(_data_config(path=path, variant="raw"))
  assert isinstance(raw_data.train.inputs, SparseRows)
  np.testing.assert_array_equal(np.asarray(raw_data.train.inputs), raw)
  np.testing.assert_array_equal(raw_data.train.fine, codes)
  np.testing.assert_array_equal(raw_data.mean, raw.mean(0))  # the sparse statistics are the dense ones, exactly
  np.testing.assert_array_equal(raw_data.std, raw.std(0) + np.float32(1e-6))
