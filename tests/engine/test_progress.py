"""The terminal of a run: the start banner, the progress bar's rate, stage lines."""

import io
import re

import pytest

from coarse2fine.engine import loop, progress


@pytest.mark.parametrize("rate,text", [(0.5, "2.0 s/ex"), (0.25, "4.0 s/ex"), (3.14159, "3.1 ex/s"),
                                       (1234.4, "1,234 ex/s"), (0.0, "- ex/s"), (float("nan"), "- ex/s")])
def test_rates_below_one_per_second_show_seconds_per_example(rate, text):
  assert progress.format_rate(rate) == text


def test_rate_is_measured_between_log_steps(monkeypatch):
  """Examples/s over the window since the last log step: a slow first step (compiling) does not count."""
  clock = iter([0.0, 10.0, 11.0, 12.0, 13.0, 14.0, 30.0])  # the first step took 10 s, a later window 16 s
  monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
  bar = progress.ProgressBar(total_steps=100, batch_size=32, stream=io.StringIO())
  bar.advance()  # step 1 ends at t=0: the window starts here
  for _ in range(4):
    bar.advance()
  bar.set_loss(1.0)  # t=10: 4 steps of 32 in 10 s
  assert bar.examples_per_second() == pytest.approx(4 * 32 / 10.0)
  bar.advance()
  bar.advance()
  bar.set_loss(0.5)  # t=11: 2 steps in 1 s
  assert bar.examples_per_second() == pytest.approx(64.0)
  bar.close()


def test_disabled_bar_prints_nothing_but_event_lines(capsys):
  bar = progress.ProgressBar(total_steps=10, batch_size=4, enabled=False)
  bar.advance()
  bar.set_loss(1.0)
  bar.write("an event")
  bar.close()
  captured = capsys.readouterr()
  assert captured.out == "an event\n" and captured.err == ""


def test_bar_shows_step_loss_and_rate_on_a_terminal():
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  stream = Terminal()
  bar = progress.ProgressBar(total_steps=10, batch_size=4, stream=stream)
  for _ in range(5):
    bar.advance()
  bar.set_loss(0.1234)
  text = stream.getvalue().split("\r")[-1]
  assert "step 5/10" in text and "loss 0.1234" in text and re.search(r"[\d,.]+ ex/s|s/ex", text), text
  bar.close()


def test_stage_prints_start_and_end_lines_off_a_terminal():
  stream = io.StringIO()
  with progress.stage("evaluating", stream=stream):
    pass
  lines = stream.getvalue().splitlines()
  assert lines[0] == "evaluating ..." and re.fullmatch(r"evaluating: done in \d+ s", lines[1])


def test_banner_of_a_fresh_and_a_resumed_run(tiny_config, tmp_path, capsys):
  tiny_config.train.stop_after_steps = 8  # 16 steps in all: the second session resumes at 8
  assert loop.train_and_evaluate(tiny_config, str(tmp_path)) is None
  first = capsys.readouterr().out
  loop.train_and_evaluate(tiny_config, str(tmp_path))
  second = capsys.readouterr().out
  # The tiny config: 512 train / 256 test vectors of 16 features (synthetic), 3 x 3 planted classes,
  # batch 64, 2 epochs of 512 / 64 = 8 steps.
  banner = first.split("\n\n")[0].splitlines()
  assert 5 <= len(banner) <= 10, banner
  assert banner[0] == "coarse2fine: coarse on synthetic, taxonomy synthetic_3x3 (3 coarse / 9 fine classes)"
  assert "512 train, 256 test examples" in banner[1] and "encoder mlp" in banner[1]
  import jax
  assert f"{jax.device_count()} x cpu, 1 process; global batch 64" in banner[2]
  assert "16 (2 epochs x 8 steps/epoch)" in banner[3]
  assert banner[4] == f"  workdir  {tmp_path} (fresh start)"
  assert f"  workdir  {tmp_path} (resuming from step 8)" in second.splitlines()
