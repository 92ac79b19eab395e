"""Batches from grain worker processes leave no shared memory behind, at a normal exit or an early one.

Each run is a fresh interpreter (Python's resource_tracker reports leaked blocks when the last process
using it ends), reading an image_folder tree of generated 500x375 JPEGs with data.num_workers=2 and
placing batches on the devices as the training loop does (`pipeline.device_batches`, 2 ahead).
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from tests.data.images import photo

LEAK = "leaked shared_memory"

SCRIPT = textwrap.dedent("""
    import os
    import signal
    import sys

    os.environ["JAX_PLATFORMS"] = "cpu"
    # Ctrl-C as in a terminal: a process started in the background by a non-interactive shell (a CI
    # runner, nohup) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)


    def main(root, exit_mode):
      from absl import flags

      flags.FLAGS.mark_as_parsed()  # grain's workers read absl flags
      import jax

      from coarse2fine.config_base import base_config
      from coarse2fine.data import pipeline
      from coarse2fine.data.datasets.registry import load_dataset

      config = base_config()
      config.data.name, config.data.dir, config.data.image_size = "image_folder", root, 32
      config.data.num_workers, config.data.views = 2, ("strong",)
      data = load_dataset(config.data)
      host = pipeline.train_dataset(data, config.data, views=config.data.views, global_batch_size=4, seed=0)
      mesh = jax.sharding.Mesh(jax.devices(), ("data",))
      iterator = iter(pipeline.device_batches(host, mesh, 2))
      for _ in range(3):
        batch = next(iterator)
      print("batches", batch.views.shape, flush=True)
      if exit_mode == "interrupt":  # Ctrl-C in the middle of training: SIGINT to the whole process group
        import time

        os.killpg(os.getpgrp(), signal.SIGINT)
        time.sleep(60)  # interrupted
      if exit_mode == "stop":
        iterator.close()  # `--config.train.stop_after_steps`'s early return, iterator closed or not


    if __name__ == "__main__":
      main(sys.argv[1], sys.argv[2])
    """)


@pytest.fixture(scope="module")
def jpeg_tree(tmp_path_factory):
  """ROOT/train/<coarse>/<fine>/*.jpg: 2 coarse x 2 fine classes, 4 JPEGs of 500x375 each."""
  root = tmp_path_factory.mktemp("jpegs")
  for c, coarse in enumerate(("animal", "vehicle")):
    for f in range(2):
      folder = root / "train" / coarse / f"{coarse}{f}"
      folder.mkdir(parents=True)
      for i in range(4):
        Image.fromarray(photo(375, 500, seed=100 * c + 10 * f + i)).save(folder / f"{i}.jpg", quality=90)
  return root


@pytest.mark.parametrize("exit_mode", ["normal", pytest.param("interrupt", marks=pytest.mark.slow),
                                       pytest.param("stop", marks=pytest.mark.slow)])  # ~25 s each: worker processes
def test_no_leaked_shared_memory(jpeg_tree, tmp_path, exit_mode):
  script = tmp_path / "run.py"
  script.write_text(SCRIPT)
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
  done = subprocess.run([sys.executable, str(script), str(jpeg_tree), exit_mode], capture_output=True, text=True,
                        timeout=300, env=env, cwd=tmp_path, start_new_session=True)  # its own process group
  assert "batches (4, 1, 32, 32, 3)" in done.stdout, done.stderr[-3000:]  # the workers did produce batches
  # An uncaught KeyboardInterrupt ends Python by SIGINT, after the exit handlers ran.
  assert done.returncode == (-signal.SIGINT if exit_mode == "interrupt" else 0), (done.stdout, done.stderr[-3000:])
  assert LEAK not in done.stderr, done.stderr[-3000:]


@pytest.mark.slow
def test_the_command_line_run_leaves_no_shared_memory(jpeg_tree, tmp_path):
  """The training command as a user runs it, on JPEG files with 2 workers, to its results."""
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  workdir = tmp_path / "run"
  done = subprocess.run(
      [sys.executable, "-m", "coarse2fine.main", "--config=configs/coarse_fashion_mnist.py", f"--workdir={workdir}",
       "--config.data.name=image_folder", f"--config.data.dir={jpeg_tree}", "--config.data.taxonomy=folders",
       "--config.data.test_fraction=0.25", "--config.data.num_workers=2", "--config.data.image_size=32",
       "--config.data.views=('strong',)", "--config.model.encoder=mlp", "--config.train.num_epochs=2",
       "--config.train.batch_size=4", "--config.eval.batch_size=8", "--config.eval.protocols=('classification',)"],
      capture_output=True, text=True, timeout=600, env=env, cwd=repo)
  assert done.returncode == 0, done.stderr[-3000:]
  assert (workdir / "results.json").exists()
  assert LEAK not in done.stderr, done.stderr[-3000:]
