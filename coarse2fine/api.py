"""A Python API for a user's own coarsely labelled arrays: fit, embed, discover, adapt, save, load.

  import coarse2fine as c2f
  model = c2f.fit(x, coarse, workdir="runs/mine", num_fine=9)  # method=: a name in coarse2fine.methods.METHODS
  z = model.embed(x_new)                       # [n, e] embeddings
  ids, relation = model.discover(x_new)        # [n] discovered fine classes, [r, C] their coarse parents
  ids, _ = model.discover(x_new, coarse_new)   # ... each among its known coarse class's children
  clf = model.adapt(support_x, support_y)      # few-shot logistic regression on the embeddings
  clf.predict(query_x), clf.predict_proba(query_x)
  model.save("runs/mine_copy", overwrite=True); model = c2f.load("runs/mine_copy")

Inputs are [N, H, W, C] or [N, H, W] images (uint8 in [0, 255], or float in [0, 1], which is
rounded to uint8: the data layer keeps images as uint8) or [N, F] vectors, dense or a scipy
sparse matrix (kept sparse on the host, densified a batch at a time). Labels are integer ids,
strings or pandas categoricals. An anndata.AnnData goes in with obs column names,
`fit(adata, "cell_type", fine="subtype")`, and `model.annotate(adata)` writes the results
back (docs/datasets.md#anndata-h5ad-files). With fine labels, `fit` reports the discovered
classes next to k-means baselines (`model.report`, `evaluation.baselines`). `fit` picks a
config per method and input kind (`default_config`: the ConvNet and crop-and-flip views of
the Fashion-MNIST configs for images, an MLP encoder without augmentation for vectors),
applies `config_overrides` and trains with `loop.train_and_evaluate(config, workdir, data)`.

A fit's workdir keeps the arrays it was trained on (dense inputs: `data/arrays.npz` with x, coarse, fine and
x_test, coarse_test, fine_test, and the taxonomy `data/<name>.json`, recorded as the relative data.path and
data.taxonomy of config.json), so the run can be evaluated and plotted like any other:
`python -m coarse2fine.evaluate --workdir=runs/mine`, `python -m coarse2fine.plot --workdir=runs/mine`
(docs/figures.md). This costs the disk of the inputs (twice with test_fraction=0, where the test split is
the training data); sparse inputs are not stored, and their runs cannot be evaluated or plotted from the workdir.

Choices worth knowing:
  * Evaluation split: the trainer scores a test split at the end (`workdir/results.json`).
    By default (`test_fraction=0`) that is the training data itself, so every example
    trains and the scores are training-set scores; `test_fraction > 0` holds out that share
    of the examples, stratified by coarse class, for honest scores.
  * Without fine labels the taxonomy has one placeholder fine class per coarse class (the
    data layer needs a fine class under every coarse class; fine labels are -1, unknown),
    and only the classification protocol runs. Methods that count fine classes (FALCON's
    K, SCGM's sub-classes r, SCAN's clusters) then take `num_fine`, by default "estimate" (estimated
    per coarse class from the inputs before training). With fine labels
    (-1 where unknown) the taxonomy comes from the (fine, coarse) pairs, `num_fine`
    defaults to their number, and the discovery metrics run too when the evaluation split
    is fully labelled.
  * `discover` returns the method's own classes (FALCON, SCGM, F-SC's sub-centre heads);
    other methods raise: cluster their `embed` output, e.g. with
    `coarse2fine.evaluation.kmeans.kmeans_discovery`.
  * `adapt` is SCGM's few-shot personalisation: `LogisticRegression(C=1)` (scikit-learn's
    objective, solved by `evaluation.logistic`) on L2-normalised embeddings, without
    support augmentation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.config_base import base_config
from coarse2fine.data import anndata_io, checks
from coarse2fine.data.datasets import arrays
from coarse2fine.data.labels import encode_labels, taxonomy_from_labels
from coarse2fine.data.sparse_rows import SparseRows, is_sparse
from coarse2fine.data.splits import UNKNOWN_FINE, HierarchicalData, Split, carve_validation
from coarse2fine.data.taxonomy import Taxonomy
from coarse2fine.engine import loop, runs
from coarse2fine.engine.reporting import write_json_atomically
from coarse2fine.evaluation import baselines, logistic
from coarse2fine.evaluation.discovery import predict_within_coarse
from coarse2fine.evaluation.evaluator import Evaluator, predict_split
from coarse2fine.methods import DEFAULT_METHOD, discovering_methods, method_class
from coarse2fine.methods.common.estimate_k import ESTIMATE
from coarse2fine.methods.common.normalize import l2_normalize_host

META_FILE = "api_meta.json"  # next to the run's config.json: what `load` needs besides the checkpoint
DATA_DIR = "data"  # in the workdir: the arrays of the fit (`store_data`), read back by evaluate and plot
ARRAYS_FILE = "arrays.npz"
META_FORMAT = 1
OPEN_FIELDS = ("model.encoder_args",)  # config nodes whose keys are free: the encoder's keyword arguments


# ----------------------------------------------------------------------------- inputs and labels

def as_inputs(x, where: str = "x"):
  """Inputs as the data layer keeps them: [N, H, W, C] uint8 images or [N, F] float32 vectors.

  A scipy sparse [N, F] matrix becomes a `SparseRows` (CSR on the host, dense a batch at a time).
  """
  if is_sparse(x) or isinstance(x, SparseRows):
    rows = x if isinstance(x, SparseRows) else SparseRows(x)
    if len(x.shape) != 2 or rows.shape[0] == 0:
      raise ValueError(f"{where}: expected [N, F] vectors with N > 0, got a sparse matrix of shape {x.shape}.")
    checks.check_sparse(rows, where)
    return rows
  x = np.asarray(x)
  if x.ndim not in (2, 3, 4) or len(x) == 0:
    raise ValueError(f"{where}: expected [N, F] vectors or [N, H, W(, C)] images with N > 0, got shape {x.shape}.")
  numeric = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
  if not numeric or x.dtype == bool:
    raise ValueError(f"{where}: expected numbers, got dtype {x.dtype}.")
  if x.ndim == 3:
    x = x[..., None]  # [N, H, W] grey images
  if x.ndim == 4 and x.dtype == np.uint8:
    return x
  if x.ndim == 4 and not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"{where}: images must be uint8 in [0, 255] or float in [0, 1], got dtype {x.dtype}.")
  checks.check_finite(x, where)
  if x.ndim == 2:
    checks.check_range(x, where)
    return x.astype(np.float32)
  low, high = float(x.min()), float(x.max())
  if low < 0 or high > 1:
    raise ValueError(f"{where}: float images must lie in [0, 1], got values in [{low:g}, {high:g}]; "
                     "scale them, or pass uint8 images in [0, 255].")
  return np.round(x * 255).astype(np.uint8)


def user_taxonomy(coarse: np.ndarray, fine: Optional[np.ndarray], coarse_names: Optional[Sequence[str]],
                  fine_names: Optional[Sequence[str]] = None) -> tuple[Taxonomy, Optional[np.ndarray]]:
  """The taxonomy of the labels, and the fine labels as its ids [N] (-1 unknown), or None without fine labels.

  Coarse ids index `coarse_names` (default "coarse_0", ...). Fine ids are the sorted distinct
  known fine labels, named by `fine_names` or their values; without any, one placeholder per
  coarse class (`data.labels.taxonomy_from_labels`).
  """
  return taxonomy_from_labels(coarse, fine, coarse_names, fine_names)


def build_data(x, coarse, fine=None, coarse_names=None, test_fraction: float = 0.0,
               split_seed: int = 0) -> HierarchicalData:
  """The arrays as `HierarchicalData`; the test split is the training split unless `test_fraction` > 0.

  Labels may be integer ids, strings or pandas categoricals (`data.labels.encode_labels`);
  named coarse labels name the coarse classes themselves.
  """
  inputs = as_inputs(x)
  coarse, names = encode_labels(coarse, len(inputs), "coarse")
  if names is not None:
    if coarse_names is not None:
      raise ValueError("coarse_names names integer coarse ids; these coarse labels are named already "
                       "(strings or a categorical): drop coarse_names.")
    coarse_names = names
  fine, fine_names = (None, None) if fine is None else encode_labels(fine, len(inputs), "fine", unknown_allowed=True)
  if not 0 <= test_fraction < 1:
    raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
  taxonomy, fine_ids = user_taxonomy(coarse, fine, coarse_names, fine_names)
  train_split = arrays.split_from_arrays(inputs, coarse, fine_ids, taxonomy=taxonomy, where="fit(x)")
  test_split = train_split
  if test_fraction > 0:
    train_split, test_split = carve_validation(train_split, test_fraction, split_seed)
  return arrays.with_statistics(train_split, test_split, taxonomy)


# ----------------------------------------------------------------------------- config

def default_config(method: str, data: HierarchicalData, seed: int = 0) -> ml_collections.ConfigDict:
  """A config for `method` on `data`: the CPU-sized recipe of configs/*_fashion_mnist.py, adapted.

  Images: ConvNet, pad-2 crop-and-flip views; vectors: MLP 256-256 encoder, no augmentation.
  20 epochs of SGD (lr 0.05, cosine), batch up to 128 (at least 4 steps an epoch), evaluation
  on the encoder features.
  """
  method_cls = method_class(method)
  config = base_config()
  config.method = method
  config.seed = seed
  config.data.name = "arrays"  # recorded in config.json; the arrays reach the trainer in memory
  config.data.views = method_cls.api_views(data.is_image)
  config.model.encoder = "convnet" if data.is_image else "mlp"
  if not data.is_image:
    config.model.encoder_args.hidden_sizes = (256, 256)
  config.model.embedder = "mlp" if method_cls.has_embedder else "none"
  config.optimizer.lr = 0.05
  config.optimizer.weight_decay = 5e-4
  config.train.num_epochs = 20
  devices = jax.device_count()  # the batch is split over the devices
  config.train.batch_size = max(devices, min(128, len(data.train) // 4) // devices * devices)
  config.eval.batch_size = 512 // devices * devices or devices
  config.eval.features = "features"  # the encoder output, as the Fashion-MNIST configs evaluate
  method_cls.api_defaults(config, data)
  return config


def set_field(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """config[a][b] = value for key "a.b"; a field the config lacks is an error (but see OPEN_FIELDS)."""
  *path, leaf = key.split(".")
  node = config
  for depth, part in enumerate(path):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise ValueError(f"Unknown config key {key!r}: no field {'.'.join(path[:depth + 1])!r}.")
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or (leaf not in node and ".".join(path) not in OPEN_FIELDS):
    known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
    raise ValueError(f"Unknown config key {key!r}; fields there: {known}.")
  if isinstance(node.get(leaf), tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    node[leaf] = value
  except TypeError as error:
    raise ValueError(f"config_overrides[{key!r}] = {value!r}: {error}") from None


def derived_settings(config: ml_collections.ConfigDict, data: HierarchicalData) -> dict[str, Any]:
  """Settings that follow from the budget and the data, filled in after the user's overrides."""
  return {**method_class(config.method).api_derived(config, data), "eval.protocols": _protocols(config, data)}


def _protocols(config: ml_collections.ConfigDict, data: HierarchicalData) -> tuple[str, ...]:
  """Classification (for a method with a classifier); with every evaluation example's fine label, the
  method's own clusters or k-means too."""
  cls = method_class(config.method)
  classification = ("classification",) if cls.has_classifier(config) else ()
  if (data.test.fine == UNKNOWN_FINE).any():
    return classification
  return classification + ("clusters" if cls.has_clusters(config) else "kmeans",)


def make_config(method: str, data: HierarchicalData, num_fine: Optional[Union[int, str]] = None,
                overrides: Optional[Mapping[str, Any]] = None, seed: int = 0) -> ml_collections.ConfigDict:
  """`default_config`, then `num_fine`, then `overrides` ("a.b" keys), then `derived_settings` not overridden."""
  overrides = dict(overrides or {})
  config = default_config(method, data, seed)
  count_field = method_class(method).fine_count_field
  has_fine = bool((data.train.fine != UNKNOWN_FINE).any() or (data.test.fine != UNKNOWN_FINE).any())
  if num_fine is None and count_field and not has_fine and count_field not in overrides:
    num_fine = ESTIMATE  # no fine labels: estimated per coarse class before training (docs/methods/falcon.md#estimated-k)
  if num_fine is not None:
    if isinstance(num_fine, str) and num_fine != ESTIMATE:
      raise ValueError(f"num_fine={num_fine!r}: give a number of fine classes, or 'estimate'.")
    if num_fine != ESTIMATE and num_fine < data.num_coarse:
      raise ValueError(f"num_fine={num_fine} is below the {data.num_coarse} coarse classes; every coarse class "
                       "needs a fine class.")
    if count_field:
      set_field(config, count_field, num_fine if num_fine == ESTIMATE else int(num_fine))
  for key, value in overrides.items():
    set_field(config, key, value)
  for key, value in derived_settings(config, data).items():
    if key not in overrides:
      set_field(config, key, value)
  return config


# ----------------------------------------------------------------------------- files

def _read_json(path: str) -> Any:
  return json.loads(storage.read_text(path))


def _fingerprint(data: HierarchicalData) -> str:
  """sha1 of the training and test arrays, so a workdir is never resumed with other data."""
  digest = hashlib.sha1()
  for split in (data.train, data.test):
    if isinstance(split.inputs, SparseRows):
      split.inputs.fingerprint(digest)  # the CSR arrays: a sparse fit never densifies its inputs
    else:
      digest.update(np.ascontiguousarray(split.inputs).tobytes())
    for array in (split.coarse, split.fine):
      digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _meta(data: HierarchicalData, source: Optional[dict] = None) -> dict:
  """What `load` needs besides the checkpoint; `source`: where an AnnData's inputs and labels came from."""
  taxonomy = data.taxonomy
  return {**({"anndata": source} if source else {}),
      "format": META_FORMAT,
      "input_shape": list(data.input_shape),
      "num_train": len(data.train),
      "mean": np.asarray(data.mean, np.float32).tolist(),  # float32 -> float -> JSON round-trips exactly
      "std": np.asarray(data.std, np.float32).tolist(),
      "taxonomy": {"name": taxonomy.name, "fine_names": list(taxonomy.fine_names),
                   "coarse_names": list(taxonomy.coarse_names), "fine_to_coarse": taxonomy.fine_to_coarse.tolist()},
      "data_sha1": _fingerprint(data),
  }


def _stub_data(meta: dict) -> HierarchicalData:
  """Data shaped like the training split, without it: what the method and its state are rebuilt from."""
  n, shape = meta["num_train"], tuple(meta["input_shape"])
  dtype = np.uint8 if len(shape) == 3 else np.float32
  inputs = np.broadcast_to(np.zeros((1, *shape), dtype), (n, *shape))  # [N, ...] zeros without the memory
  split = Split(inputs, np.zeros(n, np.int32), np.full(n, UNKNOWN_FINE, np.int32))
  t = meta["taxonomy"]
  taxonomy = Taxonomy(t["name"], t["fine_names"], t["coarse_names"], np.asarray(t["fine_to_coarse"], np.int32))
  return HierarchicalData("arrays", taxonomy, split, split, mean=np.asarray(meta["mean"], np.float32),
                          std=np.asarray(meta["std"], np.float32))


def store_data(data: HierarchicalData, workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes the fit's splits to workdir/data/arrays.npz and its taxonomy beside it (each atomically), and records
  them in `config` as data.path and data.taxonomy relative to the workdir (the `arrays` loader's format; readers
  of the run resolve them against the workdir, `engine.runs.workdir_data_config`). Sparse inputs are skipped."""
  if isinstance(data.train.inputs, SparseRows) or isinstance(data.test.inputs, SparseRows):
    return
  taxonomy_name = f"{DATA_DIR}/{data.taxonomy.name}.json"
  config.data.path, config.data.taxonomy = f"{DATA_DIR}/{ARRAYS_FILE}", taxonomy_name
  if jax.process_index() != 0:
    return
  arrays_path = storage.join(workdir, DATA_DIR, ARRAYS_FILE)
  if not storage.isfile(arrays_path):  # a resumed fit (same arrays: `fit` checks the fingerprint) keeps its copy
    buffer = io.BytesIO()
    np.savez(buffer, x=data.train.inputs, coarse=data.train.coarse, fine=data.train.fine, x_test=data.test.inputs,
             coarse_test=data.test.coarse, fine_test=data.test.fine)
    storage.makedirs(storage.join(workdir, DATA_DIR))
    storage.write_bytes_atomically(arrays_path, buffer.getvalue())
  write_json_atomically(storage.join(workdir, taxonomy_name), data.taxonomy.to_json_dict())


# ----------------------------------------------------------------------------- the model

@dataclasses.dataclass(frozen=True)
class FewShotClassifier:
  """Logistic regression on a model's L2-normalised embeddings (`Model.adapt`)."""

  model: "Model"
  classes: np.ndarray  # [K] the support labels, sorted
  coef: np.ndarray  # [K, e] float32
  intercept: np.ndarray  # [K] float32

  def decision_function(self, x) -> np.ndarray:
    """[q, K] logits of the inputs x [q, ...]."""
    return l2_normalize_host(self.model.embed(x)) @ self.coef.T + self.intercept

  def predict_proba(self, x) -> np.ndarray:
    """[q, K] class probabilities, columns in the order of `classes`."""
    logits = self.decision_function(x)
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)

  def predict(self, x) -> np.ndarray:
    """[q] predicted labels (values of the support labels)."""
    return self.classes[self.decision_function(x).argmax(1)]


class Model:
  """A trained method restored from its workdir: embeddings, discovered classes, few-shot adaptation.

  Attributes: workdir, config, method, state (the final `TrainState`), taxonomy, report (`fit`'s
  comparison with k-means baselines when fine labels were known, else None), anndata (where a
  model fitted on an AnnData took its inputs and labels: use_rep, coarse_key, fine_key; else None).
  """

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, run: runs.Run, state,
               anndata: Optional[dict] = None, report: Optional[dict] = None):
    self.workdir = workdir
    self.config = config
    self.method = run.method
    self.state = state
    self.taxonomy = run.data.taxonomy
    self.anndata = anndata
    self.report = report
    self._data, self._mesh = run.data, run.mesh
    self._evaluator = Evaluator(run.method, run.data, run.mesh, config)

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self._data.input_shape

  def _inputs(self, x, where: str):
    if anndata_io.is_anndata(x):
      x = self._anndata_inputs(x)
    inputs = as_inputs(x, where)
    if inputs.shape[1:] != self.input_shape:
      raise ValueError(f"{where}: examples of shape {inputs.shape[1:]}, but the model was trained on "
                       f"{self.input_shape}.")
    return inputs

  def _anndata_inputs(self, adata):
    """The matrix of an AnnData the model reads: the representation it was fitted on ("X" by default)."""
    source = self.anndata or {}
    use_rep = source.get("use_rep", "X")
    names = anndata_io.feature_names(adata, use_rep)
    if names is not None and source.get("features_sha1") and anndata_io.names_sha1(names) != source["features_sha1"]:
      raise ValueError(f"The AnnData's {use_rep} has other features (or another order) than the one the model was "
                       f"fitted on ({source.get('num_features')} features); select and order them as in training, "
                       "e.g. adata[:, training_adata.var_names].")
    return anndata_io.representation(adata, use_rep)

  def embed(self, x) -> np.ndarray:
    """[n, e] float32 embeddings (`config.eval.features` of the method's predict) of inputs x [n, ...].

    x: an array, a scipy sparse [n, F] matrix (densified a block of rows at a time), or an AnnData
    (its representation the model was fitted on).
    """
    inputs = self._inputs(x, "x")
    if not isinstance(inputs, SparseRows):
      return np.asarray(self._evaluator.embed(self.state, inputs), np.float32)
    rows = 8 * self.config.eval.batch_size  # whole evaluation batches, as the dense path cuts them
    return np.concatenate([np.asarray(self._evaluator.embed(self.state, inputs[start:start + rows]), np.float32)
                           for start in range(0, len(inputs), rows)])

  def discover(self, x, coarse=None) -> tuple[np.ndarray, np.ndarray]:
    """([n] int64 discovered class of each input, [r, C] int64 0/1 coarse parent of each class).

    coarse: optional [n] coarse labels of x (ids, or the names `fit` saw): each input's class is
    then the best among its coarse class's children, as the coarse labels are known (the setting
    of `discovery/clusters_within_*` and of the k-means baselines); without, the best of all r.
    """
    discovered = self.method.discovered(self.state)
    if discovered is None:
      raise ValueError(f"Method {self.config.method!r} (as configured) discovers no classes with coarse parents "
                       f"of its own; methods that can: {', '.join(discovering_methods())}. Cluster model.embed(x) "
                       "instead, e.g. with coarse2fine.evaluation.kmeans.kmeans_discovery.")
    inputs = self._inputs(x, "x")
    coarse_ids = None if coarse is None else self._coarse_ids(coarse, len(inputs))
    split = Split(inputs, np.zeros(len(inputs), np.int32), np.full(len(inputs), UNKNOWN_FINE, np.int32))
    logits = predict_split(self._evaluator.predict_step, self.state, split, self._mesh,
                           self.config.eval.batch_size, keys=("cluster_logits",))["cluster_logits"]
    relation = np.asarray(discovered.relation, np.int64)
    if coarse_ids is None:
      return logits.argmax(1).astype(np.int64), relation
    return predict_within_coarse(logits, coarse_ids, relation).astype(np.int64), relation

  def _coarse_ids(self, coarse, n: int) -> np.ndarray:
    """[n] int coarse ids of labels given as ids in 0..C-1 or as the taxonomy's coarse names."""
    labels = np.asarray(coarse)
    names = list(self.taxonomy.coarse_names)
    if labels.shape != (n,):
      raise ValueError(f"coarse: expected {n} labels, one per input, got shape {labels.shape}.")
    if np.issubdtype(labels.dtype, np.integer):
      bad = labels[(labels < 0) | (labels >= len(names))]
      if len(bad):
        raise ValueError(f"coarse: id {int(bad[0])} is not one of the model's {len(names)} coarse classes (0.."
                         f"{len(names) - 1}: {names}).")
      return labels.astype(np.int64)
    index = {str(name): i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in labels.tolist()} - set(index))
    if unknown:
      raise ValueError(f"coarse: {unknown[:5]} not among the model's coarse classes {names}.")
    return np.asarray([index[str(v)] for v in labels.tolist()], np.int64)

  def annotate(self, adata, key: str = "c2f") -> None:
    """Writes the model's results into an AnnData, as scanpy's tools do (docs/datasets.md#anndata-h5ad-files).

    adata.obsm["X_<key>"]: [n, e] float32 embeddings; adata.obs["<key>_fine"]: each cell's discovered
    class, categorical, named `<coarse>/<k>` (the k-th discovered class under that coarse class);
    adata.uns["<key>"]: per discovered class its name and coarse parent, the [r, C] relation, the
    method, the run's workdir and settings (config as JSON), and `report` if any: all JSON-able.
    Needs a method that discovers classes (`discover`); `adata` is unchanged if anything fails.
    """
    if not anndata_io.is_anndata(adata):
      raise ValueError(f"annotate writes into an AnnData; got {type(adata).__name__}. For arrays use embed and "
                       "discover.")
    embeddings = self.embed(adata)
    source = self.anndata or {}
    coarse_key = source.get("coarse_key", "")
    coarse = adata.obs[coarse_key].astype(str).to_numpy() if coarse_key in adata.obs else None
    if coarse is not None and not set(coarse) <= {str(name) for name in self.taxonomy.coarse_names}:
      coarse = None  # other (or missing) coarse labels than the model's: each cell's best class of all
    ids, relation = self.discover(adata, coarse)
    info = {"method": str(self.config.method), "workdir": str(self.workdir), "use_rep": source.get("use_rep", "X"),
            "coarse_key": source.get("coarse_key", ""), "fine_key": source.get("fine_key", ""),
            "seed": int(self.config.seed), "num_classes": int(len(relation)),
            "config": json.dumps(self.config.to_dict(), default=str)}
    if self.report:
      info["report"] = json.dumps(self.report)
    anndata_io.write_results(adata, key, embeddings, ids, relation, self.taxonomy.coarse_names, info)

  def adapt(self, support_x, support_y, C: float = 1.0) -> FewShotClassifier:
    """A classifier of the support labels [s] (any sortable values, 2 or more classes) from inputs [s, ...].

    scikit-learn's `LogisticRegression(C=C)` objective on L2-normalised embeddings, as in
    SCGM's few-shot protocol (evaluation/fewshot.py), solved by `evaluation.logistic`.
    """
    embeddings = l2_normalize_host(self.embed(support_x))
    labels = np.asarray(support_y)
    if labels.ndim != 1 or len(labels) != len(embeddings):
      raise ValueError(f"support_y must hold one label per support example: {len(embeddings)} examples, "
                       f"labels of shape {labels.shape}.")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
      raise ValueError(f"support_y has {len(classes)} class; a classifier needs 2 or more.")
    fit = logistic.fit_logreg(embeddings[None], y[None].astype(np.int32), np.ones((1, len(y)), bool),
                              num_classes=len(classes), class_mask=np.ones((1, len(classes)), bool), C=C)
    return FewShotClassifier(self, classes, np.asarray(fit.coef[0]), np.asarray(fit.intercept[0]))

  def save(self, path: str, overwrite: bool = False) -> str:
    """Copies the model (config.json, api_meta.json, results.json, metrics.jsonl, the arrays in data/, newest
    checkpoint) into `path`; returns it. The copy evaluates and plots like the workdir (docs/figures.md).

    `path` must not exist or be empty, unless `overwrite`: then a model saved there before is replaced
    (only a folder holding api_meta.json, so that no other folder is ever deleted). The copy appears
    there at once: it is written to a hidden sibling folder, which is renamed into place (an old
    model is first renamed aside, then deleted). Saving to the model's own workdir does nothing: it is
    already saved there.
    """
    if not (storage.is_local(path) and storage.is_local(self.workdir)):
      return self._save_to_object_store(path, overwrite)
    path = os.path.abspath(path)
    if os.path.exists(path) and os.path.samefile(path, self.workdir):
      return path
    replaced = _check_target(path, overwrite, os.path.exists(path) and bool(os.listdir(path)),
                             os.path.isfile(os.path.join(path, META_FILE)))
    step = str(int(jax.device_get(self.state.step)))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
    try:
      os.chmod(staging, 0o755)  # mkdtemp's folders are private; a saved model is for everyone to read
      for name in ("config.json", META_FILE, "results.json", "metrics.jsonl"):
        if os.path.isfile(os.path.join(self.workdir, name)):
          shutil.copy2(os.path.join(self.workdir, name), staging)
      if os.path.isdir(os.path.join(self.workdir, DATA_DIR)):
        shutil.copytree(os.path.join(self.workdir, DATA_DIR), os.path.join(staging, DATA_DIR))
      shutil.copytree(os.path.join(self.workdir, "checkpoints", step), os.path.join(staging, "checkpoints", step))
      if replaced:  # the old model steps aside, the new one takes its name, then the old one goes
        aside = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old.", dir=parent)
        os.replace(path, aside)  # onto the empty folder mkdtemp made (POSIX rename)
        try:
          os.replace(staging, path)
        except BaseException:
          os.replace(aside, path)  # put the old model back
          raise
        shutil.rmtree(aside, ignore_errors=True)
      else:
        os.replace(staging, path)  # an empty `path` folder is replaced too (POSIX rename)
    except BaseException:
      shutil.rmtree(staging, ignore_errors=True)
      raise
    return path

  def _save_to_object_store(self, path: str, overwrite: bool) -> str:
    """`save` where the model or `path` is on an object store: objects copied one by one (no rename there, so
    an overwritten model is deleted first)."""
    if path.rstrip("/") == self.workdir.rstrip("/"):
      return path
    if _check_target(path, overwrite, storage.isdir(path) and bool(storage.listdir(path)),
                     storage.isfile(storage.join(path, META_FILE))):
      storage.rmtree(path)
    step = str(int(jax.device_get(self.state.step)))
    if storage.isdir(storage.join(self.workdir, DATA_DIR)):
      storage.copytree(storage.join(self.workdir, DATA_DIR), storage.join(path, DATA_DIR))
    storage.copytree(storage.join(self.workdir, "checkpoints", step), storage.join(path, "checkpoints", step))
    for name in ("metrics.jsonl", "results.json", "config.json", META_FILE):  # api_meta.json last: `load` looks first
      if storage.isfile(storage.join(self.workdir, name)):
        storage.write_bytes_atomically(storage.join(path, name), storage.read_bytes(storage.join(self.workdir, name)))
    return path


def _check_target(path: str, overwrite: bool, not_empty: bool, is_model: bool) -> bool:
  """Whether `save` replaces a model at `path`; refuses a non-empty folder unless it is a model and `overwrite`."""
  if not not_empty:
    return False
  if not overwrite:
    raise FileExistsError(f"{path} exists and is not empty; save to a new folder, or save(path, overwrite=True) "
                          "to replace a model saved there.")
  if not is_model:
    raise FileExistsError(f"{path} is not a saved model (no {META_FILE}); save(overwrite=True) only replaces "
                          "models. Choose another folder.")
  return True


# ----------------------------------------------------------------------------- entry points

def load(path: str) -> Model:
  """The model saved in `path` (a `fit` workdir or a `Model.save` folder), at its newest checkpoint."""
  meta_path = storage.join(path, META_FILE)
  if not storage.isfile(meta_path):
    raise FileNotFoundError(f"{meta_path} not found: is {path!r} a folder written by coarse2fine.fit or "
                            "Model.save?")
  meta = _read_json(meta_path)
  if meta.get("format") != META_FORMAT:
    raise ValueError(f"{meta_path} has format {meta.get('format')!r}; this version reads {META_FORMAT}.")
  config = ml_collections.ConfigDict(_read_json(storage.join(path, "config.json")))
  run = runs.setup_run(config, _stub_data(meta), for_training=False)
  results_path = storage.join(path, "results.json")
  report = _read_json(results_path).get("report") if storage.isfile(results_path) else None
  return Model(storage.absolute(path), config, run, runs.restore_newest(path, config, run.state),
               anndata=meta.get("anndata"), report=report)


def fit(x, coarse, method: str = DEFAULT_METHOD, workdir: Optional[str] = None, *, fine=None,
        coarse_names: Optional[Sequence[str]] = None, num_fine: Optional[Union[int, str]] = None,
        config_overrides: Optional[Mapping[str, Any]] = None, seed: int = 0, test_fraction: float = 0.0,
        init_from: Optional[str] = None,
        use_rep: str = "X", report: bool = True) -> Model:
  """Trains `method` on coarsely labelled arrays (or an AnnData) and returns the trained `Model`.

  Args:
    x: [N, H, W(, C)] uint8 or [0, 1] float images, [N, F] vectors (a numpy array or a scipy
      sparse matrix, kept sparse), or an anndata.AnnData (its `use_rep` matrix).
    coarse: [N] coarse labels: class ids in 0 .. C-1, strings, or a pandas categorical; for an
      AnnData, the name of its obs column of coarse labels.
    method: a name in coarse2fine.methods.METHODS (default `coarse2fine.methods.DEFAULT_METHOD`).
    workdir: where the checkpoint, config.json, metrics and results.json go (a new temporary
      folder if None). A workdir of the same fit resumes; one of another config or other data is refused.
    fine: optional [N] fine labels (integer ids with -1 where unknown, or strings / a categorical
      with None or NaN where unknown; for an AnnData an obs column name), for the taxonomy, the
      metrics and the report.
    coarse_names: optional names of the C coarse classes.
    num_fine: fine classes to discover over all coarse classes: sets the config field the method
      declares as `fine_count_field`. "estimate" estimates them per coarse class before training
      (docs/methods/falcon.md#estimated-k; the record is in results.json); the default for the methods
      that declare one when no fine labels are given (with fine labels: their number).
    config_overrides: {"a.b": value} over the defaults (see `default_config`), e.g.
      {"train.num_epochs": 5}; an unknown key is an error.
    seed: initialisation, data order and augmentation, and the held-out split.
    test_fraction: share of the examples held out (stratified by coarse class) for the final
      evaluation; 0 evaluates on the training data.
    init_from: pretrained encoder weights (`model.init_from`, docs/pretrained.md), e.g.
      "torchvision:/path/resnet18.pth" with config_overrides {"model.encoder": "resnet18",
      "model.encoder_args.stem": "imagenet"}; the same as config_overrides {"model.init_from": ...}.
    use_rep: for an AnnData, the inputs: "X", "raw.X", a layer or an obsm entry (e.g. "X_pca").
    report: with fine labels, score the discovered classes against k-means inside each coarse
      class on the inputs and on the model's features (`evaluation.baselines`), print the table
      and keep it in `model.report` and results.json.
  """
  overrides = dict(config_overrides or {})
  if init_from is not None:
    if overrides.get("model.init_from", init_from) != init_from:
      raise ValueError("init_from and config_overrides['model.init_from'] disagree; give one of them.")
    overrides["model.init_from"] = init_from
  source = None
  if anndata_io.is_anndata(x):
    x, coarse, fine, source = _from_anndata(x, coarse, fine, use_rep)
  data = build_data(x, coarse, fine, coarse_names, test_fraction, seed)
  config = make_config(method, data, num_fine, overrides, seed)
  config.data.test_fraction, config.data.split_seed = test_fraction, seed  # recorded with the run
  workdir = workdir or tempfile.mkdtemp(prefix="coarse2fine_")
  storage.makedirs(workdir)
  meta = _meta(data, source)
  meta_path = storage.join(workdir, META_FILE)
  if storage.isfile(meta_path) and _read_json(meta_path).get("data_sha1") != meta["data_sha1"]:
    raise ValueError(f"{workdir} holds a model fitted on other arrays; use a fresh workdir.")
  store_data(data, workdir, config)  # evaluate and plot read the run's arrays from its workdir
  finished = storage.isfile(meta_path) and runs.finished_run(config, workdir)  # same arrays: checked above
  if finished:  # the same fit again (a notebook cell re-run): the trained model, not a second evaluation
    if jax.process_index() == 0:
      print(f"{workdir}: fitted already on these arrays with this config (step {finished['steps']:,}); loading it. "
            "A new workdir trains again.", flush=True)
    model = load(workdir)
    if model.report is not None or not report:
      return model
  else:
    if jax.process_index() == 0:
      write_json_atomically(meta_path, meta)
    loop.train_and_evaluate(config, workdir, data=data)
    model = load(workdir)
  if report and baselines.has_known_fine(data.test):
    model.report = baselines.discovery_report(model, data)  # every process: embed and discover are collective
    if jax.process_index() == 0:
      print(baselines.format_report(model.report))
      results_path = storage.join(workdir, "results.json")
      write_json_atomically(results_path, {**_read_json(results_path), "report": model.report})
  return model


def _from_anndata(adata, coarse, fine, use_rep: str):
  """(x, coarse, fine, source) of `fit` on an AnnData: labels from obs columns named by coarse and fine."""
  if not isinstance(coarse, str) or not (fine is None or isinstance(fine, str)):
    raise ValueError("fit(adata, coarse, fine=...) takes the names of obs columns, e.g. fit(adata, 'cell_type', "
                     f"fine='subtype'); obs has {list(adata.obs.columns)}.")
  x = anndata_io.representation(adata, use_rep)
  coarse_labels = anndata_io.obs_column(adata, coarse, "coarse")
  fine_labels = None if fine is None else anndata_io.obs_column(adata, fine, "fine")
  names = anndata_io.feature_names(adata, use_rep)
  source = {"use_rep": use_rep, "coarse_key": coarse, "fine_key": fine or "", "num_features": int(x.shape[1])}
  if names is not None:
    source["features_sha1"] = anndata_io.names_sha1(names)
  return x, coarse_labels, fine_labels, source
