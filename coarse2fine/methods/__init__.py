"""The explicit table of methods a config can name (`config.method`): name -> `Method` class.

The library's methods are listed below. A method defined elsewhere (a user's package, a
test) calls `register_method(name, cls)` when its module is imported, and a config names
that module in `method_modules`, so that every command reading the run imports it first
(docs/architecture.md#adding-a-method).
"""

from __future__ import annotations

import importlib
from typing import Sequence

import ml_collections

from coarse2fine.data.splits import HierarchicalData
from coarse2fine.methods.base import Discovered, LossAux, Method, Prototypes, make_train_step
from coarse2fine.methods.falcon.method import Falcon
from coarse2fine.methods.falcon.scan import Scan, ScanC
from coarse2fine.methods.fsc.method import SubCentreClassifier
from coarse2fine.methods.maskcon.method import MaskCon
from coarse2fine.methods.moco.method import MoCoV3
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
    "moco_v3": MoCoV3,  # self-supervised pretraining of the encoder (no labels)
}
# What `coarse2fine.fit` trains unless told otherwise: the method whose discovered classes were best with fit's
# defaults on every dataset measured (benchmarks/results/api_defaults.md, docs/fit_defaults.md).
DEFAULT_METHOD = "falcon"


def register_method(name: str, cls: type[Method]) -> None:
  """Makes `cls` available as `config.method = name`; registering it again under the same name is a no-op."""
  if not (isinstance(cls, type) and issubclass(cls, Method)):
    raise TypeError(f"register_method({name!r}, {cls!r}): the class must subclass coarse2fine.methods.Method.")
  if METHODS.get(name, cls) is not cls:
    raise ValueError(f"Method name {name!r} is taken by {METHODS[name].__module__}.{METHODS[name].__name__}; "
                     "register yours under another name.")
  METHODS[name] = cls


def import_method_modules(modules: Sequence[str]) -> None:
  """Imports each module of `config.method_modules` (where methods defined outside the library register)."""
  for module in modules:
    try:
      importlib.import_module(module)
    except ImportError as error:
      raise ImportError(f"config.method_modules names {module!r}, which cannot be imported ({error}); put its "
                        "package on PYTHONPATH or install it.") from error


def method_config_sections() -> dict[str, ml_collections.ConfigDict]:
  """Every registered method's config sections, by section name (a family's methods share theirs)."""
  sections: dict[str, ml_collections.ConfigDict] = {}
  owners: dict[str, str] = {}
  for name, cls in METHODS.items():
    for section_name, section in cls.config_sections().items():
      if section_name in sections and sections[section_name].to_dict() != section.to_dict():
        raise ValueError(f"Methods {owners[section_name]!r} and {name!r} declare config section {section_name!r} "
                         "with different fields; a section belongs to one method family.")
      sections.setdefault(section_name, section)
      owners.setdefault(section_name, name)
  return sections


def method_class(name: str) -> type[Method]:
  """The class registered as `name`; an unknown name is an error that lists the known ones."""
  if name not in METHODS:
    raise ValueError(f"Unknown method {name!r}; choose one of {sorted(METHODS)}.")
  return METHODS[name]


def discovering_methods() -> list[str]:
  """Names of the methods that can report discovered classes with coarse parents (`Method.discovered`)."""
  return [name for name, cls in METHODS.items() if cls.discovered is not Method.discovered]


def build_method(config: ml_collections.ConfigDict, data: HierarchicalData) -> Method:
  cls = method_class(config.method)
  if cls.fine_count_field:
    value = config
    for part in cls.fine_count_field.split("."):
      value = value[part]
    if value == "estimate":  # the method needs a number to build its model
      raise ValueError(f"{cls.fine_count_field}='estimate' is resolved before the method is built: go through "
                       "engine.runs.setup_run (or resolve_fine_count), or set a number.")
  return cls(config, data)


__all__ = ["DEFAULT_METHOD", "METHODS", "Discovered", "LossAux", "Method", "Prototypes", "build_method",
           "discovering_methods", "import_method_modules", "make_train_step", "method_class",
           "method_config_sections", "register_method"]
