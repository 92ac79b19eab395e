"""Shared helpers of the benchmark scripts: timing and saving JSON + markdown."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from typing import Callable, Optional, Sequence

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
  """Seconds per call of `fn` (which must block until its work is done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def median(values: Sequence[float]) -> float:
  return float(statistics.median(values))


def machine_description() -> dict:
  import jax

  return {
      "platform": platform.platform(),
      "cpu_count": os.cpu_count(),
      "jax": jax.__version__,
      "devices": [str(d) for d in jax.devices()],
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def _write_atomically(path: str, text: str) -> None:
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(text)
  os.chmod(tmp, 0o644)  # mkstemp makes the file private; results are for everyone to read
  os.replace(tmp, path)


def seed_summary(rows: list[dict], by: Sequence[str], keys: Sequence[str]) -> list[dict]:
  """One row per group of `rows` sharing the values of `by` (in first-seen order): "seeds", and the mean and sd
  ("<key>_sd", 0 for one seed) over the group of each of `keys` that has values (None skipped)."""
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    groups.setdefault(tuple(row[k] for k in by), []).append(row)
  out = []
  for group_key, group in groups.items():
    summary = {**dict(zip(by, group_key)), "seeds": len(group)}
    for key in keys:
      values = [r[key] for r in group if r.get(key) is not None]
      if values:
        summary[key] = statistics.fmean(values)
        summary[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    out.append(summary)
  return out


def markdown_table(rows: list[dict], columns: Sequence[str]) -> str:
  def cell(v):
    if isinstance(v, float):
      return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return str(v)

  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def kept_rows(name: str, ran: list[dict], key: Sequence[str]) -> list[dict]:
  """Rows of the saved table `name` whose `key` fields match no row of `ran`, so that partial runs add up."""
  path = os.path.join(RESULTS_DIR, f"{name}.json")
  if not os.path.exists(path):
    return []
  done = {tuple(r[k] for k in key) for r in ran}
  with open(path) as f:
    return [r for r in json.load(f)["rows"] if tuple(r[k] for k in key) not in done]


def save(name: str, rows: list[dict], columns: Sequence[str], notes: str = "", out_dir: str = RESULTS_DIR) -> str:
  """Writes `out_dir/name.json` and `out_dir/name.md`; prints and returns the table."""
  os.makedirs(out_dir, exist_ok=True)
  table = markdown_table(rows, columns)
  payload = {"benchmark": name, "machine": machine_description(), "rows": rows, "notes": notes,
             "date": time.strftime("%Y-%m-%d %H:%M:%S")}
  _write_atomically(os.path.join(out_dir, f"{name}.json"), json.dumps(payload, indent=2))
  _write_atomically(os.path.join(out_dir, f"{name}.md"), f"# {name}\n\n{table}\n\n{notes}\n")
  print(table)
  if notes:
    print(notes)
  return table


CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load_config(name: str, overrides: dict):
  """`configs/<file>[:arg]` with `{"a.b": value}` overrides applied, the progress line and end-of-run figures off."""
  from coarse2fine.config_base import load_config as load_config_file

  config = load_config_file(os.path.join(CONFIGS_DIR, name), overrides)
  config.logging.progress = False
  config.logging.figures = False  # a t-SNE map per run would add to every timing and cost minutes per benchmark
  return config


def kept_run(rundir: str, config_file: str, overrides: dict, train: bool = True) -> Optional[dict]:
  """results.json's metrics of the run in `rundir`, trained there first from `configs/<config_file>` with
  `overrides` unless it has finished; None where it has not and `train` is False."""
  from coarse2fine.engine import loop

  path = os.path.join(rundir, "results.json")
  if not os.path.exists(path):
    if not train:
      return None
    loop.train_and_evaluate(load_config(config_file, overrides), rundir)
  with open(path) as f:
    return json.load(f)["metrics"]


def last_logged_step(rundir: str) -> dict:
  """The last training step's record of `rundir/metrics.jsonl` ({} if none was logged)."""
  with open(os.path.join(rundir, "metrics.jsonl")) as f:
    logged = [json.loads(line) for line in f if '"train/loss"' in line]
  return logged[-1] if logged else {}
