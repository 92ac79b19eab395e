"""What produced a run's results: code version, git commit, JAX, devices and a hash of the config.

`describe(config)` is the `provenance` entry of `results.json`:
  coarse2fine: the installed package version,
  git_commit, git_dirty: HEAD of the git checkout the package is imported from and whether its tracked
    files differ from HEAD (both None for an installed copy outside a checkout, or without git),
  jax, jaxlib: versions,
  devices: platform ("cpu", "gpu", "tpu"), kind (e.g. "NVIDIA H100 80GB HBM3"), count (all processes),
    local_count, processes,
  config_sha256: sha256 of the config's canonical JSON (`config_sha256`), which the run's config.json
    gives back: `sha256(json.dumps(json.load(f), sort_keys=True, separators=(",", ":")))`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
from typing import Any, Mapping, Optional

import jax
import ml_collections

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../coarse2fine


def config_sha256(config: ml_collections.ConfigDict | Mapping[str, Any]) -> str:
  """sha256 (hex) of the config as canonical JSON: sorted keys, no spaces, tuples as lists."""
  as_dict = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
  canonical = json.dumps(json.loads(json.dumps(as_dict)), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def package_version() -> Optional[str]:
  try:
    return importlib.metadata.version("coarse2fine")
  except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    return None


def _git(*args: str) -> Optional[str]:
  try:
    done = subprocess.run(["git", "-C", PACKAGE_DIR, *args], capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):  # no git, or a hung file system
    return None
  return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> tuple[Optional[str], Optional[bool]]:
  """(HEAD commit, whether tracked files differ from it) of the checkout holding this package; (None, None)
  outside one. The package's own file must be tracked there: an install inside some other repository
  (a virtual environment in a project's tree) is not a checkout of coarse2fine."""
  if _git("ls-files", "--error-unmatch", "__init__.py") is None:
    return None, None
  commit = _git("rev-parse", "HEAD")
  status = _git("status", "--porcelain", "--untracked-files=no")
  return commit, (None if status is None else bool(status))


def devices() -> dict[str, Any]:
  first = jax.devices()[0]
  return {"platform": first.platform, "kind": first.device_kind, "count": jax.device_count(),
          "local_count": jax.local_device_count(), "processes": jax.process_count()}


def describe(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The `provenance` entry of results.json (see the module doc)."""
  commit, dirty = git_state()
  return {"coarse2fine": package_version(), "git_commit": commit, "git_dirty": dirty, "jax": jax.__version__,
          "jaxlib": importlib.metadata.version("jaxlib"), "devices": devices(),
          "config_sha256": config_sha256(config)}
