"""`gcs`: a Cloud Storage emulator on 127.0.0.1 for this test session, reached only through the standard variables.

The library and every subprocess find it through `STORAGE_EMULATOR_HOST` (gcsfs, google-cloud-storage,
tensorboardX) and `TENSORSTORE_GCS_HTTP_URL` (tensorstore, orbax's arrays); with these unset the same
code and commands talk to real Cloud Storage. `GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false` skips gcsfs's
bucket-type probe (a control-plane API the emulator lacks), `GOOGLE_CLOUD_PROJECT` names a project for
google-cloud-storage clients without credentials.
"""

import os
import socket
import subprocess
import sys
import uuid

import pytest

BUCKET = "c2f-test"
EMULATOR = os.path.join(os.path.dirname(__file__), "gcs_emulator.py")


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
  """Starts the emulator (one per test process), sets the variables, and tears both down after the session."""
  pytest.importorskip("gcp_storage_emulator")
  port = _free_port()
  # Its stderr goes to a file: a pipe nobody reads would fill up and stall the server mid-request.
  log = tmp_path_factory.mktemp("gcs_emulator") / "stderr.log"
  with open(log, "w") as stderr:
    process = subprocess.Popen([sys.executable, EMULATOR, str(port), BUCKET], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=stderr, text=True)
  if process.stdout.readline().strip() != "ready":
    process.kill()
    raise RuntimeError(f"The Cloud Storage emulator did not start: {log.read_text()[-2000:]}")
  url = f"http://127.0.0.1:{port}"
  variables = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
               "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "GOOGLE_CLOUD_PROJECT": "c2f-test"}
  saved = {name: os.environ.get(name) for name in variables}
  os.environ.update(variables)  # before gcsfs is imported: it reads GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT then
  try:
    pytest.importorskip("gcsfs")
    yield url
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
    process.stdin.close()
    try:
      process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      process.kill()


@pytest.fixture
def gcs_dir(gcs_emulator):
  """A fresh gs:// folder in the emulator's bucket."""
  return f"gs://{BUCKET}/{uuid.uuid4().hex[:12]}"


def gcs_fs():
  """gcsfs, to read and write the emulator's objects independently of the library (no listing cache)."""
  import gcsfs

  return gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True, cache_timeout=0)
