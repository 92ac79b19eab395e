"""Dataset loaders: each turns its files (or tfds, or generated data) into a `HierarchicalData`.

`registry.DATASETS` is the table a config's `data.name` picks from (docs/datasets.md).
"""
