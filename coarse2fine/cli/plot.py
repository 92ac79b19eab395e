"""Command line: figures of a finished run.

  python -m coarse2fine.plot --workdir=DIR [--out=DIR/plots] [--split=test] [--max_points=2000] [--seed=0]
                            [--max_rows=20] [--projection=auto|tsne|umap|both]

Writes embedding_tsne.png / embedding_umap.png, relation.png, clusters.png, curves.png and diagnostics.png to
--out (what each shows: docs/figures.md) and prints their paths. Works on runs of the Python API too (they keep
their arrays in WORKDIR/data). Needs matplotlib, and umap-learn for UMAP: `pip install -e ".[plot]"`.
"""

from __future__ import annotations

from absl import app, flags, logging

from coarse2fine import figures
from coarse2fine.cli import common
from coarse2fine.engine import runs
from coarse2fine.engine.progress import stage

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's workdir.")
flags.DEFINE_string("out", None, "Folder for the PNGs (default: WORKDIR/plots).")
flags.DEFINE_enum("split", "test", ["test", "val"], "Split to predict ('val' needs data.val_fraction > 0).")
flags.DEFINE_integer("max_points", 2000, "At most this many examples (a seeded random subset) in the maps.",
                     lower_bound=2)
flags.DEFINE_integer("seed", 0, "Seed of the map's subset, its t-SNE/UMAP fit and k-means.")
flags.DEFINE_enum("projection", "auto", ["auto", "tsne", "umap", "both"],
                  "2-D maps to draw: t-SNE (scikit-learn), UMAP (umap-learn) or both; auto: both when umap-learn is "
                  "installed, else t-SNE with a one-line note.")
flags.DEFINE_integer("max_rows", figures.MAX_CLUSTER_ROWS, "Discovered classes in clusters.png (the most populated).",
                     lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  figures.pyplot()  # fail on a missing matplotlib (or umap-learn, for --projection=umap) before any work
  runs.load_run_config(FLAGS.workdir)  # and on a folder that holds no run
  projections, note = figures.resolve_projections(FLAGS.projection)
  if note:
    print(note)
  projection = "both" if len(projections) == 2 else projections[0]
  # predicting the split, the 2-D maps and drawing: one stage, ticking on a terminal
  maps = " and ".join(name.upper() if name == "umap" else "t-SNE" for name in projections)
  with stage(f"plotting {FLAGS.workdir} (predicting the {FLAGS.split} split, {maps} maps of up to "
             f"{FLAGS.max_points:,} points, figures)"):
    paths = figures.plot_run(FLAGS.workdir, FLAGS.out, FLAGS.split, FLAGS.max_points, FLAGS.seed, FLAGS.max_rows,
                             projection=projection)
  for path in paths:
    print(path)


def run() -> None:
  common.run(main)


if __name__ == "__main__":
  run()
