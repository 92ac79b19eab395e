"""Running a script under N fake host devices (XLA_FLAGS) and reading back what it printed.

A test script prints `DEVICES <count>` and `RESULT<json>`; `run_script` checks both. The
`TRAIN_AND_DUMP_STATE` tail trains `config` into `sys.argv[1]` and prints the saved state's
leaves, so two device counts can be compared leaf by leaf.
"""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAIN_AND_DUMP_STATE = r"""
from coarse2fine.checkpointing import Checkpointer
results = train.train_and_evaluate(config, sys.argv[1])
manager = Checkpointer(sys.argv[1], config)
state = manager.read_state()
manager.close()
tree = {"params": state["params"], "bn": state["batch_stats"], "extra": state["extra"]}
leaves = {jax.tree_util.keystr(p): np.asarray(v).tolist() for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
print("DEVICES", jax.device_count())
print("RESULT" + json.dumps({"metrics": results["metrics"], "leaves": leaves}))
"""


def run(script: str, args=(), devices: int = 8, timeout: int = 300) -> subprocess.CompletedProcess:
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                        env=env, timeout=timeout)


def run_script(script: str, args=(), devices: int = 8, timeout: int = 300) -> dict:
  """The script's RESULT json; fails with the script's stderr if it failed."""
  done = run(script, args, devices, timeout)
  assert done.returncode == 0, done.stderr[-3000:]
  if "DEVICES" in done.stdout:
    assert f"DEVICES {devices}" in done.stdout
  return json.loads(done.stdout.split("RESULT")[1])
