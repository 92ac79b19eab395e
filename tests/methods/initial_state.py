"""The data, method and initial train state a method test starts from (one mesh over all devices)."""

from coarse2fine import optim, sharding
from coarse2fine.data import load_dataset
from coarse2fine.methods import build_method
from coarse2fine.train import create_train_state


def build(config, steps_per_epoch: int = 8, total_steps: int = 16):
  """(data, method, state, mesh) for `config`, with a schedule of `total_steps` steps."""
  data = load_dataset(config.data)
  method = build_method(config, data)
  mesh = sharding.make_mesh()
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch, total_steps)
  return data, method, create_train_state(method, config, data.input_shape, mesh, schedule), mesh
