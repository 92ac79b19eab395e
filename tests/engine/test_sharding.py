"""Host values to global arrays, and reading replicated arrays back (one process, 8 CPU devices in a subprocess)."""

import numpy as np

from tests import multi_device

SCRIPT = r"""
import json
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import PartitionSpec as P, NamedSharding
from coarse2fine.engine import sharding
mesh = sharding.make_mesh()
tree = {"m": np.arange(12).reshape(3, 4).astype(np.int32), "s": np.float32(2.5)}
on_mesh = sharding.host_to_replicated(tree, mesh)
target = {"m": jax.device_put(jnp.zeros((3, 4), jnp.int32), NamedSharding(mesh, P())),
          "s": jax.device_put(jnp.zeros(()), NamedSharding(mesh, P()))}
like = sharding.host_to_replicated(tree, target)
print("DEVICES", jax.device_count())
print("RESULT" + json.dumps({
    "values": [sharding.local_value(on_mesh["m"]).tolist(), float(sharding.local_value(on_mesh["s"]))],
    "replicated": [bool(a.sharding.is_fully_replicated) and len(a.sharding.device_set) == 8
                   for a in jax.tree.leaves(on_mesh)],
    "same_sharding": [a.sharding == b.sharding for a, b in zip(jax.tree.leaves(like), jax.tree.leaves(target))],
    "shards_equal": all(np.array_equal(np.asarray(s.data), np.arange(12).reshape(3, 4))
                        for s in on_mesh["m"].addressable_shards),
    "local_devices": len(sharding.local_mesh().devices.reshape(-1)),
}))
"""


def test_host_values_become_replicated_global_arrays():
  result = multi_device.run_script(SCRIPT, devices=8, timeout=120)
  assert result["values"] == [np.arange(12).reshape(3, 4).tolist(), 2.5]
  assert all(result["replicated"]) and all(result["same_sharding"]) and result["shards_equal"]
  assert result["local_devices"] == 8
