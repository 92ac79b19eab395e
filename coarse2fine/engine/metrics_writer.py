"""Where training measurements go: JSON lines and TensorBoard events (scalars, text, hyper-parameters, images);
the progress bar is `engine.progress`."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from typing import Any, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.engine.reporting import write_text_atomically


class MetricWriter:
  """Appends `{"step": s, name: value, ...}` to `workdir/metrics.jsonl` and TensorBoard events in `workdir/tensorboard`.

  The methods are those of `clu.metric_writers.MetricWriter` (write_scalars, write_images,
  write_texts, write_hparams, flush, close), over tensorboardX: clu's own TensorBoard writer
  needs TensorFlow (docs/evaluation.md#tensorboard). TensorBoard tags are the metrics.jsonl keys
  unchanged (`retrieval/recall@1`, not tensorboardX's cleaned `retrieval/recall_1`).

  Only the main process (`enabled=True`) writes. A run resumed at `resume_step` first drops the
  lines logged after that step by the interrupted session, so that each step appears once and
  the log agrees with the checkpoint it continues from.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: Optional[int] = None):
    self.enabled = enabled
    self._tb = None
    self._session_end = None  # hparams' closing record, written by close
    if not enabled:
      return
    storage.makedirs(workdir)
    path = storage.join(workdir, "metrics.jsonl")
    if resume_step is not None and storage.isfile(path):
      _keep_lines_up_to(path, resume_step)
    self._jsonl = storage.LineLog(path)  # on an object store: rewritten whole (no appends there)
    self._tb = _event_writer(storage.join(workdir, "tensorboard"))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    if self._tb is not None:
      from tensorboardX.proto.summary_pb2 import Summary

      self._tb.add_summary(Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]), step)

  write = write_scalars

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """TensorBoard images `{name: uint8 [H, W, C] or [N, H, W, C]}`, C in 1, 3, 4 (N > 1: tags name/0, name/1...)."""
    if not self.enabled or self._tb is None:
      return
    from tensorboardX.proto.summary_pb2 import Summary

    values = []
    for name, array in images.items():
      array = np.asarray(array)
      if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"write_images: {name!r} is {array.dtype} {array.shape}; give uint8 [H, W, C] or "
                         "[N, H, W, C] with C = 1, 3 or 4.")
      batch = [array] if array.ndim == 3 else list(array)
      for i, image in enumerate(batch):
        tag = name if len(batch) == 1 else f"{name}/{i}"
        values.append(Summary.Value(tag=tag, image=Summary.Image(
            height=image.shape[0], width=image.shape[1], colorspace=image.shape[2], encoded_image_string=_png(image))))
    self._tb.add_summary(Summary(value=values), step)

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    """TensorBoard text (markdown) under the exact tags given."""
    if not self.enabled or self._tb is None:
      return
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto

    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    self._tb.add_summary(Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=TensorProto(
        dtype="DT_STRING", string_val=[text.encode("utf-8")], tensor_shape=TensorShapeProto(
            dim=[TensorShapeProto.Dim(size=1)]))) for tag, text in texts.items()]), step)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Hyper-parameters for TensorBoard's HPARAMS tab (str, bool, int or float values; others as JSON text).

    The tab lists the run's scalar tags as its metrics. Call once per session.
    """
    if not self.enabled or self._tb is None:
      return
    from tensorboardX.summary import hparams as hparams_summaries

    values = {k: v if isinstance(v, (str, bool, int, float)) else json.dumps(v) for k, v in hparams.items()
              if v is not None}
    _, session_start, session_end = hparams_summaries(values, {})
    # Without an experiment summary, TensorBoard builds the experiment from the sessions and their scalars.
    self._tb.add_summary(session_start, None)
    self._session_end = session_end

  def write_config(self, step: int, config: ml_collections.ConfigDict, skip_sections: Sequence[str] = ()) -> None:
    """The config as TensorBoard text (`config`, all of it) and hyper-parameters ("a.b" fields, without
    `skip_sections`: e.g. other methods' sections, which every config carries)."""
    as_dict = json.loads(config.to_json())
    self.write_texts(step, {"config": "\n".join("    " + line for line in  # indented: markdown code block
                                                json.dumps(as_dict, indent=2, sort_keys=True).splitlines())})
    self.write_hparams({k: v for k, v in _flatten(as_dict).items() if k.split(".")[0] not in skip_sections})

  def flush(self) -> None:
    """Makes every line written so far durable (on an object store, the throttled rewrite happens now)."""
    if self.enabled:
      self._jsonl.flush(force=True)
      if self._tb is not None:
        self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      if self._tb is not None:
        if self._session_end is not None:
          self._tb.add_summary(self._session_end, None)
        self._tb.close()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def _png(image: np.ndarray) -> bytes:
  from PIL import Image

  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
  return buffer.getvalue()


def _event_writer(logdir: str):
  """A tensorboardX event file writer, or None where tensorboardX is missing (metrics.jsonl has all scalars)."""
  try:
    from tensorboardX import FileWriter
  except ImportError:
    return None
  return _LocalEvents(FileWriter(logdir)) if storage.is_local(logdir) else _UploadedEvents(logdir)


class _LocalEvents:
  """`add_summary(summary, step)`, `flush`, `close` of a tensorboardX FileWriter; summaries keep their tags."""

  def __init__(self, writer):
    self._writer = writer

  def add_summary(self, summary, step: Optional[int]) -> None:
    self._writer.add_summary(summary, None if step is None else int(step))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class _UploadedEvents(_LocalEvents):
  """TensorBoard events for an object-store workdir: written to a local temporary folder, uploaded at each flush.

  An events file grows by appends, which object stores do not have (tensorboardX's own gs://
  writer re-uploads the file at every flush and once more when garbage-collected, blocking on
  a store it cannot reach); here each `flush` (before every checkpoint) and `close` put the
  whole file, through `storage`, to LOGDIR/<events file>. A killed run's events stop at its last checkpoint.
  """

  def __init__(self, logdir: str):
    from tensorboardX import FileWriter

    self.logdir = logdir
    self._local = tempfile.mkdtemp(prefix="c2f_tensorboard_")
    super().__init__(FileWriter(self._local))

  def flush(self) -> None:
    self._writer.flush()
    for name in os.listdir(self._local):
      with open(os.path.join(self._local, name), "rb") as f:
        storage.write_bytes_atomically(storage.join(self.logdir, name), f.read())

  def close(self) -> None:
    try:
      self._writer.close()
      self.flush()
    finally:
      shutil.rmtree(self._local, ignore_errors=True)


def _keep_lines_up_to(path: str, step: int) -> None:
  """Rewrites `path` (atomically) without the lines logged after `step` (and without a torn last line).

  At step 0 nothing is kept: a run that starts over also reruns its step-0 hooks, which log again.
  """
  lines = storage.read_text(path).splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      if step > 0 and json.loads(line)["step"] <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    except (ValueError, KeyError, TypeError):
      continue  # a line cut by a kill mid-write
  if len(kept) != len(lines):
    write_text_atomically(path, "".join(kept))
