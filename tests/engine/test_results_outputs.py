"""What a finished run leaves for a person: results.json's provenance, TensorBoard events read back with
TensorBoard's own reader (exact tags, evaluation curves, config text, hyper-parameters, figures)."""

import hashlib
import io
import json
import os
import re
import subprocess

import jax
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from coarse2fine.engine import loop, provenance, reporting
from coarse2fine.engine.metrics_writer import MetricWriter
from tests.conftest import make_tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVERYTHING = {"scalars": 0, "images": 0, "tensors": 0}  # keep every event (the reader samples by default)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A tiny run evaluated after epoch 1 (step 8) and at the end (step 16), figures on."""
  config = make_tiny_config()
  config.method = "coarse_plus"  # an embedder: retrieval's recall@K tags
  config.model.embedder = "mlp"
  config.model.embedding_dim = 8
  config.eval.protocols = ("classification", "retrieval")
  config.eval.every_epochs = 1
  workdir = tmp_path_factory.mktemp("run")
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(reporting.FIGURES_ENV, "1")
    patch.setattr(reporting, "FIGURE_POINTS", 60)  # a quick t-SNE: the test checks the images arrive
    loop.train_and_evaluate(config, str(workdir))
  return workdir


def _accumulator(workdir, plugins=False):
  module = plugin_event_accumulator if plugins else event_accumulator
  accumulator = module.EventAccumulator(str(workdir / "tensorboard"), size_guidance=EVERYTHING)
  accumulator.Reload()
  return accumulator


def test_results_json_records_code_devices_and_config_hash(finished_run):
  recorded = json.loads((finished_run / "results.json").read_text())["provenance"]
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
  status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                          text=True, check=True)
  assert recorded["git_commit"] == head.stdout.strip()
  assert recorded["git_dirty"] == bool(status.stdout.strip())
  with open(os.path.join(REPO, "setup.py")) as f:
    assert recorded["coarse2fine"] == re.search(r'version="([^"]+)"', f.read()).group(1)
  assert recorded["jax"] == jax.__version__
  assert recorded["devices"] == {"platform": "cpu", "kind": jax.devices()[0].device_kind,
                                 "count": jax.device_count(), "local_count": jax.local_device_count(),
                                 "processes": 1}
  # The hash is the sha256 of config.json's canonical JSON, as docs/evaluation.md tells a reader to recompute it.
  config = json.loads((finished_run / "config.json").read_text())
  canonical = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
  assert recorded["config_sha256"] == hashlib.sha256(canonical).hexdigest()


def test_outside_a_git_checkout_the_commit_is_none(tmp_path, monkeypatch):
  monkeypatch.setattr(provenance, "PACKAGE_DIR", str(tmp_path))
  assert provenance.git_state() == (None, None)


def test_tensorboard_holds_the_metrics_jsonl_keys_and_the_eval_curve(finished_run):
  lines = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
  logged = {}  # tag -> {step: value}
  for line in lines:
    for key, value in line.items():
      if key != "step":
        logged.setdefault(key, {})[line["step"]] = value
  scalars = _accumulator(finished_run).Tags()["scalars"]
  assert set(scalars) == set(logged)  # the same names, "@" and all
  assert "retrieval/recall@1" in scalars and "retrieval/recall_1" not in scalars
  events = _accumulator(finished_run)
  for tag, values in logged.items():
    read = {e.step: e.value for e in events.Scalars(tag)}
    assert read == pytest.approx(values, rel=1e-6, abs=1e-6), tag  # float32 in the events
  assert sorted(logged["test/coarse_top1"]) == [8, 16]  # the curve: after epoch 1 and at the end
  assert sorted(logged["retrieval/recall@1"]) == [8, 16]


def test_tensorboard_holds_the_config_hparams_and_figures(finished_run):
  events = _accumulator(finished_run)
  (text,) = events.Tensors("config")
  shown = text.tensor_proto.string_val[0].decode()
  assert json.loads(shown) == json.loads((finished_run / "config.json").read_text())  # indented as code
  assert events.SummaryMetadata("config").plugin_data.plugin_name == "text"

  with_plugins = _accumulator(finished_run, plugins=True)
  content = with_plugins.PluginTagToContent("hparams")["_hparams_/session_start_info"]
  hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
  assert hparams["optimizer.lr"].number_value == pytest.approx(0.05)
  assert hparams["method"].string_value == "coarse_plus"
  assert hparams["model.encoder_args.hidden_sizes"].string_value == "[32, 32]"
  assert not any(name.startswith(("falcon.", "scgm.")) for name in hparams)  # other methods' sections

  images = events.Tags()["images"]
  assert {"figures/embedding_tsne", "figures/curves"} <= set(images)
  for tag in images:
    (event,) = events.Images(tag)
    pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))
    assert pixels.shape == (event.height, event.width, 3) and event.step == 16
    assert pixels.std() > 0  # a drawing, not a blank


def test_written_images_and_odd_tags_read_back_exactly(tmp_path):
  writer = MetricWriter(str(tmp_path))
  rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  grey = np.random.default_rng(1).integers(0, 256, (2, 4, 6, 1), dtype=np.uint8)
  writer.write_scalars(3, {"retrieval/recall@1": 0.5, "odd tag %/x": 2.0})
  writer.write_images(3, {"maps/rgb": rgb, "maps/grey": grey})
  with pytest.raises(ValueError, match="uint8"):
    writer.write_images(4, {"floats": rgb.astype(np.float32)})
  writer.close()
  events = _accumulator(tmp_path)
  assert set(events.Tags()["scalars"]) == {"retrieval/recall@1", "odd tag %/x"}
  decoded = {tag: np.asarray(Image.open(io.BytesIO(events.Images(tag)[0].encoded_image_string)))
             for tag in events.Tags()["images"]}
  assert set(decoded) == {"maps/rgb", "maps/grey/0", "maps/grey/1"}
  np.testing.assert_array_equal(decoded["maps/rgb"], rgb)
  np.testing.assert_array_equal(decoded["maps/grey/1"], grey[1, ..., 0])
  assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
      {"step": 3, "retrieval/recall@1": 0.5, "odd tag %/x": 2.0}]
