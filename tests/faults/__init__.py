"""Fault injection: runs killed, checkpoints damaged, workdirs contended, inputs broken, topologies changed.

Where each fault is tried (`docs/robustness.md` lists what happens in each case):
  SIGKILL at random points of SCGM, FALCON and MaskCon runs: tests/faults/test_kill.py (slow)
  byte flips, truncation, deletion, broken metadata, empty step dirs: tests/engine/test_checkpointing.py
  a second concurrent run, a refused resume leaving every file unchanged: tests/engine/test_loop.py
  resume 2 -> 1 devices: tests/engine/test_loop.py; 2 -> 1 processes: tests/test_launch.py (slow)
  evaluation on 3 and 4 devices: tests/evaluation/test_evaluator.py (slow)
  NaN, inf, huge and constant inputs: tests/faults/test_bad_inputs.py, tests/data/test_checks.py
  hooks that would never run, classes too small for neighbours, shots and queries:
    tests/engine/test_hooks.py, tests/methods/falcon/test_method.py, tests/evaluation/test_feasibility.py
  the same faults on a gs:// workdir (kill, lock, resume, damaged step, unwritable workdir): tests/cloud/
"""
