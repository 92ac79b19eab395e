"""Lazily decoded images squashed to a fixed square, for datasets whose images vary in size (Cars196, SOP).

MaskCon evaluates these at `Resize((224, 224))`: the whole image is resized to a square, whatever its aspect
ratio, with no crop (its training views are random resized crops of the full image). `ResizedImages` stores that
view: [N, size, size, 3] uint8, decoded when indexed like `breeds.LazyImages` (which keeps a centre crop
instead), so random crops are drawn from the squashed image. Readers are those of `breeds` (`FolderReader`) or
`TfdsReader` below.
"""

from __future__ import annotations

import io
from typing import Optional

import ml_collections
import numpy as np

from coarse2fine.data import breeds
from coarse2fine.data.splits import make_split

DEFAULT_IMAGE_SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # torchvision's ImageNet statistics (MaskCon's)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def image_size(data_config: ml_collections.ConfigDict) -> int:
  """`data.image_size` (224 when the config has no such field), checked to be a positive integer."""
  size = data_config.get("image_size", DEFAULT_IMAGE_SIZE)
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
    raise ValueError(f"data.image_size must be a positive integer (the side images are resized to), got {size!r}.")
  return int(size)


def decode_resized(encoded: bytes, size: int) -> np.ndarray:
  """Encoded image -> [size, size, 3] uint8, the whole image resized (bilinear, antialiased) to a square."""
  from PIL import Image  # only needed once images are read

  with Image.open(io.BytesIO(encoded)) as image:
    image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale while both sides stay >= size
    image = image.convert("RGB")
  if image.size != (size, size):
    image = image.resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(image, np.uint8)


class ResizedImages(breeds.LazyImages):
  """[N, size, size, 3] uint8 images, decoded and squashed to size x size only when indexed.

  Indexing, `subset` and pickling behave as for `breeds.LazyImages`.
  """

  def __init__(self, reader, index: Optional[np.ndarray] = None, num: int = 0, size: int = DEFAULT_IMAGE_SIZE):
    super().__init__(reader, index, num, size=size, resize=size)

  def subset(self, indices) -> "ResizedImages":
    return ResizedImages(self.reader, self._positions(indices), size=self.size)

  def _decode(self, positions: np.ndarray) -> np.ndarray:
    out = np.empty((len(positions), self.size, self.size, 3), np.uint8)
    for j, (i, encoded) in enumerate(zip(positions, self.reader.read(positions))):
      try:
        out[j] = decode_resized(encoded, self.size)
      except Exception as error:  # PIL raises several types for bad files
        raise ValueError(f"Could not decode {self.reader.describe(i)}: {type(error).__name__}: {error}") from error
    return out


class TfdsReader(breeds.TfdsReader):
  """Encoded images of any tfds split (`breeds.TfdsReader` with a dataset-specific setup hint).

  `data_dir` is the tfds data folder (data.dir; None = $TFDS_DATA_DIR or ~/tensorflow_datasets).
  """

  def __init__(self, name: str, split: str, data_dir: Optional[str] = None, hint: str = ""):
    super().__init__(name, split, data_dir)
    self.hint = hint

  def source(self):
    if self._source is None:
      import tensorflow_datasets as tfds  # heavy import, only on this path

      try:
        self._source = tfds.data_source(self.name, split=self.split, data_dir=self.data_dir, download=True,
                                        decoders={"image": tfds.decode.SkipDecoding()})
      except Exception as error:  # tfds raises many types: network, missing files, bad format, ...
        raise RuntimeError(
            f"Could not read tfds dataset {self.name!r} (split {self.split!r}, data_dir={self.data_dir!r}): "
            f"{type(error).__name__}: {error}\nPrepare it with `tfds build {self.name} --file_format=array_record` "
            f"(on a machine with network access if need be, then copy the tensorflow_datasets folder here) and "
            f"set data.dir (or $TFDS_DATA_DIR) to that folder. {self.hint}".rstrip()) from error
    return self._source


def load_tfds_classes(builder: str, dataset: str, data_config: ml_collections.ConfigDict, taxonomy, index_map,
                      hint: str = ""):
  """The `train` and `test` splits of a tfds image-classification builder with lazily resized images.

  `label` is the 0-based class of `index_map` (tfds label -> fine id, -1 = left out by the taxonomy);
  labels outside it fail by name, and classes the taxonomy leaves out are dropped. Returns
  `{"train": Split, "test": Split}` named `dataset/split`.
  """
  size = image_size(data_config)
  splits = {}
  for split in ("train", "test"):
    reader = TfdsReader(builder, split, data_config.dir or None, hint)
    labels = reader.labels()
    where = f"{dataset}/{split}"
    bad = (labels < 0) | (labels >= len(index_map))
    if bad.any():
      raise ValueError(f"{where}: {int(bad.sum())} labels are outside [0, {len(index_map)}) (e.g. "
                       f"{np.unique(labels[bad])[:5].tolist()}); is this the {len(index_map)}-class tfds {builder}?")
    fine = index_map[labels]
    keep = np.flatnonzero(fine >= 0)
    splits[split] = make_split(ResizedImages(reader, keep, size=size), fine=fine[keep], taxonomy=taxonomy,
                               where=where)
  return splits
