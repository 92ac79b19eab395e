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

# A script head: imports and a small ConvNet on 8x8 synthetic images with two views, 2 epochs of
# batch 32; scripts add their method's fields, then TRAIN_AND_DUMP_STATE.
SYNTHETIC_IMAGES_CONFIG = r"""
import json, sys
import numpy as np, jax
from coarse2fine.engine import loop, runs
from coarse2fine.config_base import base_config

config = base_config()
config.data.name = "synthetic"
config.data.synthetic.kind = "images"
config.data.synthetic.image_shape = (8, 8, 1)
config.data.synthetic.num_train = 128
config.data.synthetic.num_test = 64
config.data.views = ("crop_flip", "crop_flip")
config.model.encoder = "convnet"
config.model.encoder_args.widths = (8, 16)
config.train.num_epochs = 2
config.train.batch_size = 32
config.eval.batch_size = 64
config.logging.progress = False
"""

TRAIN_AND_DUMP_STATE = r"""
from coarse2fine.engine.checkpointing import Checkpointer
results = loop.train_and_evaluate(config, sys.argv[1])
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


def states_on_one_and_eight(script: str, workdir, args=()) -> tuple[dict, dict]:
  """The saved-state leaves `{path: value}` of `script` (ending in TRAIN_AND_DUMP_STATE) on 1 and on 8 devices."""
  one, eight = (run_script(script, [os.path.join(str(workdir), f"d{d}"), *args], devices=d)["leaves"]
                for d in (1, 8))
  assert one.keys() == eight.keys()
  return one, eight


def assert_states_match(one: dict, eight: dict, exact=lambda name: False) -> None:
  """Leaf by leaf: equal where `exact(name)` (integer state: labels, pointers, codes), else to float tolerance."""
  import numpy as np
  for name in one:
    if exact(name):
      np.testing.assert_array_equal(np.array(eight[name]), np.array(one[name]), err_msg=name)
    else:
      np.testing.assert_allclose(np.array(eight[name]), np.array(one[name]), rtol=2e-4, atol=2e-5, err_msg=name)
