"""A generated hierarchical Gaussian mixture with known fine labels.

Coarse class c has `fine_per_coarse` fine classes, or `children[c]` when `data.synthetic.children`
is given (uneven counts; then `num_coarse` is its length). It has a centre `m_c ~ N(0, coarse_scale^2 I)`; each of its fine classes
has a centre `m_c + N(0, fine_scale^2 I)`; an example is its fine centre plus
`N(0, noise^2 I)`. Vectors are used as they are ([N, dim] float32); images are the
vectors pushed through a fixed random linear map and a sigmoid into [H, W, C] uint8.
Everything is fixed by `data.synthetic.seed`, so tests and demos need no files.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from coarse2fine.data.splits import HierarchicalData, make_split
from coarse2fine.data.taxonomy import Taxonomy

KINDS = ("vectors", "images")


def make_taxonomy(num_coarse: int, fine_per_coarse: int, children=()) -> Taxonomy:
  """`num_coarse` coarse classes of `fine_per_coarse` fine classes each, or of `children[c]` each when given."""
  counts = tuple(children) or (fine_per_coarse,) * num_coarse
  groups = {f"coarse{c}": [f"coarse{c}/fine{j}" for j in range(k)] for c, k in enumerate(counts)}
  name = "-".join(map(str, children)) if children else f"{num_coarse}x{fine_per_coarse}"
  return Taxonomy.from_groups(f"synthetic_{name}", groups)


def generate(cfg: ml_collections.ConfigDict) -> HierarchicalData:
  if cfg.kind not in KINDS:
    raise ValueError(f"data.synthetic.kind must be one of {KINDS}, got {cfg.kind!r}.")
  if cfg.num_coarse < 1 or cfg.fine_per_coarse < 1:
    raise ValueError("data.synthetic.num_coarse and fine_per_coarse must be at least 1.")
  children = tuple(cfg.get("children", ()))
  if children and min(children) < 1:
    raise ValueError(f"data.synthetic.children must hold counts >= 1 (fine classes of each coarse class), got {children}.")
  taxonomy = make_taxonomy(cfg.num_coarse, cfg.fine_per_coarse, children)
  rng = np.random.default_rng(cfg.seed)
  coarse_centres = rng.normal(0, cfg.coarse_scale, (taxonomy.num_coarse, cfg.dim))
  fine_centres = coarse_centres[taxonomy.fine_to_coarse] + rng.normal(0, cfg.fine_scale, (taxonomy.num_fine, cfg.dim))
  projection = None
  if cfg.kind == "images":
    h, w, ch = cfg.image_shape
    projection = rng.normal(0, 1 / np.sqrt(cfg.dim), (cfg.dim, h * w * ch))

  def sample(n: int, where: str):
    fine = rng.integers(0, taxonomy.num_fine, n)
    x = fine_centres[fine] + rng.normal(0, cfg.noise, (n, cfg.dim))
    if projection is None:
      inputs = x.astype(np.float32)
    else:
      pixels = 1 / (1 + np.exp(-2 * (x @ projection)))
      inputs = np.round(255 * pixels).astype(np.uint8).reshape(n, *cfg.image_shape)
    return make_split(inputs, fine=fine, taxonomy=taxonomy, where=where)

  train = sample(cfg.num_train, "synthetic/train")
  test = sample(cfg.num_test, "synthetic/test")
  if cfg.kind == "images":
    flat = train.inputs.reshape(-1, train.inputs.shape[-1]) / 255.0
    mean, std = flat.mean(0), flat.std(0) + 1e-6
  else:
    mean, std = train.inputs.mean(0), train.inputs.std(0) + 1e-6
  return HierarchicalData("synthetic", taxonomy, train, test,
                          mean=mean.astype(np.float32), std=std.astype(np.float32))


def load(data_config: ml_collections.ConfigDict) -> HierarchicalData:
  return generate(data_config.synthetic)
