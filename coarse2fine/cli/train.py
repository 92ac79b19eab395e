"""Command line: `python -m coarse2fine.main --config=configs/NAME.py --workdir=DIR`.

Override any config field with `--config.a.b=value`; unknown fields are rejected. Running again
on the same workdir resumes from its newest checkpoint; on a finished run (results.json written
at the last step) it says so and stops, unless `--reevaluate`. Ctrl-C or SIGTERM saves a
checkpoint of the current step and stops (re-run the same command to resume). A mistake in the
flags, the config or the paths ends in one `error:` line (`--verbose` shows the traceback).
"""

from __future__ import annotations

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
    results = runs.finished_run(config, FLAGS.workdir)
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
