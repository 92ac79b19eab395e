"""The terminal of a run: the start banner, the progress bar's rate, stage lines."""

import io
import json
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


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_work_bar_draws_on_a_terminal_and_is_removed_when_done():
  stream = _Terminal()
  with progress.work_bar("predicting", 3, "batch", stream=stream) as bar:
    for _ in range(3):
      bar.update(1)
    drawn = stream.getvalue()
  assert "predicting" in drawn and "0/3" in drawn, drawn  # its total announced (redrawn at most every 0.2 s)
  assert "predicting" not in stream.getvalue().split("\r")[-1]  # cleared: leave=False


def test_work_bar_prints_nothing_off_a_terminal_or_when_disabled():
  for stream, enabled in ((io.StringIO(), True), (_Terminal(), False)):
    with progress.work_bar("predicting", 3, "batch", enabled=enabled, stream=stream) as bar:
      bar.update(3)
    assert stream.getvalue() == ""


def test_evaluations_during_training_print_a_line_of_headline_metrics(tiny_config, tmp_path, capsys):
  tiny_config.eval.every_epochs = 1  # 2 epochs of 8 steps: one evaluation at step 8, the last one at 16
  results = loop.train_and_evaluate(tiny_config, str(tmp_path))
  lines = [line for line in capsys.readouterr().out.splitlines() if "evaluation," in line]
  assert len(lines) == 1, lines
  assert re.fullmatch(r"step 8: test evaluation, \d+ s: test/coarse_top1 [\d.]+", lines[0])  # coarse: no fine head
  logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  at_8 = next(r for r in logged if r["step"] == 8 and "test/coarse_top1" in r)
  assert f"test/coarse_top1 {at_8['test/coarse_top1']:.1f}" in lines[0]
  assert results["metrics"]["test/coarse_top1"] >= 0


def test_bars_draw_on_a_pseudo_terminal_that_reports_no_size():
  """A pty without a size (`docker exec -t`, `script` without a terminal) reports 0 x 0; tqdm alone would
  draw nothing there."""
  import os
  import pty
  import select

  master, replica = pty.openpty()  # a new pty: 0 columns, 0 rows
  assert os.get_terminal_size(replica).columns == 0
  with os.fdopen(replica, "w", closefd=True) as stream:
    bar = progress.ProgressBar(total_steps=10, batch_size=4, stream=stream)
    for _ in range(5):
      bar.advance()
    bar.set_loss(0.25)
    stream.flush()
    drawn = ""
    while select.select([master], [], [], 1.0)[0]:  # what the bar wrote (a read on an empty pty would block)
      drawn += os.read(master, 65536).decode(errors="replace")
    bar.close()
  os.close(master)
  assert "step 5/10" in drawn and "loss 0.2500" in drawn, drawn
