"""Writing results: atomic JSON files and markdown tables of metrics."""

from __future__ import annotations

import json
from typing import Any

from coarse2fine import storage


def write_text_atomically(path: str, text: str) -> None:
  """Writes `text` to `path`, never half-written: temp file and rename locally, one put on an object store."""
  storage.write_text_atomically(path, text)


def write_json_atomically(path: str, payload: Any) -> None:
  write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def metrics_table(metrics: dict[str, float]) -> str:
  """A markdown table of `{name: value}`, sorted by name."""
  width = max([len(k) for k in metrics] + [6])
  lines = [f"| {'metric':<{width}} | value  |", f"|{'-' * (width + 2)}|--------|"]
  lines += [f"| {k:<{width}} | {v:6.2f} |" for k, v in sorted(metrics.items())]
  return "\n".join(lines)
