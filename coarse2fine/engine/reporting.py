"""Writing results: atomic JSON files and markdown tables of metrics."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_text_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file and a rename: never half-written."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp's files are private; results and configs are for everyone to read
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json_atomically(path: str, payload: Any) -> None:
  write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def metrics_table(metrics: dict[str, float]) -> str:
  """A markdown table of `{name: value}`, sorted by name."""
  width = max([len(k) for k in metrics] + [6])
  lines = [f"| {'metric':<{width}} | value  |", f"|{'-' * (width + 2)}|--------|"]
  lines += [f"| {k:<{width}} | {v:6.2f} |" for k, v in sorted(metrics.items())]
  return "\n".join(lines)
