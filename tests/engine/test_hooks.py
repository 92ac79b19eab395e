"""Host hooks run when due, their state changes reach the next step, and resume keeps them."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine import methods
from coarse2fine.engine import loop
from coarse2fine.engine.hooks import HostHook
from coarse2fine.methods.supervised.method import Supervised


class CountingMethod(Supervised):
  """`coarse` plus a hook that records when it ran and writes a counter into the state."""

  calls: list = []

  def init_extra(self, variables):
    return {"hook_runs": jnp.zeros((), jnp.int32)}

  def loss(self, params, state, batch, rng):
    loss, aux = super().loss(params, state, batch, rng)
    aux.metrics["train/hook_runs"] = state.extra["hook_runs"].astype(jnp.float32)
    return loss, aux

  def host_hooks(self):
    def count(state, context):
      CountingMethod.calls.append(int(state.step))
      context.host_state["calls"] = context.host_state.get("calls", 0) + 1
      return state.replace(extra={"hook_runs": state.extra["hook_runs"] + 1})

    return [HostHook("count", count, every_steps=3, at_start=True)]


@pytest.fixture
def counting(monkeypatch, tiny_config):
  CountingMethod.calls = []
  monkeypatch.setitem(methods.METHODS, "counting", CountingMethod)
  tiny_config.method = "counting"
  tiny_config.train.log_every_steps = 1
  return tiny_config


def test_hook_runs_every_n_steps_and_the_next_step_sees_it(counting, tmp_path):
  loop.train_and_evaluate(counting, str(tmp_path))  # 16 steps
  assert CountingMethod.calls == [0, 3, 6, 9, 12, 15]
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines() if "train/loss" in l]
  seen = {l["step"]: l["train/hook_runs"] for l in lines}
  # Step s (1-based) ran after the hooks at steps 0, 3, ... < s had run.
  for step, runs in seen.items():
    assert runs == len([c for c in (0, 3, 6, 9, 12, 15) if c < step])


def test_hook_host_state_survives_resumption(counting, tmp_path):
  stopped = counting.copy_and_resolve_references()
  stopped.train.stop_after_steps = 7
  loop.train_and_evaluate(stopped, str(tmp_path))
  assert CountingMethod.calls == [0, 3, 6]
  loop.train_and_evaluate(counting, str(tmp_path))
  assert CountingMethod.calls == [0, 3, 6, 9, 12, 15]  # no re-run of the start hook
  from coarse2fine.engine.checkpointing import Checkpointer

  checkpointer = Checkpointer(str(tmp_path), counting)
  state = checkpointer.read_state()
  checkpointer.close()
  assert int(state["extra"]["hook_runs"]) == 6


def test_hook_needs_exactly_one_period():
  with pytest.raises(ValueError, match="exactly one of every_steps and every_epochs"):
    HostHook("bad", lambda s, c: s, every_steps=2, every_epochs=1)
  hook = HostHook("epochly", lambda s, c: s, every_epochs=2)
  assert [s for s in range(0, 41) if hook.due(s, 10)] == [20, 40]
  assert np.all([not hook.due(0, 10)])
  with pytest.raises(ValueError, match="exactly one of every_steps and every_epochs"):
    HostHook("never", lambda s, c: s)


def test_start_only_hook_runs_once_before_the_first_step():
  hook = HostHook("fill", lambda s, c: s, at_start=True)
  assert [s for s in range(0, 101) if hook.due(s, 10)] == [0]


def test_hook_start_epochs_delays_the_first_run():
  hook = HostHook("late", lambda s, c: s, every_epochs=3, start_epochs=2)
  assert [s for s in range(0, 101) if hook.due(s, 10)] == [20, 50, 80]
  with pytest.raises(ValueError, match="contradict"):
    HostHook("bad", lambda s, c: s, every_epochs=1, at_start=True, start_epochs=1)


def test_hook_within_epoch_restarts_its_period_each_epoch():
  # 25 steps per epoch, every 10 within the epoch: after 0-based in-epoch steps 10 and 20,
  # i.e. completed steps 11, 21, then 36, 46 (the official FALCON cadence,
  # docs/methods/falcon.md#relation-solver).
  hook = HostHook("solve", lambda s, c: s, every_steps=10, within_epoch=True)
  assert [s for s in range(0, 51) if hook.due(s, 25)] == [11, 21, 36, 46]
  with pytest.raises(ValueError, match="within_epoch"):
    HostHook("bad", lambda s, c: s, every_epochs=1, within_epoch=True)


def test_hook_metrics_are_written_at_the_step_they_ran(counting, tmp_path, monkeypatch):
  def host_hooks(self):
    def report(state, context):
      context.metrics["hook/step"] = float(state.step)
      return state
    return [HostHook("report", report, every_steps=5)]

  monkeypatch.setattr(CountingMethod, "host_hooks", host_hooks)
  loop.train_and_evaluate(counting, str(tmp_path))  # 16 steps
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(l["step"], l["hook/step"]) for l in lines if "hook/step" in l] == [(5, 5.0), (10, 10.0), (15, 15.0)]


SCHEDULES = [dict(every_steps=s) for s in (1, 3, 7)] + [dict(every_epochs=e) for e in (1, 2, 4)] + [
    dict(every_steps=s, within_epoch=True) for s in (1, 4, 5, 9)] + [dict(at_start=True)] + [
    dict(every_epochs=2, start_epochs=3), dict(every_steps=4, start_epochs=1), dict(every_steps=2, within_epoch=True,
                                                                                 start_epochs=2)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_first_due_is_the_first_step_due_holds_at(schedule):
  hook = HostHook("h", lambda s, c: s, **schedule)
  for steps_per_epoch in (1, 5, 6):
    due = [n for n in range(0, 60) if hook.due(n, steps_per_epoch)]  # brute force
    assert hook.first_due(steps_per_epoch) == (due[0] if due else None), steps_per_epoch


def test_a_hook_that_would_never_run_is_refused_before_training(tiny_config, tmp_path):
  from coarse2fine.engine.hooks import check_hooks_run

  solve = HostHook("solve", lambda s, c: s, every_steps=10, within_epoch=True, schedule_fields=("falcon.solve_every",))
  check_hooks_run([solve], steps_per_epoch=11, total_steps=22)  # solves after step index 10 of each epoch
  with pytest.raises(ValueError, match=r"'solve' would never run .*10 per epoch.*change falcon.solve_every"):
    check_hooks_run([solve], steps_per_epoch=10, total_steps=100)
  estep = HostHook("estep", lambda s, c: s, every_epochs=1, start_epochs=3, schedule_fields=("scgm.warmup_epochs",))
  with pytest.raises(ValueError, match=r"first after step 30\); change scgm.warmup_epochs"):
    check_hooks_run([estep], steps_per_epoch=10, total_steps=30)
  # Through the loop: SCGM whose warm-up outlasts the run; nothing is written.
  tiny_config.method = "scgm_g"
  tiny_config.scgm.warmup_epochs = tiny_config.train.num_epochs
  with pytest.raises(ValueError, match="scgm_estep.*scgm.warmup_epochs"):
    loop.train_and_evaluate(tiny_config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()


def test_hook_log_lines_reach_the_terminal_once_each(counting, tmp_path, monkeypatch, capsys):
  """`context.log` prints one line per event on stdout (the methods' E-step and solve lines go there)."""
  def host_hooks(self):
    def report(state, context):
      context.log(f"event after step {int(state.step)}")
      return state
    return [HostHook("report", report, every_steps=5)]

  monkeypatch.setattr(CountingMethod, "host_hooks", host_hooks)
  loop.train_and_evaluate(counting, str(tmp_path))  # 16 steps
  out = capsys.readouterr().out.splitlines()
  assert [line for line in out if line.startswith("event")] == [f"event after step {s}" for s in (5, 10, 15)]
