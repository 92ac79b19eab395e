"""AnnData in and out: the inputs and labels of an AnnData, and a trained model's results written back to it.

In (docs/datasets.md#anndata-h5ad-files): `representation(adata, use_rep)` is the matrix a
model trains on, `X` (the default), `raw.X`, a layer or an `obsm` entry such as `X_pca`, kept
sparse when stored sparse; `obs_column` is a label column. Out, as scanpy's tools do
(`Model.annotate`): `adata.obsm["X_<key>"]` the embeddings, `adata.obs["<key>_fine"]` the
discovered classes (categorical, named `<coarse>/<k>`: the k-th discovered class under that
coarse class) and `adata.uns["<key>"]` the relation and the run's settings, all JSON-able.
anndata is imported only here, when an AnnData or a .h5ad file is used.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from coarse2fine import storage

UNASSIGNED = "unassigned"  # the coarse part of the name of a discovered class without a parent


def require_anndata():
  try:
    import anndata
  except ImportError as error:
    raise ImportError("AnnData objects and .h5ad files are read with anndata: `pip install anndata` "
                      "(or `pip install -e \".[singlecell]\"`).") from error
  return anndata


def is_anndata(x) -> bool:
  """Whether `x` is an anndata.AnnData (checked by type, without importing anndata)."""
  return any(cls.__name__ == "AnnData" and cls.__module__.startswith("anndata") for cls in type(x).__mro__)


def read_h5ad(path: str):
  """The AnnData of a .h5ad file, local or on an object store (read from its bytes)."""
  anndata = require_anndata()
  if not storage.isfile(path):
    raise FileNotFoundError(f"data.path={path!r} does not exist.")
  with warnings.catch_warnings():
    # Files of older anndata versions (e.g. scanpy's PBMC file) are converted on reading, with a
    # warning per old or moved element (dozens); the file is read correctly, so they would only be noise.
    warnings.filterwarnings("ignore", category=FutureWarning, module="anndata")
    warnings.filterwarnings("ignore", category=getattr(anndata, "OldFormatWarning", PendingDeprecationWarning))
    return anndata.read_h5ad(path if storage.is_local(path) else io.BytesIO(storage.read_bytes(path)))


def representation(adata, use_rep: str = "X"):
  """[N, F] matrix `use_rep` of `adata`: "X", "raw.X" (or "raw"), a layer or an obsm entry; sparse stays sparse."""
  if use_rep in ("X", ""):
    matrix = adata.X
    if matrix is None:
      raise ValueError(f"The AnnData has no X; choose use_rep among its layers {list(adata.layers.keys())} "
                       f"or obsm entries {list(adata.obsm.keys())}.")
  elif use_rep in ("raw", "raw.X"):
    if adata.raw is None:
      raise ValueError("use_rep='raw.X', but the AnnData has no raw; use 'X', a layer or an obsm entry.")
    matrix = adata.raw.X
  elif use_rep in adata.layers.keys():
    matrix = adata.layers[use_rep]
  elif use_rep in adata.obsm.keys():
    matrix = adata.obsm[use_rep]
  else:
    raise ValueError(f"use_rep={use_rep!r} is not in the AnnData: use 'X', 'raw.X', a layer "
                     f"{list(adata.layers.keys())} or an obsm entry {list(adata.obsm.keys())}.")
  if hasattr(matrix, "to_numpy"):  # an obsm DataFrame
    matrix = matrix.to_numpy()
  return matrix


def feature_names(adata, use_rep: str = "X") -> Optional[list[str]]:
  """The names of the columns of `representation(adata, use_rep)`: genes for X, raw.X and layers; None for obsm."""
  if use_rep in ("X", "") or use_rep in adata.layers.keys():
    return [str(v) for v in adata.var_names]
  if use_rep in ("raw", "raw.X") and adata.raw is not None:
    return [str(v) for v in adata.raw.var_names]
  return None


def names_sha1(names: Sequence[str]) -> str:
  """sha1 of the feature names in order: a model refuses an AnnData whose genes differ or are reordered."""
  return hashlib.sha1("\n".join(names).encode("utf-8")).hexdigest()


def obs_column(adata, key: str, role: str):
  """The obs column `key` (a pandas Series); a missing one is an error listing the columns."""
  if not isinstance(key, str) or key not in adata.obs.columns:
    raise ValueError(f"{role}={key!r} is not a column of adata.obs; its columns are {list(adata.obs.columns)}.")
  return adata.obs[key]


def class_names(relation: np.ndarray, coarse_names: Sequence[str]) -> tuple[list[str], list[str]]:
  """(name, parent) of each discovered class j of a [r, C] 0/1 relation: `<coarse>/<k>`, k counting within coarse.

  A class without a parent (an all-zero row) is `unassigned/<k>`.
  """
  relation = np.asarray(relation)
  parents = [str(coarse_names[int(row.argmax())]) if row.any() else UNASSIGNED for row in relation]
  seen: dict[str, int] = {}
  names = []
  for parent in parents:
    names.append(f"{parent}/{seen.get(parent, 0)}")
    seen[parent] = seen.get(parent, 0) + 1
  return names, parents


def write_results(adata, key: str, embeddings: np.ndarray, ids: np.ndarray, relation: np.ndarray,
                  coarse_names: Sequence[str], info: dict[str, Any]) -> None:
  """Writes obsm[X_<key>] ([N, e] embeddings), obs[<key>_fine] (categorical) and uns[<key>] (module doc).

  Everything is computed before the first write, so a failure leaves `adata` as it was.
  """
  import pandas as pd  # anndata's own dependency

  n = adata.n_obs
  if len(embeddings) != n or len(ids) != n:
    raise ValueError(f"{len(embeddings)} embeddings and {len(ids)} classes for the {n} cells of the AnnData.")
  names, parents = class_names(relation, coarse_names)
  order = {name: (list(coarse_names).index(p) if p in coarse_names else len(coarse_names), j)
           for j, (name, p) in enumerate(zip(names, parents))}
  used = sorted({names[int(j)] for j in np.unique(ids)}, key=order.get)  # grouped by coarse class, in its order
  fine = pd.Categorical([names[int(j)] for j in ids], categories=used)
  uns = {**info, "classes": names, "parent": parents, "relation": np.asarray(relation, np.int64).tolist(),
         "coarse_names": [str(c) for c in coarse_names]}
  adata.obsm[f"X_{key}"] = np.asarray(embeddings, np.float32)
  adata.obs[f"{key}_fine"] = pd.Series(fine, index=adata.obs.index)
  adata.uns[key] = uns
