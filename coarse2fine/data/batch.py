"""The one batch contract between the input pipeline, the device augmentation and every method's loss."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class Batch(NamedTuple):
  """A batch of training examples: this process's part from the pipeline, the global batch in the step.

  As the input pipeline ships it (host numpy, then sharded over the mesh's `data` axis):
    views: [b, V, H, W, C] uint8, V views of each image, cut, resized and flipped on the host;
      or [b, V, F] float32 for vectors.
    neighbours: [b, m, H, W, C] uint8 (or [b, m, F] float32): m mined neighbours of each
      example (FALCON, SCAN), or None.
    coarse: [b] int32 coarse label in the example's taxonomy; fine: [b] int32, -1 if unknown.
    index: [b] int32 position of the example in the training split (per-example method state).
    dataset: [b] int32 taxonomy of the example's coarse label (0 with one taxonomy).
    example: [b, 2] int32 (global batch number, position in the global batch): keys the
      example's device augmentation, so every device count and process count draws alike.
  As a method's loss sees it (`device_augment.DeviceAugment`, inside the jitted step): `views`
  [b, V, H, W, C] and `neighbours` [b, m, H, W, C] are float32, augmented and normalised; the
  rest is unchanged. A method reads view v as `views[:, v]`, whatever V is.
  """

  views: np.ndarray
  coarse: np.ndarray
  fine: np.ndarray
  index: np.ndarray
  dataset: np.ndarray
  example: np.ndarray
  neighbours: Optional[np.ndarray] = None

  @property
  def size(self) -> int:
    return len(self.coarse)


def example_ids(batch_number: int, positions: np.ndarray) -> np.ndarray:
  """[b, 2] int32 (global batch number, position) rows of `Batch.example`."""
  positions = np.asarray(positions)
  return np.stack([np.full(len(positions), batch_number), positions], axis=1).astype(np.int32)
