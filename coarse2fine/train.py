"""`train_and_evaluate(config, workdir)`: the one library call behind the command line.

Read top to bottom: data, method (model + loss), train state, input pipeline (host stage,
device prefetch), jitted step (device augmentation, loss, update), loop with host hooks,
logging and checkpoints, evaluation, results.
"""

from __future__ import annotations

import json
import os
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from coarse2fine import models, optim, sharding
from coarse2fine.checkpointing import Checkpointer
from coarse2fine.data import DATASETS, HierarchicalData, load_dataset, pipeline
from coarse2fine.evaluation.evaluator import Evaluator, make_predict_step, predict_split
from coarse2fine.hooks import HookContext
from coarse2fine.methods import METHODS, Method, build_method, make_train_step
from coarse2fine.metrics_writer import MetricWriter, ProgressBar
from coarse2fine.reporting import metrics_table, write_json_atomically, write_text_atomically
from coarse2fine.train_state import TrainState

EMBEDDERS = ("none", "fc", "mlp")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Fails early, before any data is read, on names no table knows."""
  checks = [
      ("method", config.method, METHODS),
      ("data.name", config.data.name, DATASETS),
      ("model.encoder", config.model.encoder, models.ENCODERS),
      ("model.embedder", config.model.embedder, EMBEDDERS),
      ("optimizer.name", config.optimizer.name, optim.OPTIMIZERS),
      ("optimizer.schedule", config.optimizer.schedule, optim.SCHEDULES),
  ]
  for field, value, known in checks:
    if value not in known:
      raise ValueError(f"Unknown {field} {value!r}; choose one of {sorted(known)}.")
  if config.train.num_epochs <= 0 or config.train.batch_size <= 0:
    raise ValueError("train.num_epochs and train.batch_size must be positive.")


def create_train_state(method: Method, config: ml_collections.ConfigDict, input_shape: tuple[int, ...],
                       mesh, schedule) -> TrainState:
  """Initialises the state directly with replicated shardings (born on the devices)."""
  tx = optim.make_optimizer(config.optimizer, schedule)
  init_rng, step_rng = jax.random.split(jax.random.PRNGKey(config.seed))

  def init(init_rng, step_rng):
    variables = method.init_variables(init_rng, jnp.zeros((1, *input_shape), jnp.float32))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(variables["params"]),
        rng=step_rng,
        extra=method.init_extra(variables),
        tx=tx,
    )

  return jax.jit(init, out_shardings=sharding.replicated(mesh))(init_rng, step_rng)


def abstract_like(state: TrainState) -> TrainState:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def _mean_metrics(history: list[dict]) -> dict[str, float]:
  fetched = jax.device_get(history)
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


class Run(NamedTuple):
  """Everything built from a config before the first step."""

  mesh: Mesh
  data: HierarchicalData
  method: Method
  schedule: optax.Schedule
  state: TrainState
  steps_per_epoch: int
  total_steps: int


def setup_run(config: ml_collections.ConfigDict, data: Optional[HierarchicalData] = None) -> Run:
  """Validates the config, loads the data, builds the method and a fresh sharded state.

  `data` (e.g. a user's arrays, `coarse2fine.api`) is used as given instead of
  `load_dataset(config.data)`: the loader's own steps (data.val_fraction, data.train_examples,
  data.extra_taxonomies) are not applied to it.
  """
  validate_config(config)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.train.batch_size, mesh)
  sharding.check_batch_size(config.eval.batch_size, mesh, "eval.batch_size")
  if data is None:
    data = load_dataset(config.data)
  if config.eval.split not in ("test", "val") or (config.eval.split == "val" and data.val is None):
    raise ValueError(f"eval.split={config.eval.split!r}: use 'test', or 'val' with data.val_fraction > 0.")
  method = build_method(config, data)
  steps_per_epoch = pipeline.steps_per_epoch(data, config.train.batch_size)
  total_steps = config.train.num_epochs * steps_per_epoch
  schedule = optim.make_schedule(config.optimizer, steps_per_epoch, total_steps)
  state = create_train_state(method, config, data.input_shape, mesh, schedule)
  return Run(mesh, data, method, schedule, state, steps_per_epoch, total_steps)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       data: Optional[HierarchicalData] = None) -> Optional[dict]:
  """Trains `config.method` on `config.data`, evaluates, writes `workdir/results.json`.

  Resumes from the newest checkpoint in `workdir`. Returns the results dict, or None
  when `train.stop_after_steps` stopped the run early. `data`: in-memory data used instead
  of loading `config.data` (see `setup_run`); the config still records the run's settings.
  """
  is_main = jax.process_index() == 0
  run = setup_run(config, data)
  mesh, data, method, state, schedule = run.mesh, run.data, run.method, run.state, run.schedule
  steps_per_epoch, total_steps = run.steps_per_epoch, run.total_steps

  neighbours = method.neighbour_sampling()
  host_batches = pipeline.train_dataset(
      data, config.data, views=method.views, global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(), neighbours=neighbours)
  iterator = iter(pipeline.device_batches(host_batches, mesh, config.data.device_prefetch))
  augment = pipeline.make_device_augment(data, config.data, method.views, config.seed,
                                         with_neighbours=neighbours is not None)
  checkpointer = Checkpointer(workdir, config)
  if is_main:
    write_json_atomically(os.path.join(workdir, "config.json"), config.to_dict())
  context = HookContext(config=config, data=data, mesh=mesh, steps_per_epoch=steps_per_epoch, host_state={})
  restored = checkpointer.restore(abstract_like(state), iterator)
  if restored is not None:
    state, context.host_state = restored
  start_step = int(jax.device_get(state.step))

  train_step = jax.jit(make_train_step(method, schedule, augment), donate_argnums=(0,))
  evaluator = Evaluator(method, data, mesh, config)
  hooks = method.host_hooks()
  writer = MetricWriter(workdir, enabled=is_main)
  progress = ProgressBar(total_steps, config.train.batch_size, enabled=is_main and config.logging.progress)
  eval_every = config.eval.every_epochs * steps_per_epoch

  def run_due_hooks(state: TrainState, completed_steps: int) -> TrainState:
    for hook in hooks:
      if hook.due(completed_steps, steps_per_epoch):
        state = hook.fn(state, context)
    if context.metrics:
      writer.write(completed_steps, context.metrics)
      context.metrics = {}
    return state

  if start_step == 0:
    state = run_due_hooks(state, 0)
  history: list[dict] = []
  start_time = time.perf_counter()
  for step in range(start_step, total_steps):
    state, metrics = train_step(state, next(iterator))  # a global batch, already on the devices
    history.append(metrics)
    done = step + 1
    if done % config.train.log_every_steps == 0 or done == total_steps:
      scalars = _mean_metrics(history)
      history = []
      if not np.isfinite(scalars["train/loss"]):
        raise FloatingPointError(f"Non-finite training loss {scalars['train/loss']} at step {done}.")
      scalars["train/epoch"] = done / steps_per_epoch
      writer.write(done, scalars)
      progress.update(done, scalars["train/loss"])
    if done < total_steps:  # hooks prepare the steps that follow; after the last one there are none
      state = run_due_hooks(state, done)
    if eval_every and done % eval_every == 0 and done < total_steps:
      writer.write(done, evaluator(state, config.eval.split))
    stopping = 0 < config.train.stop_after_steps <= done < total_steps
    checkpointer.save(done, state, iterator, context.host_state, force=stopping or done == total_steps)
    if stopping:
      break
  progress.close()
  elapsed = time.perf_counter() - start_time
  checkpointer.close()
  if 0 < config.train.stop_after_steps < total_steps and int(jax.device_get(state.step)) < total_steps:
    writer.close()
    return None

  metrics = evaluator(state, config.eval.split)
  writer.write(total_steps, metrics)
  writer.close()
  results = {
      "method": config.method,
      "dataset": config.data.name,
      "taxonomy": data.taxonomy.name,
      "split": config.eval.split,
      "metrics": metrics,
      "steps": total_steps,
      "train_seconds_this_session": elapsed,
  }
  if is_main:
    write_json_atomically(os.path.join(workdir, "results.json"), results)
    print(f"\n{config.method} on {config.data.name} ({data.taxonomy.name}), {total_steps} steps:")
    print(metrics_table(metrics))
  return results


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run wrote to `workdir/config.json` when it started."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} the workdir of a coarse2fine training run?")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


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
  split the other run trained on (its input shape and normalisation must fit these data).
  """
  source_config = load_run_config(workdir)
  mesh = sharding.make_mesh()
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
  run = setup_run(config)
  state = restore_newest(workdir, config, run.state)
  metrics = Evaluator(run.method, run.data, run.mesh, config)(state, config.eval.split)
  step = int(jax.device_get(state.step))
  results = {"method": config.method, "dataset": config.data.name, "taxonomy": run.data.taxonomy.name,
             "step": step, "metrics": metrics}
  if jax.process_index() == 0:
    table = metrics_table(metrics)
    write_json_atomically(os.path.join(workdir, "eval.json"), results)
    write_text_atomically(os.path.join(workdir, "eval.md"),
                          f"# {config.method} on {config.data.name} ({run.data.taxonomy.name}), step {step}\n\n"
                          f"{table}\n")
    print(table)
  return results
