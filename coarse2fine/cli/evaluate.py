"""Command line: evaluate the newest checkpoint of a run.

  python -m coarse2fine.evaluate --workdir=DIR [--protocols=fewshot,retrieval] [--config=configs/X.py]

Reads `DIR/config.json` (written once training is accepted), or the config file `--config`
names (with `--config.a.b=value` overrides; the checkpoint must have been written by the same
config), restores the newest intact checkpoint, runs the evaluation protocols the config names
(or `--protocols`), and writes `DIR/eval.json` and `DIR/eval.md`.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from coarse2fine.cli import common
from coarse2fine.engine import runs
from coarse2fine.engine.progress import stage

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir.")
flags.DEFINE_list("protocols", None, "Override eval.protocols, e.g. classification,fewshot,retrieval,kmeans.")
config_flags.DEFINE_config_file("config", None, "The run's config file, instead of WORKDIR/config.json.",
                                lock_config=True)
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  config = FLAGS.config if FLAGS.config is not None else runs.load_run_config(FLAGS.workdir)
  if FLAGS.protocols is not None:
    config.eval.protocols = tuple(FLAGS.protocols)
  runs.validate_config(config)
  import jax

  # data, model and checkpoint, then the protocols: one stage, ticking on a terminal
  with stage(f"evaluating the newest checkpoint of {FLAGS.workdir} on the {config.eval.split} split "
             f"({', '.join(config.eval.protocols)})", enabled=jax.process_index() == 0):
    runs.evaluate_checkpoint(config, FLAGS.workdir)


def run() -> None:
  common.run(main)


if __name__ == "__main__":
  run()
