"""Test-wide settings: CPU only, quick compiles, absl flags parsed for grain workers."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# No end-of-run figures (a second or more per run; subprocesses inherit this): tests/engine/test_results_outputs.py
# turns them back on where it checks them.
os.environ.setdefault("C2F_FIGURES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402


def pytest_configure(config):
  # Multi-device, multi-process and notebook runs take minutes each, and some end-to-end checks 10-20 s:
  # `.ci/run` runs them as a second step (`-m slow`), after the README's default suite (`-m "not slow"`),
  # which has to stay under 10 minutes on a 2-core machine.
  config.addinivalue_line("markers", "slow: a multi-device, multi-process or notebook run, or an end-to-end check "
                                     "of 10 s or more")
  # Compile time dominates these tiny tests; optimised code is not needed to check values.
  jax.config.update("jax_disable_most_optimizations", True)
  # grain's worker processes read absl flags; under pytest nobody parses them.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


@pytest.fixture
def tiny_config():
  """A config that trains an MLP on a small synthetic vector dataset in seconds."""
  return make_tiny_config()


def make_tiny_config():
  """`tiny_config`'s config, for fixtures of a wider scope."""
  from coarse2fine.config_base import base_config

  config = base_config()
  config.method = "coarse"
  config.data.name = "synthetic"
  config.data.views = ("none",)
  config.data.synthetic.num_train = 512
  config.data.synthetic.num_test = 256
  config.model.encoder = "mlp"
  config.model.encoder_args.hidden_sizes = (32, 32)
  config.optimizer.lr = 0.05
  config.train.num_epochs = 2
  config.train.batch_size = 64
  config.train.log_every_steps = 4
  config.eval.batch_size = 128
  config.checkpoint.every_steps = 4
  config.logging.progress = False
  return config
