"""Command line: `python -m coarse2fine.main --config=configs/NAME.py --workdir=DIR`.

Override any config field with `--config.a.b=value`; unknown fields are rejected.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from coarse2fine.engine import distributed, loop

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "A config file in configs/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.json.")
flags.DEFINE_bool("multihost", False, "Join a multi-process run with JAX's auto-detection (TPU pods, SLURM).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for an explicit multi-process run "
                    "(or $C2F_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Processes in an explicit multi-process run (or $C2F_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) (or $C2F_PROCESS_ID).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax and grain log every save at INFO
  distributed.initialize(distributed.initialize_arguments(
      FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, multihost=FLAGS.multihost))
  loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
