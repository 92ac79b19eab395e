"""FALCON's relation solve in a 2-process run (CPU collectives on localhost): process 0 solves, all receive.

Each process is given a different accumulated cost on purpose (as if their predictions had
drifted apart); after the hook both must hold the relation solved from process 0's cost,
which differs from the one process 1's own cost gives.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from coarse2fine.methods.falcon import relation_solver

REPO = str(pathlib.Path(__file__).resolve().parents[3])

SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
import numpy as np
from coarse2fine.engine import hooks, optim, sharding
from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset
from coarse2fine.methods import build_method
from coarse2fine.engine.runs import create_train_state

config = base_config()
config.method = "falcon"
config.data.name = "synthetic"
config.data.views = ("none", "none")
config.model.encoder = "mlp"
config.model.encoder_args.hidden_sizes = (16,)
config.train.batch_size = 64
config.falcon.beta = 0.05
data = load_dataset(config.data)
method = build_method(config, data)
mesh = sharding.make_mesh()
schedule = optim.make_schedule(config.optimizer, 8, 16)
state = create_train_state(method, config, data.input_shape, mesh, schedule)
cost = np.random.default_rng(int(sys.argv[2])).dirichlet(np.ones(data.num_coarse), size=method.num_fine)
cost = cost[None].astype(np.float32)  # [D=1, K, C]: this process's own (deliberately different) cost
# make_array_from_callback, not device_put: device_put checks that replicas agree across processes.
drifted = jax.make_array_from_callback(cost.shape, state.extra["cost"].sharding, lambda index: cost[index])
state = state.replace(step=jax.device_put(np.int32(5), state.step.sharding), extra={
    **state.extra, "cost": drifted,
    "cost_count": jax.device_put(np.ones(1, np.float32), state.extra["cost_count"].sharding)})
context = hooks.HookContext(config=config, data=data, mesh=mesh, steps_per_epoch=8, host_state={})
state = method.solve_relations(state, context)
relations = sharding.local_value(state.extra["relations"])[0]
print("RESULT" + json.dumps({"processes": jax.process_count(), "devices": jax.device_count(),
                             "relation": relations.astype(int).tolist(), "cost": cost[0].tolist(),
                             "beta": context.metrics["relation/beta"],
                             "changed_rows": context.metrics["relation/changed_rows"]}))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # two processes (50 s)
def test_process_zero_solves_and_every_process_gets_its_relation():
  address = f"localhost:{_free_port()}"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, address, str(i)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
  outputs = []
  for proc in procs:
    try:
      out, err = proc.communicate(timeout=240)
    finally:
      proc.kill()
    assert proc.returncode == 0, err[-3000:]
    outputs.append(json.loads(next(line[6:] for line in out.splitlines() if line.startswith("RESULT"))))
  zero, one = outputs
  assert zero["processes"] == one["processes"] == 2 and zero["devices"] == 2
  want = relation_solver.solve_relation(np.array(zero["cost"]), zero["beta"]).matrix
  own_one = relation_solver.solve_relation(np.array(one["cost"]), one["beta"]).matrix
  assert not np.array_equal(want, own_one), "the test needs costs whose solutions differ"
  np.testing.assert_array_equal(np.array(zero["relation"]), want)
  np.testing.assert_array_equal(np.array(one["relation"]), want)
  assert zero["changed_rows"] == one["changed_rows"]  # the solve's figures are broadcast too
