"""`train_and_evaluate(config, workdir)`: the one library call behind the command line.

Read top to bottom: data, method (model + loss), train state (`engine.runs.setup_run`), input
pipeline (host stage, device prefetch), jitted step (device augmentation, loss, update), loop
with host hooks, logging and checkpoints, evaluation, results.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Optional

import flax.serialization
import jax
import ml_collections
import numpy as np

from coarse2fine import storage
from coarse2fine.data import HierarchicalData, pipeline
from coarse2fine.engine import provenance
from coarse2fine.engine.checkpoint_digests import first_nonfinite, host_arrays
from coarse2fine.engine.checkpointing import NONFINITE_HINT, Checkpointer
from coarse2fine.engine.hooks import HookContext
from coarse2fine.engine.interrupt import Interrupted, StopRequests
from coarse2fine.engine.metrics_writer import MetricWriter
from coarse2fine.engine.progress import ProgressBar, banner, stage
from coarse2fine.engine.reporting import (
  figures_wanted,
  headline_summary,
  metrics_table,
  write_figures,
  write_json_atomically,
)
from coarse2fine.engine.runs import (
  ESTIMATE_FILE,
  abstract_like,
  create_train_state,
  features_from_checkpoint,
  read_estimate,
  setup_run,
  validate_config,
)
from coarse2fine.engine.train_state import TrainState
from coarse2fine.engine.workdir_lock import WorkdirLock
from coarse2fine.evaluation.evaluator import Evaluator
from coarse2fine.methods import make_train_step, method_config_sections
from coarse2fine.methods.base import NONFINITE
from coarse2fine.methods.common.estimate_k import describe
from coarse2fine.models import pretrained


def _mean_metrics(history: list[dict]) -> dict[str, float]:
  fetched = jax.device_get(history)
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0] if k != NONFINITE}


def _check_finite(flags: list, done: int, state: TrainState, saved: Optional[int]) -> None:
  """Stops the run at the first step whose loss, gradient norm or new state is not finite."""
  flags = np.asarray(jax.device_get(flags), bool)
  if not flags.any():
    return
  first = done - len(flags) + 1 + int(flags.argmax())
  path = first_nonfinite(host_arrays(flax.serialization.to_state_dict(state)))
  where = f"first in {path}" if path else "in the loss or the gradients"
  raise FloatingPointError(f"Non-finite values from step {first} ({where} at step {done}); nothing after step "
                           f"{saved} was saved. {NONFINITE_HINT}")


def _has_checkpoints(workdir: str) -> bool:
  directory = storage.join(workdir, "checkpoints")
  return storage.isdir(directory) and any(name.isdigit() for name in storage.listdir(directory))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       data: Optional[HierarchicalData] = None) -> Optional[dict]:
  """Trains `config.method` on `config.data`, evaluates, writes `workdir/results.json`.

  Resumes from the newest checkpoint in `workdir`. Returns the results dict, or None
  when `train.stop_after_steps` stopped the run early. `data`: in-memory data used instead
  of loading `config.data` (see `setup_run`); the config still records the run's settings.
  """
  is_main = jax.process_index() == 0
  validate_config(config)  # a bad config fails before the workdir is touched
  if is_main:  # before any computation: a run that could not save its work does not start
    storage.check_writable(workdir)
  config = pretrained.with_resolved_normalization(config)  # recorded and checked on resume as resolved
  with WorkdirLock(workdir, enabled=is_main) as lock:
    return _train_and_evaluate_locked(config, workdir, data, lock)


def _train_and_evaluate_locked(config: ml_collections.ConfigDict, workdir: str, data: Optional[HierarchicalData],
                               lock: WorkdirLock) -> Optional[dict]:
  is_main = jax.process_index() == 0
  # A resumed run restores its encoder from the checkpoint: model.init_from is read only for a fresh start.
  resuming = _has_checkpoints(workdir)
  # A count field set to "estimate" is estimated once, before the first step; a resume reuses that record.
  run = setup_run(config, data, init_pretrained=not resuming,
                  recorded_estimate=read_estimate(workdir) if resuming else None)
  estimate = run.fine_count_estimate
  if estimate is not None and is_main:
    print(describe(estimate, run.data.taxonomy.coarse_names), flush=True)
    write_json_atomically(storage.join(workdir, ESTIMATE_FILE), estimate)
  mesh, data, method, state, schedule = run.mesh, run.data, run.method, run.state, run.schedule
  steps_per_epoch, total_steps = run.steps_per_epoch, run.total_steps

  # FALCON and SCAN may mine neighbours on another run's features (`checkpoint:<workdir>`).
  neighbours = method.neighbour_sampling(
      # normalised as the other run was (`features_from_checkpoint`), from the dataset's own statistics
      functools.partial(features_from_checkpoint, data=run.dataset_normalised,
                        batch_size=config.eval.batch_size))
  augment = pipeline.make_device_augment(data, config.data, method.views, config.seed,
                                         with_neighbours=neighbours is not None)
  checkpointer = Checkpointer(workdir, run.config)  # a count field's "estimate" saved as the K it resolved to
  context = HookContext(config=config, data=data, mesh=mesh, steps_per_epoch=steps_per_epoch, host_state={},
                        printer=lambda message: None)  # printing on the main process is set with the bar below
  # The checkpoint's config is checked before anything is written: a refused resume changes no file.
  restored = checkpointer.restore(abstract_like(state), set_aside_damaged=True)
  if restored is not None:
    state, context.host_state = restored
  elif resuming and config.model.init_from:  # no checkpoint after all (an empty step folder): start pretrained
    state = create_train_state(method, config, data.input_shape, mesh, schedule,
                               pretrained.load_source(config.model.init_from))
  start_step = int(jax.device_get(state.step))
  if is_main:
    print(banner(run, config, workdir, start_step, jax.devices(), jax.process_count()), flush=True)
  # Step s trains on global batch s, whatever the number of processes: the data position is the step.
  host_batches = pipeline.train_dataset(
      data, config.data, views=method.views, global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(), neighbours=neighbours,
      start_batch=start_step)
  iterator = iter(pipeline.device_batches(host_batches, mesh, config.data.device_prefetch))
  if is_main:
    lock.record_holder()
    # the method's config: a count field's "estimate" recorded as the K it resolved to (what `load` rebuilds)
    write_json_atomically(storage.join(workdir, "config.json"), run.config.to_dict())

  train_step = jax.jit(make_train_step(method, schedule, augment), donate_argnums=(0,))
  evaluator = Evaluator(method, data, mesh, run.config)
  hooks = method.host_hooks()
  writer = MetricWriter(workdir, enabled=is_main, resume_step=start_step)
  # TensorBoard text and hyper-parameters: the run's config, without the other methods' sections
  writer.write_config(start_step, run.config, set(method_config_sections()) - set(type(method).config_sections()))
  progress = ProgressBar(total_steps, config.train.batch_size, enabled=is_main and config.logging.progress,
                         start_step=start_step)
  if is_main:
    context.printer = progress.write  # the methods' event lines, above the bar
  stops = StopRequests(jax.process_count(), sync_every=config.train.log_every_steps,
                       on_request=lambda signum: is_main and progress.write(
                           "stopping: saving a checkpoint at the next step (Ctrl-C again to stop at once)"))
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
  unchecked: list = []  # the steps' non-finite flags since the last check
  start_time = time.perf_counter()
  try:
    stops.__enter__()  # SIGINT and SIGTERM stop the run at a step boundary, with a checkpoint
    for step in range(start_step, total_steps):
      state, metrics = train_step(state, next(iterator))  # a global batch, already on the devices
      progress.advance()
      history.append(metrics)
      unchecked.append(metrics[NONFINITE])
      done = step + 1
      stopping = 0 < config.train.stop_after_steps <= done < total_steps
      interrupted = done < total_steps and stops.stop_at(done)
      logging_due = done % config.train.log_every_steps == 0 or done == total_steps
      if logging_due or checkpointer.due(done) or stopping or interrupted:  # before anything is logged or saved
        _check_finite(unchecked, done, state, checkpointer.latest_step())
        unchecked = []
      if logging_due:
        scalars = _mean_metrics(history)
        history = []
        scalars["train/epoch"] = done / steps_per_epoch
        writer.write(done, scalars)
        progress.set_loss(scalars["train/loss"])
      if done < total_steps:  # hooks prepare the steps that follow; after the last one there are none
        state = run_due_hooks(state, done)
      if eval_every and done % eval_every == 0 and done < total_steps:
        eval_start = time.perf_counter()
        found = evaluator(state, config.eval.split)
        writer.write(done, found)
        if is_main:
          progress.write(f"step {done:,}: {config.eval.split} evaluation, {time.perf_counter() - eval_start:.0f} s: "
                         f"{headline_summary(found, method.headline_metrics)}")
      force = stopping or interrupted or done == total_steps
      if force or checkpointer.due(done):  # the log reaches the checkpoint's step before the checkpoint exists
        writer.flush()
      checkpointer.save(done, state, context.host_state, force=force)
      if interrupted:  # saved (the hooks due at `done` included, as any checkpoint): nothing after it runs
        raise Interrupted(done, stops.signum)
      if stopping:
        break
  except BaseException:
    stops.__exit__()
    progress.close()
    with contextlib.suppress(Exception):  # the error that stopped the run is the one to report
      checkpointer.close()  # finish the saves under way: the run resumes from them
      writer.close()
    raise
  stops.__exit__()
  progress.close()
  elapsed = time.perf_counter() - start_time
  checkpointer.close()
  if 0 < config.train.stop_after_steps < total_steps and int(jax.device_get(state.step)) < total_steps:
    writer.close()
    return None

  with stage(f"evaluating on the {config.eval.split} split ({', '.join(config.eval.protocols)})", enabled=is_main):
    metrics = evaluator(state, config.eval.split)
  writer.write(total_steps, metrics)
  writer.flush()  # the figures come after results.json
  results = {
      "method": config.method,
      "dataset": config.data.name,
      "taxonomy": data.taxonomy.name,
      "split": config.eval.split,
      "metrics": metrics,
      "steps": total_steps,
      "train_seconds_this_session": elapsed,
      "provenance": provenance.describe(run.config),  # code, devices, config hash (engine/provenance.py)
  }
  if estimate is not None:
    results["num_fine_estimate"] = estimate  # per coarse class, total, criterion, the truth when known
  if is_main:  # the table first: if results.json cannot be written, the numbers are still on the terminal
    print(f"\n{config.method} on {config.data.name} ({data.taxonomy.name}), {total_steps} steps:")
    print(metrics_table(metrics, method.headline_metrics), flush=True)
    write_json_atomically(storage.join(workdir, "results.json"), results)
    # a t-SNE fit: many seconds; no stage line where nothing is drawn (no matplotlib after the plain install)
    with stage("drawing the run's figures for TensorBoard", enabled=figures_wanted(config)):
      write_figures(writer, workdir, config, total_steps)  # plot_run's PNGs as TensorBoard images
  writer.close()
  return results
