"""The explicit table of methods a config can name (`config.method`): name -> `Method` class."""

from __future__ import annotations

import ml_collections

from coarse2fine.data.splits import HierarchicalData
from coarse2fine.methods.base import Discovered, LossAux, Method, Prototypes, make_train_step
from coarse2fine.methods.falcon.method import Falcon
from coarse2fine.methods.falcon.scan import Scan, ScanC
from coarse2fine.methods.fsc.method import SubCentreClassifier
from coarse2fine.methods.maskcon.method import MaskCon
from coarse2fine.methods.scgm.ancor import Ancor
from coarse2fine.methods.scgm.method import SCGMA, SCGMG
from coarse2fine.methods.supervised.method import Coarse, CoarsePlus, Fine, FinePlus

METHODS: dict[str, type[Method]] = {
    "coarse": Coarse,
    "coarse_plus": CoarsePlus,
    "fine": Fine,
    "fine_plus": FinePlus,
    "scgm_g": SCGMG,
    "scgm_a": SCGMA,
    "ancor": Ancor,
    "falcon": Falcon,
    "scan": Scan,
    "scan_c": ScanC,
    "maskcon": MaskCon,  # and its family by maskcon.mode: selfcon, grafit, supcon, coins, supce, supfine
    "fsc": SubCentreClassifier,  # and its comparison heads by fsc.head: softmax, centre, softtriple
}
DEFAULT_METHOD = "scgm_g"  # what `coarse2fine.fit` trains unless told otherwise


def method_class(name: str) -> type[Method]:
  """The class registered as `name`; an unknown name is an error that lists the known ones."""
  if name not in METHODS:
    raise ValueError(f"Unknown method {name!r}; choose one of {sorted(METHODS)}.")
  return METHODS[name]


def discovering_methods() -> list[str]:
  """Names of the methods that can report discovered classes with coarse parents (`Method.discovered`)."""
  return [name for name, cls in METHODS.items() if cls.discovered is not Method.discovered]


def build_method(config: ml_collections.ConfigDict, data: HierarchicalData) -> Method:
  return method_class(config.method)(config, data)


__all__ = ["DEFAULT_METHOD", "METHODS", "Discovered", "LossAux", "Method", "Prototypes", "build_method",
           "discovering_methods", "make_train_step", "method_class"]
