"""PBMC single cells: scanpy's 700-cell `10x_pbmc68k_reduced.h5ad`, FALCON's PBMC setting offline.

The file (shipped inside the scanpy wheel as `scanpy/datasets/10x_pbmc68k_reduced.h5ad`) is
a subsample of the 10x PBMC 68k data (Zheng et al. 2017) that scanpy's authors prepared:
  X          [700, 765] float32, dense: log-normalised expression of 765 genes, then scaled
             per gene (mean 0, std 1, not clipped: values from -2.0 to 28.4).
  raw.X      [700, 765] CSR: log1p of counts normalised per cell (over the full gene set,
             so the expm1 row sums over these genes are 1.3k..2.6k, not 1e4). Not counts.
  obs        `bulk_labels`: 10 cell types from the bulk-sorted reference populations
             (Dendritic 240, CD14+ Monocyte 129, CD19+ B 95, CD4+/CD25 T Reg 68, CD8+ Cytotoxic
             T 54, CD8+/CD45RA+ Naive Cytotoxic 43, CD56+ NK 31, CD4+/CD45RO+ Memory 19, CD34+ 13,
             CD4+/CD45RA+/CD25- Naive T 8).
The file uses the anndata < 0.7 layout (obs a compound table, categories in
`uns/<column>_categories`, `raw.X` with `h5sparse_*` attributes); anndata reads it, and files
of later layouts, through the h5ad loader's reading (`h5ad.read_cells`).

Where the file is looked up: `data.path`, else `data.dir`/FILE (either one named but missing is an
error, never a fallback to another copy); with neither, in order: `$C2F_DATA_DIR`/pbmc/FILE and
`$C2F_DATA_DIR`/FILE; ~/.cache/coarse2fine/pbmc/FILE (where `python -m coarse2fine.data.datasets.pbmc`
puts it, taken out of the scanpy wheel on PyPI); the copy inside an installed scanpy package (found without
importing scanpy).

Labels: fine = `obs/bulk_labels` (ids in the file's category order); coarse = the built-in
`pbmc_lineages` taxonomy (`LINEAGES`), or a taxonomy file in `data.taxonomy`. Every label in
the file must have a parent.

Inputs, [700, 765] float32: `data.variant = ""` takes X as stored; `"raw"` takes raw.X (kept
sparse, `SparseRows`), turned into log1p(counts / cell total * 1e4) when it holds integer
counts and used as stored otherwise (as in this file, which holds no counts). Per-gene mean
and std of the cells normalise inputs, as for other vector datasets. This is the h5ad loader's
reading (`data.name = "h5ad"`) with these defaults; cells without a bulk_label are an error.

What differs from FALCON's PBMC pipeline (docs/datasets.md#pbmc-single-cells): another data set (10x
PBMC 68k, not the COVID-19 challenge set of 372K cells); 765 genes chosen by scanpy's authors
instead of 2000 seurat_v3 highly variable genes (which need counts this file lacks); X is
also scaled per gene; 10 fine cell types and 5 lineages instead of 83 cell states and 27
cell types. As in FALCON, the setting is transductive: train and test are all cells (the
test split is the train split), and no augmentation is used.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Optional

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.datasets import h5ad
from coarse2fine.data.datasets.arrays import input_statistics
from coarse2fine.data.labels import encode_labels
from coarse2fine.data.sparse_rows import SparseRows
from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy

FILE_NAME = "10x_pbmc68k_reduced.h5ad"
LABEL_COLUMN = "bulk_labels"
DEFAULT_TAXONOMY = "pbmc_lineages"
VARIANTS = ("", "raw")
TARGET_SUM = 1e4  # scanpy's normalize_total(target_sum=1e4), as in FALCON's preprocessing

# Haematopoietic lineages of the 10 bulk-sorted populations (coarse -> fine, coarse ids in this order).
LINEAGES = {
    "T cell": ["CD4+/CD25 T Reg", "CD4+/CD45RA+/CD25- Naive T", "CD4+/CD45RO+ Memory", "CD8+ Cytotoxic T",
               "CD8+/CD45RA+ Naive Cytotoxic"],
    "NK cell": ["CD56+ NK"],
    "B cell": ["CD19+ B"],
    "Myeloid": ["CD14+ Monocyte", "Dendritic"],
    "Progenitor": ["CD34+"],
}

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "coarse2fine", "pbmc")  # where `fetch` puts it
WHEEL_MEMBER = f"scanpy/datasets/{FILE_NAME}"

GET_IT = (f"Fetch it once with `python -m coarse2fine.data.datasets.pbmc` (takes it out of the scanpy wheel on PyPI into "
          f"{CACHE_DIR}), or by hand: `pip download scanpy --no-deps -d /tmp/scanpy_wheel && unzip "
          f"/tmp/scanpy_wheel/scanpy-*.whl {WHEEL_MEMBER} -d /tmp/scanpy_wheel`, then set "
          f"--config.data.path=/tmp/scanpy_wheel/{WHEEL_MEMBER}.")


# ----------------------------------------------------------------------------- finding the file

def scanpy_copy() -> Optional[str]:
  """The file inside an installed scanpy package, or None; scanpy itself is not imported."""
  try:
    spec = importlib.util.find_spec("scanpy")
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return os.path.join(list(spec.submodule_search_locations)[0], "datasets", FILE_NAME)


def candidate_paths(data_dir: str = "") -> list[str]:
  """The places `find_file` looks at after `data.path`, in order: `data.dir`/FILE alone when data.dir is set."""
  if data_dir:
    return [storage.join(data_dir, FILE_NAME)]
  paths = []
  env = os.environ.get("C2F_DATA_DIR")
  if env:
    paths += [storage.join(env, "pbmc", FILE_NAME), storage.join(env, FILE_NAME)]
  paths.append(os.path.join(CACHE_DIR, FILE_NAME))
  bundled = scanpy_copy()
  if bundled:
    paths.append(bundled)
  return paths


# ----------------------------------------------------------------------------- fetching it

def extract_from_wheel(wheel: str, dest_dir: str) -> str:
  """Copies the h5ad out of a scanpy wheel into `dest_dir` (via a temporary file); returns its path."""
  os.makedirs(dest_dir, exist_ok=True)
  with zipfile.ZipFile(wheel) as archive:
    if WHEEL_MEMBER not in archive.namelist():
      raise FileNotFoundError(f"{wheel} has no {WHEEL_MEMBER}; is it a scanpy wheel?")
    fd, tmp = tempfile.mkstemp(dir=dest_dir, suffix=".tmp")
    try:
      with os.fdopen(fd, "wb") as out, archive.open(WHEEL_MEMBER) as member:
        shutil.copyfileobj(member, out)
      os.chmod(tmp, 0o644)
      path = os.path.join(dest_dir, FILE_NAME)
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
  return path


def download_wheel(folder: str) -> str:
  """`pip download scanpy --no-deps` (the wheel only, no install) into `folder`; returns the wheel's path."""
  subprocess.run([sys.executable, "-m", "pip", "download", "scanpy", "--no-deps", "--only-binary=:all:", "-q",
                  "-d", folder], check=True)
  wheels = [f for f in os.listdir(folder) if f.startswith("scanpy-") and f.endswith(".whl")]
  if not wheels:
    raise FileNotFoundError(f"pip download left no scanpy wheel in {folder}.")
  return os.path.join(folder, sorted(wheels)[-1])


def fetch(dest_dir: str = CACHE_DIR) -> str:
  """Puts the PBMC h5ad into `dest_dir` (where `find_file` looks), unless it is there; returns its path."""
  path = os.path.join(dest_dir, FILE_NAME)
  if os.path.isfile(path):
    return path
  with tempfile.TemporaryDirectory() as folder:
    return extract_from_wheel(download_wheel(folder), dest_dir)


def find_file(path: str = "", data_dir: str = "") -> str:
  """`path` if given (it must exist), else the first candidate that exists; FileNotFoundError otherwise."""
  if path:
    if not storage.isfile(path):
      raise FileNotFoundError(f"data.path={path!r} does not exist. {GET_IT}")
    return path
  looked = candidate_paths(data_dir)
  for candidate in looked:
    if storage.isfile(candidate):
      return candidate
  if data_dir:
    raise FileNotFoundError(f"data.dir={data_dir!r} has no {FILE_NAME}; put it there (`python -m "
                            f"coarse2fine.data.datasets.pbmc {data_dir}` fetches it), or leave data.dir unset to use "
                            f"the default places ($C2F_DATA_DIR, {CACHE_DIR}, an installed scanpy).")
  where = ", ".join(looked) if looked else "nowhere (no data.dir, $C2F_DATA_DIR or scanpy install)"
  raise FileNotFoundError(f"PBMC file {FILE_NAME} not found; looked in {where}. {GET_IT}")


# ----------------------------------------------------------------------------- preprocessing

def log_normalise(counts, target_sum: float = TARGET_SUM):
  """log1p(counts scaled to `target_sum` per cell): scanpy's normalize_total + log1p. [N, G] float32.

  A `SparseRows` stays sparse (zeros stay zero); an array stays dense.
  """
  if isinstance(counts, SparseRows):
    matrix = counts.matrix.astype(np.float64)
    totals = np.asarray(matrix.sum(1)).reshape(-1)
    scale = np.where(totals > 0, target_sum / np.where(totals > 0, totals, 1.0), 0.0)  # empty cells stay 0
    matrix.data = np.log1p(matrix.data * np.repeat(scale, np.diff(matrix.indptr)))
    return SparseRows(matrix)
  counts = np.asarray(counts, np.float64)
  totals = counts.sum(1, keepdims=True)
  scale = np.where(totals > 0, target_sum / np.where(totals > 0, totals, 1.0), 0.0)
  return np.log1p(counts * scale).astype(np.float32)


def is_counts(matrix) -> bool:
  """Whether `matrix` holds raw counts (non-negative integers), not already normalised values."""
  values = matrix.matrix.data if isinstance(matrix, SparseRows) else np.asarray(matrix)
  return bool(np.all(values >= 0) and np.all(values == np.round(values)))


# ----------------------------------------------------------------------------- labels

def lineage_taxonomy() -> Taxonomy:
  """The built-in `pbmc_lineages`: 10 cell types in 5 lineages (`LINEAGES`)."""
  return Taxonomy.from_groups(DEFAULT_TAXONOMY, LINEAGES)


def resolve_taxonomy(spec: str, label_names: list[str]) -> tuple[Taxonomy, np.ndarray]:
  """(taxonomy with fine ids in the file's label order, index_map [L] from file code to fine id).

  The built-in drops the lineages of cell types the file does not declare; a taxonomy file
  must name exactly labels the file has. Labels without a parent are an error either way.
  """
  if spec in ("", DEFAULT_TAXONOMY):
    taxonomy = lineage_taxonomy()
    declared = [f for f in taxonomy.fine_names if f in set(label_names)]
    if declared:
      taxonomy = taxonomy.subset(declared)
  else:
    taxonomy = get_taxonomy(spec)
  unmapped = [n for n in label_names if n not in set(taxonomy.fine_names)]
  if unmapped:
    raise ValueError(
        f"PBMC {LABEL_COLUMN} without a coarse parent in taxonomy {taxonomy.name!r}: {unmapped}. "
        f"Every cell type needs one; add them to the taxonomy file (data.taxonomy).")
  return taxonomy.align(label_names)


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  """All cells as both train and test, fine = bulk_labels, coarse = their lineage (module doc)."""
  if data_config.variant not in VARIANTS:
    raise ValueError(f"data.name='pbmc' has the variants {VARIANTS} ('': X as stored, 'raw': raw.X), "
                     f"got data.variant={data_config.variant!r}.")
  path = find_file(data_config.path, data_config.dir)
  # The h5ad loader's reading (anndata), with this dataset's defaults: X or raw.X, fine = bulk_labels.
  matrix, columns = h5ad.read_cells(path, "raw.X" if data_config.variant == "raw" else "X", [LABEL_COLUMN])
  if data_config.variant == "raw" and is_counts(matrix):
    matrix = log_normalise(matrix)
  codes, names = encode_labels(columns[LABEL_COLUMN], len(matrix), f"{path}: obs column {LABEL_COLUMN!r}")
  if names is None:
    raise ValueError(f"{path}: obs column {LABEL_COLUMN!r} holds numbers; the PBMC loader needs cell-type names "
                     "(strings or a categorical) to find their lineages.")
  taxonomy, index_map = resolve_taxonomy(data_config.taxonomy, names)
  cells = make_split(matrix, fine=index_map[codes], taxonomy=taxonomy, where=path)
  mean, std = input_statistics(cells.inputs)  # per gene
  # Transductive (FALCON's PBMC setting): the model is evaluated on the cells it trains on.
  return HierarchicalData("pbmc", taxonomy, train=cells, test=cells, mean=mean, std=std)


if __name__ == "__main__":
  print(fetch(sys.argv[1] if len(sys.argv) > 1 else CACHE_DIR))
