"""A run stopped on 2 devices resumes on 1 (its checkpoint restores onto the new mesh, the data position is its
step) and ends where a 1-device run does, up to the float rounding of a 2-device reduction."""

import json
import os

import pytest

from tests import multi_device

TRAIN = r"""
import json, sys
import jax
from coarse2fine.engine import loop
from tests.conftest import make_tiny_config
config = make_tiny_config()
config.data.views = ("crop_flip",)  # augmentation draws must resume too
config.eval.protocols = ("classification", "kmeans")
config.train.stop_after_steps = int(sys.argv[2])
results = loop.train_and_evaluate(config, sys.argv[1])
print("DEVICES", jax.device_count())
print("RESULT" + json.dumps(results))
"""


def _losses(workdir):
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}


@pytest.mark.slow
def test_a_run_stopped_on_two_devices_resumes_on_one(tmp_path):
  whole = multi_device.run_script(TRAIN, [tmp_path / "whole", 0], devices=1)
  # Stopped at a logging step: a resume inside a logging interval logs the mean of the steps after it only.
  assert multi_device.run_script(TRAIN, [tmp_path / "moved", 8], devices=2) is None
  moved = multi_device.run_script(TRAIN, [tmp_path / "moved", 0], devices=1)
  assert moved["metrics"].keys() == whole["metrics"].keys()
  for name, value in whole["metrics"].items():
    assert moved["metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-3), name
  expected, got = _losses(tmp_path / "whole"), _losses(tmp_path / "moved")
  assert got.keys() == expected.keys()
  assert [got[k] for k in sorted(got)] == pytest.approx([expected[k] for k in sorted(expected)], rel=1e-4)
