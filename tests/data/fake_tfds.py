"""A stand-in for `tfds.data_source` in tests: tfds's own mock_data needs TensorFlow to encode images."""

import types


class FakeSource:
  """A tfds data source over a list of record dicts (random access, as ArrayRecord sources give).

  `features`: the builder's `tfds.features.FeaturesDict`, as `dataset_info.features` (None: no dataset_info).
  """

  def __init__(self, records, features=None):
    self.records = records
    if features is not None:
      self.dataset_info = types.SimpleNamespace(features=features)

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    return self.records[i]

  def __getitems__(self, keys):
    return [self.records[i] for i in keys]
