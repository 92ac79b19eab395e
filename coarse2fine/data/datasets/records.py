"""Records: static features plus a time series per example (the SCGM paper's dialysis case).

`data.name = "records"` reads `data.path`, an `.npz` in one of two forms, with a taxonomy
file `data.taxonomy` (as for `arrays`: ids of `coarse`/`fine` follow its order);
`data.variant = "synthetic"` generates records instead (no files; `data.records.synthetic`).

Windows form, examples already cut:
  static   [N, S] float     static features (demographics, infrequent blood tests, ...)
  series   [N, T, F] float  T time steps of F temporal features
  coarse   [N] int          coarse labels (e.g. 1 = an event occurs)
  fine     [N] int          optional; fine labels, -1 where unknown
  patient  [N]              optional; patient ids (ints or strings)

Visits form, one row per visit (a dialysis session), cut here into windows:
  visits   [V, F] float     temporal features of each visit; each patient's rows in time order
  static   [V, S] float     static features as known at each visit (repeat a patient's row
                            when they never change)
  patient  [V]              patient ids (required)
  coarse   [V] int, fine [V] int (optional): the labels of each visit
Each patient's visits are cut into windows of w = `data.records.window` consecutive visits,
stride 1 (paper: w = 5). The window of visits t..t+w-1 takes the label of visit
t+w-1+h, h = `data.records.horizon` (h = 1, the paper's task, predicts the next session;
h = 0 labels a window by its own last visit), and the static features of its last visit
t+w-1, never of a later one, which could carry the future. A patient with fewer than
w + h visits gives no window.

Test split: with patient ids, `data.records.test_fraction` of the patients (paper: 50%),
drawn with `data.split_seed`, so no patient has examples on both sides; without ids, a
stratified share of the examples, as `arrays` does. (`data.val_fraction` is carved later
by `load_dataset` per example, not per patient.)

Inputs are stored flat, [N, S + T*F] float32 (`flatten_records`: static first, then the
series time-major), so the vector pipeline (`data.views = ("none",)`) and evaluation work
unchanged; the `records` encoder splits them back with the same S and F. Normalisation is
per feature from train: each static column on its own, each temporal feature pooled over
all time steps (it has the same units at every step) and tiled over the T positions, so
the shape of a series within a window survives normalisation.
"""

from __future__ import annotations

import io
from typing import Optional

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data.splits import HierarchicalData, carve_validation, make_split
from coarse2fine.data.taxonomy import Taxonomy, get_taxonomy

VARIANTS = ("", "synthetic")


def flatten_records(static: np.ndarray, series: np.ndarray) -> np.ndarray:
  """static [N, S], series [N, T, F] -> [N, S + T*F] float32 (series time-major)."""
  static, series = np.asarray(static), np.asarray(series)
  return np.concatenate([static.reshape(len(static), -1), series.reshape(len(series), -1)], axis=1).astype(np.float32)


def feature_stats(static: np.ndarray, series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-feature mean and std in the flat layout, [S + T*F] float32 each (see module doc)."""
  steps = series.shape[1]
  mean = np.concatenate([static.mean(0), np.tile(series.mean((0, 1)), steps)])
  std = np.concatenate([static.std(0), np.tile(series.std((0, 1)), steps)]) + 1e-6
  return mean.astype(np.float32), std.astype(np.float32)


def make_windows(visits, static, patient, labels: dict, window: int, horizon: int = 1) -> dict:
  """Cuts per-visit records into windows of `window` consecutive visits, stride 1.

  visits [V, F], static [V, S], patient [V], labels {name: [V]} -> {"series": [N, w, F],
  "static": [N, S], "patient": [N], name: [N]} with the rows of the patients in sorted
  id order and, within a patient, by start visit. See the module doc for which visit
  gives the label and the static features.
  """
  if window < 1 or horizon < 0:
    raise ValueError(f"data.records.window must be >= 1 and horizon >= 0, got {window} and {horizon}.")
  patient = np.asarray(patient)
  rows = {"series": [], "static": [], "patient": [], **{name: [] for name in labels}}
  for p in np.unique(patient):
    mine = np.flatnonzero(patient == p)  # this patient's visits, in file (= time) order
    count = len(mine) - window - horizon + 1
    if count <= 0:
      continue
    starts = np.arange(count)
    last = mine[starts + window - 1]
    rows["series"].append(visits[mine[starts[:, None] + np.arange(window)]])
    rows["static"].append(static[last])
    rows["patient"].append(patient[last])
    for name, values in labels.items():
      rows[name].append(np.asarray(values)[mine[starts + window - 1 + horizon]])
  if not rows["series"]:
    raise ValueError(
        f"No patient has the {window + horizon} visits a window of {window} plus a horizon of {horizon} "
        f"needs; lower data.records.window or data.records.horizon.")
  return {name: np.concatenate(parts) for name, parts in rows.items()}


def patient_split(patient, test_fraction: float, seed: int) -> np.ndarray:
  """[N] bool mask of the examples of a seeded `test_fraction` of the patients."""
  ids = np.unique(np.asarray(patient))
  num_test = int(round(test_fraction * len(ids)))
  if not 0 < num_test < len(ids):
    raise ValueError(
        f"data.records.test_fraction={test_fraction} of {len(ids)} patients leaves "
        f"{num_test} test and {len(ids) - num_test} train patients; both need at least one.")
  test_ids = np.random.default_rng(seed).permutation(ids)[:num_test]
  return np.isin(patient, test_ids)


def _check(contents: dict, where: str) -> dict:
  """Validates the arrays of either form; returns windows-form arrays (not yet windowed)."""
  if ("series" in contents) == ("visits" in contents):
    raise ValueError(
        f"{where}: give either `series` [N, T, F] (windows form) or `visits` [V, F] (visits form, cut "
        f"into windows here), not {'both' if 'series' in contents else 'neither'}; it holds {sorted(contents)}.")
  temporal = "series" if "series" in contents else "visits"
  missing = [key for key in ("static", "coarse") if key not in contents]
  if temporal == "visits" and "patient" not in contents:
    missing.append("patient")
  if missing:
    raise ValueError(f"{where} lacks the arrays {missing}; it holds {sorted(contents)}.")
  expected_ndim = {"static": 2, "series": 3, "visits": 2, "coarse": 1, "fine": 1, "patient": 1}
  shapes = {"static": "[N, S]", "series": "[N, T, F]", "visits": "[V, F]", "coarse": "[N]", "fine": "[N]",
            "patient": "[N]"}
  n = len(contents[temporal])
  for key, ndim in expected_ndim.items():
    if key not in contents:
      continue
    value = np.asarray(contents[key])
    if value.ndim != ndim or len(value) != n:
      raise ValueError(
          f"{where}: `{key}` must be {shapes[key]} with the same first dimension as `{temporal}` ({n}), "
          f"got shape {value.shape}.")
  for key in ("static", temporal):
    value = np.asarray(contents[key], np.float64)
    if not np.isfinite(value).all():
      raise ValueError(
          f"{where}: `{key}` has {int((~np.isfinite(value)).sum())} NaN or infinite values; impute or drop "
          f"them before saving (the encoder has no notion of missing values).")
  return {key: np.asarray(contents[key]) for key in expected_ndim if key in contents}


def build(contents: dict, taxonomy: Taxonomy, records_config: ml_collections.ConfigDict, split_seed: int,
          name: str, where: str) -> tuple[HierarchicalData, Optional[dict]]:
  """Arrays of either form -> (HierarchicalData, {"train", "test": patient ids per example} or None)."""
  arrays = _check(contents, where)
  if "visits" in arrays:
    labels = {key: arrays[key] for key in ("coarse", "fine") if key in arrays}
    arrays = make_windows(arrays["visits"], arrays["static"], arrays["patient"], labels,
                          records_config.window, records_config.horizon)
  static = arrays["static"].astype(np.float32)
  series = arrays["series"].astype(np.float32)
  everything = make_split(flatten_records(static, series), fine=arrays.get("fine"), coarse=arrays["coarse"],
                          taxonomy=taxonomy, where=where)
  patients = None
  if "patient" in arrays:
    test_mask = patient_split(arrays["patient"], records_config.test_fraction, split_seed)
    train, test = everything.take(np.flatnonzero(~test_mask)), everything.take(np.flatnonzero(test_mask))
    patients = {"train": arrays["patient"][~test_mask], "test": arrays["patient"][test_mask]}
    train_rows = ~test_mask
  else:
    # carve_validation keeps the order of the rest, so the train rows are recovered by position.
    positions = make_split(np.arange(len(everything))[:, None], coarse=everything.coarse, taxonomy=taxonomy,
                           where=where)
    rest, held = carve_validation(positions, records_config.test_fraction, split_seed)
    if held is None:
      raise ValueError(f"{where} has no patient ids; set data.records.test_fraction > 0 to hold out a test split.")
    train, test = everything.take(rest.inputs[:, 0]), everything.take(held.inputs[:, 0])
    train_rows = np.zeros(len(everything), bool)
    train_rows[rest.inputs[:, 0]] = True
  mean, std = feature_stats(static[train_rows], series[train_rows])
  return HierarchicalData(name, taxonomy, train, test, mean=mean, std=std), patients


def make_taxonomy(num_coarse: int, fine_per_coarse: int) -> Taxonomy:
  groups = {f"class{c}": [f"class{c}/subtype{j}" for j in range(fine_per_coarse)] for c in range(num_coarse)}
  return Taxonomy.from_groups(f"records_{num_coarse}x{fine_per_coarse}", groups)


def generate_arrays(cfg: ml_collections.ConfigDict, steps: int) -> tuple[dict, Taxonomy]:
  """Generated windows-form records with known fine labels, fixed by `cfg.seed`.

  Each example draws a fine class k uniformly (its coarse class c is k's parent) and
  belongs to one of `num_patients` patients (`windows_per_patient` each):
    static = coarse_centre[c] + patient_offset + noise             [S]
    series[t] = patient_level + ramp[t] * direction[k] + noise     [T, F]
  with ramp = linspace(-1, 1, T). The coarse class shows in the static features; the
  sub-type only in how the series moves over the window (the ramp averages to zero over
  time, so a series' level says nothing about it). Centres and directions are N(0, 1),
  patient effects N(0, 0.5^2), noise N(0, cfg.noise^2).
  """
  if cfg.num_coarse < 1 or cfg.fine_per_coarse < 1 or cfg.static_dim < 1 or cfg.series_features < 1:
    raise ValueError("data.records.synthetic: num_coarse, fine_per_coarse, static_dim and series_features "
                     "must all be at least 1.")
  taxonomy = make_taxonomy(cfg.num_coarse, cfg.fine_per_coarse)
  rng = np.random.default_rng(cfg.seed)
  s, f, n = cfg.static_dim, cfg.series_features, cfg.num_patients * cfg.windows_per_patient
  coarse_centres = rng.normal(0, 1, (taxonomy.num_coarse, s))
  directions = rng.normal(0, 1, (taxonomy.num_fine, f))
  patient_offset = rng.normal(0, 0.5, (cfg.num_patients, s))
  patient_level = rng.normal(0, 0.5, (cfg.num_patients, f))
  patient = np.repeat(np.arange(cfg.num_patients), cfg.windows_per_patient)
  fine = rng.integers(0, taxonomy.num_fine, n)
  coarse = taxonomy.fine_to_coarse[fine]
  ramp = np.linspace(-1, 1, steps)
  static = coarse_centres[coarse] + patient_offset[patient] + rng.normal(0, cfg.noise, (n, s))
  series = (patient_level[patient][:, None, :] + ramp[None, :, None] * directions[fine][:, None, :]
            + rng.normal(0, cfg.noise, (n, steps, f)))
  arrays = {"static": static.astype(np.float32), "series": series.astype(np.float32), "coarse": coarse,
            "fine": fine, "patient": patient}
  return arrays, taxonomy


def load_with_patients(data_config: ml_collections.ConfigDict) -> tuple[HierarchicalData, Optional[dict]]:
  """`load`, plus the patient id of every train and test example (None without ids)."""
  records_config = data_config.records
  if data_config.variant not in VARIANTS:
    raise ValueError(f"data.name='records' has the variants {VARIANTS} ('' reads data.path), "
                     f"got data.variant={data_config.variant!r}.")
  if data_config.variant == "synthetic":
    arrays, taxonomy = generate_arrays(records_config.synthetic, records_config.window)
    return build(arrays, taxonomy, records_config, data_config.split_seed, "records", "records/synthetic")
  path = data_config.path
  if not path:
    raise ValueError("data.name='records' needs data.path: an .npz of static, series (or visits), coarse and "
                     "optionally fine and patient; or data.variant='synthetic' for generated records.")
  if not storage.isfile(path):
    raise FileNotFoundError(f"data.path={path!r} does not exist.")
  if not data_config.taxonomy:
    raise ValueError("data.name='records' needs data.taxonomy: a .json or .csv file (fine,coarse per line).")
  taxonomy = get_taxonomy(data_config.taxonomy)
  with np.load(path if storage.is_local(path) else io.BytesIO(storage.read_bytes(path))) as npz:
    contents = {key: npz[key] for key in npz.files}
  return build(contents, taxonomy, records_config, data_config.split_seed, "records", path)


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  return load_with_patients(data_config)[0]
