"""A run from its config: checks, data, method and a fresh sharded state; a finished run's config and state.

`setup_run(config)` builds everything the loop (`engine.loop`) needs before the first step;
`load_run_config` and `restore_newest` read back what a run wrote to its workdir, for the
evaluator, the figures, the Python API and other runs (`features_from_checkpoint`, FALCON's
and SCAN's neighbours from another run's features).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from coarse2fine import models, storage
from coarse2fine.data import DATASETS, HierarchicalData, checks, load_dataset, pipeline
from coarse2fine.engine import optim, sharding
from coarse2fine.engine.checkpointing import Checkpointer, comparable_config, config_differences, without_added_fields
from coarse2fine.engine.hooks import check_hooks_run
from coarse2fine.engine.reporting import metrics_table, write_json_atomically, write_text_atomically
from coarse2fine.engine.train_state import TrainState
from coarse2fine.evaluation.evaluator import Evaluator, make_predict_step, predict_split
from coarse2fine.evaluation.feasibility import check_protocols
from coarse2fine.methods import METHODS, Method, build_method, import_method_modules, method_class
from coarse2fine.methods.common import estimate_k
from coarse2fine.models import pretrained

EMBEDDERS = ("none", "fc", "mlp")
ESTIMATE_FILE = "estimate_k.json"  # in the workdir: the fine-class estimate of a run whose count field is "estimate"


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Fails early, before any data is read, on names no table knows."""
  import_method_modules(config.get("method_modules", ()))  # where methods from outside the library register
  checks = [
      ("method", config.method, METHODS),
      ("data.name", config.data.name, DATASETS),
      ("model.encoder", config.model.encoder, models.ENCODERS),
      ("model.embedder", config.model.embedder, EMBEDDERS),
      ("model.linear_init", config.model.get("linear_init", "auto"), models.LINEAR_INITS),
      ("optimizer.name", config.optimizer.name, optim.OPTIMIZERS),
      ("optimizer.schedule", config.optimizer.schedule, optim.SCHEDULES),
  ]
  for field, value, known in checks:
    if value not in known:
      raise ValueError(f"Unknown {field} {value!r}; choose one of {sorted(known)}.")
  if config.train.num_epochs <= 0 or config.train.batch_size <= 0:
    raise ValueError("train.num_epochs and train.batch_size must be positive.")
  count_field = method_class(config.method).fine_count_field
  if count_field:
    estimate_k.check_fine_count(count_field, _field(config, count_field))
    if _field(config, count_field) == estimate_k.ESTIMATE:
      estimate_k.check_settings(config.estimate_k.criterion, config.estimate_k.k_max)
  pretrained.parse_spec(config.model.get("init_from", ""))  # a malformed spec fails here, a missing file in setup_run
  if config.data.get("normalization", "dataset") not in pretrained.NORMALIZATIONS:
    raise ValueError(f"Unknown data.normalization {config.data.normalization!r}; choose one of "
                     f"{list(pretrained.NORMALIZATIONS)}.")


def _field(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def resolve_fine_count(config: ml_collections.ConfigDict, data: HierarchicalData,
                       run_features: Optional[Callable[[str], np.ndarray]] = None,
                       recorded: Optional[dict] = None) -> tuple[ml_collections.ConfigDict, Optional[dict]]:
  """(config, estimate record): the config the method is built from, and the estimate when one was asked for.

  Where the method's `fine_count_field` holds "estimate", the children of every coarse class are
  estimated (`methods.common.estimate_k`, settings in `config.estimate_k`) and a copy of the config
  gets their total there; the record (per coarse class, total, the truth when known) goes to the
  terminal and results.json. `recorded`: an earlier record of this run (a resume), used instead of estimating.
  """
  count_field = method_class(config.method).fine_count_field
  if not count_field or _field(config, count_field) != estimate_k.ESTIMATE:
    return config, None
  if recorded is None:
    estimate = estimate_k.estimate_for_training(data, config.estimate_k, config.seed, run_features)
    recorded = {**estimate.record(estimate_k.true_children(data)), "features": config.estimate_k.features}
  resolved = copy.deepcopy(config)
  *path, leaf = count_field.split(".")
  _field(resolved, ".".join(path))[leaf] = int(recorded["total"])
  return resolved, recorded


def read_estimate(workdir: str) -> Optional[dict]:
  """The fine-class estimate recorded in `workdir` (ESTIMATE_FILE), or None."""
  path = storage.join(workdir, ESTIMATE_FILE)
  return json.loads(storage.read_text(path)) if storage.isfile(path) else None


def create_train_state(method: Method, config: ml_collections.ConfigDict, input_shape: tuple[int, ...],
                       mesh, schedule, weights: Optional[pretrained.Source] = None) -> TrainState:
  """Initialises the state directly with replicated shardings (born on the devices).

  `weights` (`pretrained.load_source(config.model.init_from)`) replace the encoder's freshly
  initialised params and BatchNorm statistics before the optimizer state and the method's extra
  state (EMA teachers, momentum encoders) are made from them; heads stay fresh.
  """
  tx = optim.make_optimizer(config.optimizer, schedule)
  init_rng, step_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  sample = jnp.zeros((1, *input_shape), jnp.float32)
  encoder = None
  if weights is not None:
    keep_fresh = tuple(config.model.get("init_fresh", ()))
    # Shapes suffice, unless some submodules keep their initial values (then computed on the host).
    initialise = (jax.jit(method.init_variables) if keep_fresh
                  else functools.partial(jax.eval_shape, method.init_variables))
    shapes = initialise(init_rng, sample)
    if "encoder" not in shapes["params"]:
      raise ValueError(f"Method {config.method!r} has no submodule named 'encoder' to load model.init_from into.")
    encoder = pretrained.match(weights, shapes["params"]["encoder"],
                               shapes.get("batch_stats", {}).get("encoder", {}), config.model.encoder, keep_fresh)

  def init(init_rng, step_rng, encoder):
    variables = method.init_variables(init_rng, sample)
    if encoder is not None:
      variables = {**variables, "params": {**variables["params"], "encoder": encoder[0]}}
      if encoder[1]:
        variables["batch_stats"] = {**variables["batch_stats"], "encoder": encoder[1]}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(variables["params"]),
        rng=step_rng,
        extra=method.init_extra(variables),
        tx=tx,
    )

  return jax.jit(init, out_shardings=sharding.replicated(mesh))(init_rng, step_rng, encoder)


def abstract_like(state: TrainState) -> TrainState:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


class Run(NamedTuple):
  """Everything built from a config before the first step."""

  mesh: Mesh
  data: HierarchicalData
  method: Method
  schedule: optax.Schedule
  state: TrainState
  steps_per_epoch: int
  total_steps: int
  dataset_normalised: Optional[HierarchicalData] = None  # `data` with the dataset's own mean/std (other runs' inputs)
  config: Optional[ml_collections.ConfigDict] = None  # the method's config: a count field's "estimate" resolved
  fine_count_estimate: Optional[dict] = None  # the estimate's record (`resolve_fine_count`), or None


def setup_run(config: ml_collections.ConfigDict, data: Optional[HierarchicalData] = None,
              for_training: bool = True, init_pretrained: Optional[bool] = None,
              recorded_estimate: Optional[dict] = None, workdir: Optional[str] = None) -> Run:
  """Validates the config, loads the data, builds the method and a fresh sharded state.

  `data` (e.g. a user's arrays, `coarse2fine.api`) is used as given instead of
  `load_dataset(config.data)`: the loader's own steps (data.val_fraction, data.train_examples,
  data.extra_taxonomies) are not applied to it. Without `for_training` (evaluating, plotting,
  loading a finished run) the training batch need not divide this machine's devices.
  `init_pretrained` (default: `for_training`) loads `model.init_from` into the encoder; its file
  is read before the data, so a missing one stops the run at once. The inputs are normalised as
  `data.normalization` resolves (`pretrained.apply_normalization`). A count field set to "estimate"
  is estimated here, before the method exists (`resolve_fine_count`; `recorded_estimate` reuses a record).
  `workdir` (a finished run's): a relative data.path or data.taxonomy naming a file in it is read from there
  (`workdir_data_config`; the Python API's runs keep their arrays there).
  """
  validate_config(config)
  mesh = sharding.make_mesh()
  if for_training:
    sharding.check_batch_size(config.train.batch_size, mesh)
  init_pretrained = for_training if init_pretrained is None else init_pretrained
  weights = None
  if init_pretrained and config.model.get("init_from", ""):
    weights = pretrained.load_source(config.model.init_from)
  if data is None:
    data = load_dataset(workdir_data_config(config.data, workdir))
  dataset_normalised = data
  data = pretrained.apply_normalization(data, config)
  if for_training:
    checks.check_inputs(data)  # NaN, inf, huge values: refused here, not as a non-finite loss steps later
  if config.eval.split not in ("test", "val") or (config.eval.split == "val" and data.val is None):
    raise ValueError(f"eval.split={config.eval.split!r}: use 'test', or 'val' with data.val_fraction > 0.")
  run_features = functools.partial(features_from_checkpoint, data=dataset_normalised,
                                   batch_size=config.eval.batch_size)
  config, estimate = resolve_fine_count(config, data, run_features, recorded_estimate)
  method = build_method(config, data)
  steps_per_epoch = pipeline.steps_per_epoch(data, config.train.batch_size)
  total_steps = config.train.num_epochs * steps_per_epoch
  if for_training:  # before the first step, not after the last
    check_protocols(config, data, type(method))
    check_hooks_run(method.host_hooks(), steps_per_epoch, total_steps)
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch, total_steps)
  state = create_train_state(method, config, data.input_shape, mesh, schedule, weights)
  return Run(mesh, data, method, schedule, state, steps_per_epoch, total_steps, dataset_normalised, config, estimate)


def workdir_data_config(data_config: ml_collections.ConfigDict,
                        workdir: Optional[str]) -> ml_collections.ConfigDict:
  """`data_config` with a relative data.path / data.taxonomy that names a file in `workdir` made to point there.

  The run's config itself keeps the relative path (the checkpoint records it), so a workdir copied elsewhere
  (`coarse2fine.api.Model.save`) reads its own copy of the data.
  """
  if workdir is None:
    return data_config
  resolved = {}
  for field in ("path", "taxonomy"):
    value = data_config.get(field, "")
    if isinstance(value, str) and value and not value.startswith("/") and "://" not in value:
      if storage.isfile(storage.join(workdir, value)):
        resolved[field] = storage.join(workdir, value)
  if not resolved:
    return data_config
  data_config = copy.deepcopy(data_config)
  for field, value in resolved.items():
    data_config[field] = value
  return data_config


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run wrote to `workdir/config.json` when it started."""
  path = storage.join(workdir, "config.json")
  if not storage.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} the workdir of a coarse2fine training run?")
  return ml_collections.ConfigDict(json.loads(storage.read_text(path)))


def restore_newest(workdir: str, config: ml_collections.ConfigDict, fresh_state: TrainState) -> TrainState:
  """The newest checkpoint's state in `workdir`, shaped and sharded like `fresh_state`."""
  checkpointer = Checkpointer(workdir, config)
  try:
    restored = checkpointer.restore(abstract_like(fresh_state))
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"No checkpoint in {checkpointer.directory}: train that run first, or fix the path.")
  return restored[0]


def features_from_checkpoint(workdir: str, data: HierarchicalData, batch_size: int,
                             key: str = "features") -> np.ndarray:
  """[N_train, D] float32: `key` outputs of the run in `workdir` (newest checkpoint, eval mode) on `data.train`.

  The run's model and method come from its `config.json`; the inputs are `data`'s own
  training split, unaugmented, in order, so the rows line up with `data.train` whatever
  split the other run trained on (its input shape must fit these data). `data` carries the
  dataset's own mean and std (`Run.dataset_normalised`); the inputs are normalised as that run's
  `data.normalization` says.
  """
  source_config = load_run_config(workdir)
  mesh = sharding.make_mesh()
  data = pretrained.apply_normalization(data, source_config)  # the inputs as that run saw them
  method = build_method(source_config, data)
  schedule = optim.make_schedule(source_config.optimizer, 1, 1)
  state = restore_newest(workdir, source_config,
                         create_train_state(method, source_config, data.input_shape, mesh, schedule))
  outputs = predict_split(make_predict_step(method, mesh, data), state, data.train, mesh, batch_size, keys=(key,))
  if key not in outputs:
    raise ValueError(f"Method {source_config.method!r} of {workdir!r} predicts no {key!r}.")
  return outputs[key].astype(np.float32)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Evaluates the newest checkpoint in `workdir`; writes `eval.json` and `eval.md` there."""
  config = pretrained.with_resolved_normalization(config)  # as the run recorded it
  # Before any computation: results that could not be written are not computed. (A missing
  # workdir is left alone here; restoring names it.)
  if jax.process_index() == 0 and storage.exists(workdir):
    storage.check_writable(workdir)
  run = setup_run(config, for_training=False, recorded_estimate=read_estimate(workdir), workdir=workdir)
  check_protocols(config, run.data, type(run.method))
  state = restore_newest(workdir, run.config, run.state)  # the checkpoint records a count's "estimate" resolved
  metrics = Evaluator(run.method, run.data, run.mesh, run.config)(state, config.eval.split)
  step = int(jax.device_get(state.step))
  results = {"method": config.method, "dataset": config.data.name, "taxonomy": run.data.taxonomy.name,
             "step": step, "metrics": metrics}
  if jax.process_index() == 0:
    table = metrics_table(metrics, run.method.headline_metrics)
    write_json_atomically(storage.join(workdir, "eval.json"), results)
    write_text_atomically(storage.join(workdir, "eval.md"),
                          f"# {config.method} on {config.data.name} ({run.data.taxonomy.name}), step {step}\n\n"
                          f"{table}\n")
    print(table)
  return results


def finished_run(config, workdir: str) -> Optional[dict]:
  """results.json of `workdir` when that run is finished under this same config, else None.

  Finished: results.json records the step of the newest checkpoint, and config.json equals
  `config` in every field that shapes the run or its evaluation (the checkpoint and logging
  settings may differ).
  """
  paths = {name: storage.join(workdir, name) for name in ("results.json", "config.json", "checkpoints")}
  if not (storage.isfile(paths["results.json"]) and storage.isfile(paths["config.json"])
          and storage.isdir(paths["checkpoints"])):
    return None
  steps = [int(name) for name in storage.listdir(paths["checkpoints"]) if name.isdigit()]
  try:
    results = json.loads(storage.read_text(paths["results.json"]))
    saved = json.loads(storage.read_text(paths["config.json"]))
  except ValueError:
    return None  # unreadable files: the run's own checks report them
  if not steps or results.get("steps") != max(steps):
    return None
  current = pretrained.with_resolved_normalization(config)
  saved_config = pretrained.with_resolved_normalization(ml_collections.ConfigDict(saved))
  diffs = config_differences(comparable_config(saved_config), comparable_config(current))
  diffs += config_differences({"eval": json.loads(saved_config.eval.to_json_best_effort())},  # lists, not tuples
                              {"eval": json.loads(current.eval.to_json_best_effort())})
  count_field = method_class(config.method).fine_count_field  # "estimate" was recorded as the K it resolved to
  diffs = [d for d in diffs if not (d[0] == count_field and d[2] == "estimate")]
  return None if without_added_fields(diffs, paths["config.json"]) else results
