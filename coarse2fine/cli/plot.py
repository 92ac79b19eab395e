"""Command line: figures of a finished run.

  python -m coarse2fine.plot --workdir=DIR [--out=DIR/plots] [--split=test] [--max_points=2000] [--seed=0]
                            [--max_rows=20]

Writes embedding_tsne.png, relation.png, clusters.png and curves.png to --out (what each shows:
coarse2fine/figures.py) and prints their paths. Needs matplotlib: `pip install -e ".[plot]"`.
"""

from __future__ import annotations

from absl import app, flags, logging

from coarse2fine import figures

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir.")
flags.DEFINE_string("out", None, "Folder for the PNGs (default: WORKDIR/plots).")
flags.DEFINE_enum("split", "test", ["test", "val"], "Split to predict ('val' needs data.val_fraction > 0).")
flags.DEFINE_integer("max_points", 2000, "At most this many examples (a seeded random subset) in the t-SNE map.")
flags.DEFINE_integer("seed", 0, "Seed of the t-SNE subset and fit.")
flags.DEFINE_integer("max_rows", figures.MAX_CLUSTER_ROWS, "Discovered classes (the most populated) in clusters.png.",
                     lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  figures._pyplot()  # fail on a missing matplotlib before restoring anything
  for path in figures.plot_run(FLAGS.workdir, FLAGS.out, FLAGS.split, FLAGS.max_points, FLAGS.seed,
                               FLAGS.max_rows):
    print(path)


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
