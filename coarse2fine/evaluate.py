# `python -m coarse2fine.evaluate`: runs the command line of coarse2fine/cli/evaluate.py, which holds its flags and docs.

from absl import flags

from coarse2fine.cli import evaluate

__doc__ = evaluate.__doc__  # absl's --help prints the main module's docstring
flags.adopt_module_key_flags(evaluate)  # and lists its key flags

if __name__ == "__main__":
  evaluate.run()
