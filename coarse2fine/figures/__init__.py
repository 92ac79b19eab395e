"""Figures of a finished run (the command line is `python -m coarse2fine.plot`, coarse2fine/cli/plot.py).

`plot_run(workdir, out)` restores the newest checkpoint of the run in `workdir` (its `config.json` names the
method and data), predicts the split, and writes PNGs to `out` (default workdir/plots), each through a
temporary file and a rename (never half-written). What each shows is in docs/figures.md:
  embedding_tsne.png, embedding_umap.png  figures/embedding.py: discovered classes beside true fine classes,
  relation.png                            figures/relation.py: discovered x true fine classes, learned parents,
  clusters.png                            figures/clusters.py: the largest discovered classes' images, purity,
  curves.png, diagnostics.png             figures/curves.py: learning and evaluation curves; settings and timing.
The functions that draw take arrays, so they work on any run's outputs.
Needs matplotlib (and umap-learn for UMAP maps): `pip install -e ".[plot]"`.
"""

from coarse2fine.figures.clusters import (  # noqa: F401
                                          IMAGES_PER_ROW,
                                          MAX_CLUSTER_ROWS,
                                          Purity,
                                          cluster_rows,
                                          clusters_figure_size,
                                          plot_clusters,
                                          purity,
)
from coarse2fine.figures.common import DPI, contingency, palette, pyplot, save_figure, subsample_indices  # noqa: F401
from coarse2fine.figures.curves import (  # noqa: F401
                                          diagnostic_names,
                                          is_diagnostic,
                                          plot_curves,
                                          plot_diagnostics,
                                          read_curves,
                                          science_panels,
)
from coarse2fine.figures.embedding import (  # noqa: F401
                                          EMBEDDING_SIZE,
                                          PROJECTIONS,
                                          Panel,
                                          plot_embedding,
                                          project,
                                          resolve_projections,
                                          umap_available,
)
from coarse2fine.figures.relation import Matching, match_clusters, plot_relation, relation_order  # noqa: F401
from coarse2fine.figures.run import (  # noqa: F401
                                     RunOutputs,
                                     load_outputs,
                                     plot_run,
                                     write_clusters,
                                     write_embeddings,
                                     write_relation,
)
