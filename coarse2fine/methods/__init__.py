"""The explicit table of methods a config can name (`config.method`)."""

from __future__ import annotations

from typing import Callable

import ml_collections

from coarse2fine.data.splits import HierarchicalData
from coarse2fine.methods.base import LossAux, Method, make_train_step
from coarse2fine.methods.falcon import method as falcon
from coarse2fine.methods.falcon import scan
from coarse2fine.methods.fsc import method as fsc
from coarse2fine.methods.maskcon import method as maskcon
from coarse2fine.methods.scgm import ancor
from coarse2fine.methods.scgm import method as scgm
from coarse2fine.methods.supervised import method as supervised

METHODS: dict[str, Callable[[ml_collections.ConfigDict, HierarchicalData], Method]] = {
    "coarse": supervised.coarse,
    "coarse_plus": supervised.coarse_plus,
    "fine": supervised.fine,
    "fine_plus": supervised.fine_plus,
    "scgm_g": scgm.scgm_g,
    "scgm_a": scgm.scgm_a,
    "ancor": ancor.ancor,
    "falcon": falcon.falcon,
    "scan": scan.scan,
    "scan_c": scan.scan_c,
    "maskcon": maskcon.maskcon,  # and its family by maskcon.mode: selfcon, grafit, supcon, coins, supce, supfine
    "fsc": fsc.fsc,  # and its comparison heads by fsc.head: softmax, centre, softtriple
}


def build_method(config: ml_collections.ConfigDict, data: HierarchicalData) -> Method:
  if config.method not in METHODS:
    raise ValueError(f"Unknown method {config.method!r}; choose one of {sorted(METHODS)}.")
  return METHODS[config.method](config, data)
