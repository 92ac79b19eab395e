"""The data, method and initial train state a method test starts from (one mesh over all devices)."""

from coarse2fine.data import load_dataset
from coarse2fine.engine import optim, sharding
from coarse2fine.engine.runs import create_train_state
from coarse2fine.methods import build_method


def build(config, steps_per_epoch: int = 8, total_steps: int = 16):
  """(data, method, state, mesh) for `config`, with a schedule of `total_steps` steps."""
  data = load_dataset(config.data)
  method = build_method(config, data)
  mesh = sharding.make_mesh()
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch, total_steps)
  return data, method, create_train_state(method, config, data.input_shape, mesh, schedule), mesh


def batch(views, coarse, fine=None, index=None, neighbours=None, dataset=None):
  """A `Batch` as a loss sees it: float views [b, V, ...] (already augmented and normalised)."""
  import jax.numpy as jnp
  import numpy as np

  from coarse2fine.data.batch import Batch, example_ids

  n = len(coarse)
  ints = lambda values, default: jnp.asarray(default if values is None else values, jnp.int32)
  return Batch(views=jnp.asarray(views, jnp.float32), coarse=ints(coarse, None), fine=ints(fine, np.full(n, -1)),
               index=ints(index, np.arange(n)), dataset=ints(dataset, np.zeros(n)),
               example=jnp.asarray(example_ids(0, np.arange(n))),
               neighbours=None if neighbours is None else jnp.asarray(neighbours, jnp.float32))
