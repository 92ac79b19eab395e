"""The method table: registration from outside the library, and the schema built from what is registered."""

import pytest

from coarse2fine import config_base
from coarse2fine.methods import METHODS, import_method_modules, method_config_sections, register_method
from coarse2fine.methods.supervised.method import Coarse


def test_sections_come_from_the_registered_methods():
  sections = method_config_sections()
  declared = {name for cls in METHODS.values() for name in cls.config_sections()}
  assert set(sections) == declared and {"scgm", "falcon", "maskcon", "fsc"} <= declared
  config = config_base.base_config()
  for name, section in sections.items():
    assert config[name].to_dict() == section.to_dict()


def test_register_method_refuses_a_taken_name_and_a_non_method():
  register_method("coarse", Coarse)  # the same class again: a no-op
  assert METHODS["coarse"] is Coarse

  class Other(Coarse):
    pass

  with pytest.raises(ValueError, match="'coarse' is taken by .*Coarse"):
    register_method("coarse", Other)
  with pytest.raises(TypeError, match="must subclass"):
    register_method("thing", dict)
  assert "thing" not in METHODS


def test_a_method_module_that_cannot_be_imported_is_named():
  with pytest.raises(ImportError, match="method_modules names 'no_such_package.methods'.*PYTHONPATH"):
    import_method_modules(("no_such_package.methods",))
