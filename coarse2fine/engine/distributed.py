"""How a process joins a multi-process run: `jax.distributed.initialize` arguments from flags or environment.

Three ways, checked in this order:
  explicit: --coordinator_address=host:port --num_processes=N --process_id=i (or the environment
            variables C2F_COORDINATOR_ADDRESS, C2F_NUM_PROCESSES, C2F_PROCESS_ID, as the launch scripts set);
  auto:     --multihost alone: JAX's own detection (TPU pod metadata, SLURM's variables, ...);
  none:     a single process.
Joining switches JAX's CPU collectives to gloo, so CPU processes can all-reduce over TCP.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

ENV = {"coordinator_address": "C2F_COORDINATOR_ADDRESS", "num_processes": "C2F_NUM_PROCESSES",
       "process_id": "C2F_PROCESS_ID"}


def initialize_arguments(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
                         process_id: Optional[int] = None, multihost: bool = False,
                         environ: Mapping[str, str] = os.environ) -> Optional[dict]:
  """Keyword arguments for `jax.distributed.initialize`, {} for auto-detection, or None for one process.

  Flags win over the environment, field by field. Explicit settings must come all three together.
  """
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
  for field, variable in ENV.items():
    if given[field] is None and environ.get(variable, "") != "":
      given[field] = environ[variable]
  present = [f for f, v in given.items() if v is not None]
  if not present:
    return {} if multihost else None
  if len(present) != 3:
    missing = [f"--{f} (or ${ENV[f]})" for f in given if given[f] is None]
    raise ValueError(f"A multi-process run given {', '.join('--' + f for f in present)} also needs "
                     f"{', '.join(missing)}; or pass --multihost alone for JAX's auto-detection.")
  try:
    num, index = int(given["num_processes"]), int(given["process_id"])
  except ValueError as error:
    raise ValueError(f"num_processes and process_id must be integers, got {given['num_processes']!r} and "
                     f"{given['process_id']!r}.") from error
  if num < 1 or not 0 <= index < num:
    raise ValueError(f"process_id must lie in [0, num_processes); got process_id={index}, num_processes={num}.")
  address = str(given["coordinator_address"])
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"coordinator_address must be host:port, got {address!r}.")
  return {"coordinator_address": address, "num_processes": num, "process_id": index}


def initialize(arguments: Optional[dict]) -> None:
  """Joins the run `initialize_arguments` described (nothing for None)."""
  if arguments is None:
    return
  import jax

  # CPU processes need a collectives backend to reach each other (gloo, over TCP); the setting only
  # concerns the CPU client, so accelerator runs are unaffected. It must precede backend start-up.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**arguments)
