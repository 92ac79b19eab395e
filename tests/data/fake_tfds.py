"""A stand-in for `tfds.data_source` in tests: tfds's own mock_data needs TensorFlow to encode images."""


class FakeSource:
  """A tfds data source over a list of record dicts (random access, as ArrayRecord sources give)."""

  def __init__(self, records):
    self.records = records

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    return self.records[i]

  def __getitems__(self, keys):
    return [self.records[i] for i in keys]
