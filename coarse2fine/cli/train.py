"""Command line: `python -m coarse2fine.main --config=configs/NAME.py --workdir=DIR`.

Override any config field with `--config.a.b=value`; unknown fields are rejected. Running again
on the same workdir resumes from its newest checkpoint; on a finished run (results.json written
at the last step) it says so and stops, unless `--reevaluate`. Ctrl-C or SIGTERM saves a
checkpoint of the current step and stops (re-run the same command to resume). A mistake in the
flags, the config or the paths ends in one `error:` line (`--verbose` shows the traceback).
"""

from __future__ import annotations

import json
from typing import Optional

from absl import app, flags, logging
from ml_collections import config_flags

from coarse2fine.cli import common
from coarse2fine.engine import distributed

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "A config file in configs/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.json.")
flags.DEFINE_bool("multihost", False, "Join a multi-process run with JAX's auto-detection (TPU pods, SLURM).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for an explicit multi-process run "
                    "(or $C2F_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Processes in an explicit multi-process run (or $C2F_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) (or $C2F_PROCESS_ID).")
flags.DEFINE_bool("reevaluate", False, "On a finished run: evaluate its last checkpoint again (and append the "
                  "metrics to metrics.jsonl) instead of stopping at once.")
flags.mark_flags_as_required(["config", "workdir"])


def finished_run(config, workdir: str) -> Optional[dict]:
  """results.json of `workdir` when that run is finished under this same config, else None.

  Finished: results.json records the step of the newest checkpoint, and config.json equals
  `config` in every field that shapes the run or its evaluation (the checkpoint and logging
  settings may differ).
  """
  from coarse2fine import storage
  from coarse2fine.engine.checkpointing import comparable_config, config_differences
  from coarse2fine.methods import method_class
  from coarse2fine.models import pretrained

  paths = {name: storage.join(workdir, name) for name in ("results.json", "config.json", "checkpoints")}
  if not (storage.isfile(paths["results.json"]) and storage.isfile(paths["config.json"])
          and storage.isdir(paths["checkpoints"])):
    return None
  steps = [int(name) for name in storage.listdir(paths["checkpoints"]) if name.isdigit()]
  try:
    results = json.loads(storage.read_text(paths["results.json"]))
    saved = json.loads(storage.read_text(paths["config.json"]))
  except ValueError:
    return None  # unreadable files: the run's own checks report them
  if not steps or results.get("steps") != max(steps):
    return None
  import ml_collections

  current = pretrained.with_resolved_normalization(config)
  saved_config = pretrained.with_resolved_normalization(ml_collections.ConfigDict(saved))
  diffs = config_differences(comparable_config(saved_config), comparable_config(current))
  diffs += config_differences({"eval": json.loads(saved_config.eval.to_json_best_effort())},  # lists, not tuples
                              {"eval": json.loads(current.eval.to_json_best_effort())})
  count_field = method_class(config.method).fine_count_field  # "estimate" was recorded as the K it resolved to
  diffs = [d for d in diffs if not (d[0] == count_field and d[2] == "estimate")]
  return None if diffs else results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and grain log every save at INFO
  config = FLAGS.config
  from coarse2fine.engine import loop, runs  # JAX starts here, after the flags

  runs.validate_config(config)  # unknown names fail before a process joins or a file is read
  arguments = distributed.initialize_arguments(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                                               multihost=FLAGS.multihost)
  distributed.initialize(arguments)
  if not FLAGS.reevaluate:
    results = finished_run(config, FLAGS.workdir)
    if results is not None:
      import jax

      if jax.process_index() == 0:
        print(f"{FLAGS.workdir}: finished at step {results['steps']:,} with this config (results.json); nothing to "
              f"do. --reevaluate evaluates it again, python -m coarse2fine.evaluate --workdir={FLAGS.workdir} "
              f"writes eval.json.", flush=True)
      return
  loop.train_and_evaluate(config, FLAGS.workdir)


def run() -> None:
  common.run(main)


if __name__ == "__main__":
  run()
