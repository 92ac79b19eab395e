"""Records datasets: flat layout, windowing and patient split against brute force, files, generated data."""

from __future__ import annotations

import numpy as np
import pytest

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.data.datasets import records
from coarse2fine.data.taxonomy import Taxonomy
from coarse2fine.models.records import split_records


def _data_config(**fields):
  config = base_config().data
  config.name = "records"
  for key, value in fields.items():
    setattr(config, key, value)
  return config


def _taxonomy_file(tmp_path) -> str:
  path = str(tmp_path / "events.json")
  Taxonomy.from_groups("events", {"none": ["quiet"], "event": ["drop", "spike"]}).save(path)
  return path


def _visits(seed=0, lengths=(9, 4, 7, 6, 8, 2, 10, 7)):
  """Per-visit arrays of len(lengths) patients with interleaved (non-contiguous) rows."""
  rng = np.random.default_rng(seed)
  patient = np.concatenate([np.full(n, 100 + p) for p, n in enumerate(lengths)])
  patient = patient[rng.permutation(len(patient))]  # within a patient, file order stays time order
  v = len(patient)
  fine = rng.integers(0, 3, v)
  return {"visits": rng.normal(size=(v, 3)), "static": rng.normal(size=(v, 2)), "patient": patient,
          "fine": fine, "coarse": np.minimum(fine, 1)}


def test_flat_layout_against_elementwise_construction():
  rng = np.random.default_rng(0)
  static, series = rng.normal(size=(4, 3)), rng.normal(size=(4, 5, 2))
  flat = records.flatten_records(static, series)
  expected = np.zeros((4, 3 + 5 * 2))
  for n in range(4):
    expected[n, :3] = static[n]
    for t in range(5):
      for f in range(2):
        expected[n, 3 + t * 2 + f] = series[n, t, f]
  assert flat.dtype == np.float32
  np.testing.assert_allclose(flat, expected, rtol=1e-6)
  back_static, back_series = split_records(flat, 3, 2)  # the encoder's split is the inverse
  np.testing.assert_array_equal(back_static, flat[:, :3])
  np.testing.assert_allclose(back_series, series, rtol=1e-6)


@pytest.mark.parametrize("window,horizon", [(5, 1), (3, 0), (1, 2)])
def test_windows_against_brute_force(window, horizon):
  arrays = _visits()
  got = records.make_windows(arrays["visits"], arrays["static"], arrays["patient"],
                             {"coarse": arrays["coarse"], "fine": arrays["fine"]}, window, horizon)
  expected = {key: [] for key in ("series", "static", "patient", "coarse", "fine")}
  for p in sorted(set(arrays["patient"].tolist())):
    rows = [i for i in range(len(arrays["patient"])) if arrays["patient"][i] == p]
    for t in range(len(rows)):
      if t + window - 1 + horizon >= len(rows):
        break
      expected["series"].append(np.stack([arrays["visits"][rows[t + k]] for k in range(window)]))
      expected["static"].append(arrays["static"][rows[t + window - 1]])
      expected["patient"].append(p)
      expected["coarse"].append(arrays["coarse"][rows[t + window - 1 + horizon]])
      expected["fine"].append(arrays["fine"][rows[t + window - 1 + horizon]])
  assert set(got) == set(expected)
  for key, value in expected.items():
    np.testing.assert_array_equal(got[key], np.array(value), err_msg=key)
  lengths = np.array([9, 4, 7, 6, 8, 2, 10, 7])
  assert len(got["series"]) == np.maximum(lengths - window - horizon + 1, 0).sum()


def test_windows_need_enough_visits():
  arrays = _visits(lengths=(3, 4))
  with pytest.raises(ValueError, match="No patient has the 6 visits a window of 5 plus a horizon of 1"):
    records.make_windows(arrays["visits"], arrays["static"], arrays["patient"], {}, 5, 1)


def test_patient_split_is_disjoint_balanced_and_seeded():
  patient = np.repeat(np.arange(40), np.arange(1, 41))  # patients of very different sizes
  test = records.patient_split(patient, 0.5, seed=7)
  assert not set(patient[test]) & set(patient[~test])
  assert len(set(patient[test])) == 20  # half of the patients, not half of the examples
  np.testing.assert_array_equal(records.patient_split(patient, 0.5, seed=7), test)
  assert not np.array_equal(records.patient_split(patient, 0.5, seed=8), test)
  with pytest.raises(ValueError, match="both need at least one"):
    records.patient_split(np.array([1, 1, 1]), 0.5, seed=0)


def test_windows_form_file_with_patients(tmp_path):
  rng = np.random.default_rng(1)
  n, t, f, s = 60, 4, 3, 2
  patient = np.array([f"p{i % 12:02d}" for i in range(n)])  # string ids work
  fine = rng.integers(0, 3, n)
  static, series = rng.normal(size=(n, s)), 5 + rng.normal(size=(n, t, f)) * np.arange(1, f + 1)
  np.savez(tmp_path / "w.npz", static=static, series=series, coarse=np.minimum(fine, 1), fine=fine,
           patient=patient)
  config = _data_config(path=str(tmp_path / "w.npz"), taxonomy=_taxonomy_file(tmp_path), split_seed=3)
  data, patients = records.load_with_patients(config)
  assert data.train.inputs.shape[1:] == (s + t * f,) and data.train.inputs.dtype == np.float32
  assert len(data.train) + len(data.test) == n
  assert not set(patients["train"]) & set(patients["test"]) and len(set(patients["test"])) == 6
  test = records.patient_split(patient, 0.5, seed=3)  # the same split, so the rows can be found
  np.testing.assert_allclose(data.test.inputs, records.flatten_records(static[test], series[test]), rtol=1e-6)
  np.testing.assert_array_equal(data.test.fine, fine[test])
  # Per-feature statistics from train: static columns alone, each series feature over all steps.
  np.testing.assert_allclose(data.mean[:s], static[~test].mean(0), rtol=1e-5)
  for step in range(t):
    np.testing.assert_allclose(data.mean[s + step * f:s + (step + 1) * f], series[~test].mean((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(data.std[s + step * f:s + (step + 1) * f], series[~test].std((0, 1)), rtol=1e-4)
  # Through the registry too, identically.
  np.testing.assert_array_equal(load_dataset(config).test.inputs, data.test.inputs)


def test_windows_form_without_patients_holds_out_a_stratified_share(tmp_path):
  rng = np.random.default_rng(2)
  coarse = np.repeat([0, 1], [30, 10])
  np.savez(tmp_path / "w.npz", static=rng.normal(size=(40, 2)), series=rng.normal(size=(40, 3, 2)), coarse=coarse)
  config = _data_config(path=str(tmp_path / "w.npz"), taxonomy=_taxonomy_file(tmp_path))
  config.records.test_fraction = 0.2
  data, patients = records.load_with_patients(config)
  assert patients is None and (data.train.fine == -1).all()
  assert len(data.test) == 8 and (data.test.coarse == 1).sum() == 2


def test_visits_form_file_is_windowed_then_split_by_patient(tmp_path):
  arrays = _visits()
  np.savez(tmp_path / "v.npz", **arrays)
  config = _data_config(path=str(tmp_path / "v.npz"), taxonomy=_taxonomy_file(tmp_path))
  config.records.window, config.records.horizon = 3, 1
  data, patients = records.load_with_patients(config)
  windows = records.make_windows(arrays["visits"], arrays["static"], arrays["patient"],
                                 {"fine": arrays["fine"]}, 3, 1)
  test = records.patient_split(windows["patient"], 0.5, config.split_seed)
  np.testing.assert_allclose(data.test.inputs, records.flatten_records(windows["static"][test],
                                                                       windows["series"][test]), rtol=1e-6)
  np.testing.assert_array_equal(data.train.fine, windows["fine"][~test])
  assert not set(patients["train"]) & set(patients["test"])


def test_generated_records_fine_labels_are_recoverable():
  from sklearn.linear_model import LogisticRegression

  config = _data_config(variant="synthetic")
  cfg = config.records.synthetic
  cfg.static_dim, cfg.series_features, cfg.num_coarse, cfg.fine_per_coarse = 6, 4, 2, 2
  data, patients = records.load_with_patients(config)
  assert data.num_fine == 4 and data.train.inputs.shape == (512, 6 + 5 * 4)
  assert not set(patients["train"]) & set(patients["test"])
  train_x, test_x = (data.train.inputs - data.mean) / data.std, (data.test.inputs - data.mean) / data.std
  fit = lambda cols, y: LogisticRegression(max_iter=1000).fit(train_x[:, cols], getattr(data.train, y)).score(
      test_x[:, cols], getattr(data.test, y))
  assert fit(slice(None), "fine") > 0.8  # 4 fine classes, chance 25%
  assert fit(slice(0, 6), "coarse") > 0.75  # the coarse class shows in the static features (chance 50%)
  assert fit(slice(0, 6), "fine") < 0.6  # ... but the sub-type does not (at best coarse right, then a coin)
  assert fit(slice(6, None), "fine") > 0.8  # the sub-type shows in the series
  again = records.load(config)
  np.testing.assert_array_equal(again.train.inputs, data.train.inputs)  # fixed by the seeds


@pytest.mark.parametrize("arrays,message", [
    ({"static": np.zeros((4, 2)), "coarse": np.zeros(4)}, "not neither"),
    ({"static": np.zeros((4, 2)), "series": np.zeros((4, 3, 2)), "visits": np.zeros((4, 2)),
      "coarse": np.zeros(4)}, "not both"),
    ({"series": np.zeros((4, 3, 2)), "coarse": np.zeros(4)}, r"lacks the arrays \['static'\]"),
    ({"static": np.zeros((4, 2)), "visits": np.zeros((4, 2)), "coarse": np.zeros(4)}, r"\['patient'\]"),
    ({"static": np.zeros((4, 2)), "series": np.zeros((4, 6)), "coarse": np.zeros(4)},
     r"`series` must be \[N, T, F\] .* got shape \(4, 6\)"),
    ({"static": np.zeros((3, 2)), "series": np.zeros((4, 3, 2)), "coarse": np.zeros(4)},
     r"`static` must be \[N, S\] with the same first dimension as `series` \(4\)"),
    ({"static": np.zeros((4, 2)), "series": np.zeros((4, 3, 2)), "coarse": np.zeros(5)}, r"`coarse` must be \[N\]"),
    ({"static": np.full((4, 2), np.nan), "series": np.zeros((4, 3, 2)), "coarse": np.zeros(4)},
     "`static` has 8 NaN or infinite values; impute"),
])
def test_misshaped_arrays_are_refused(tmp_path, arrays, message):
  np.savez(tmp_path / "bad.npz", **arrays)
  with pytest.raises(ValueError, match=message):
    load_dataset(_data_config(path=str(tmp_path / "bad.npz"), taxonomy=_taxonomy_file(tmp_path)))


def test_config_errors(tmp_path):
  with pytest.raises(ValueError, match="needs data.path.*data.variant='synthetic'"):
    load_dataset(_data_config())
  with pytest.raises(ValueError, match="got data.variant='dialysis'"):
    load_dataset(_data_config(variant="dialysis"))
  with pytest.raises(FileNotFoundError):
    load_dataset(_data_config(path=str(tmp_path / "missing.npz"), taxonomy=_taxonomy_file(tmp_path)))
