# `python -m coarse2fine.plot`: runs the command line of coarse2fine/cli/plot.py, which holds its flags and docs.

from absl import flags

from coarse2fine.cli import plot

__doc__ = plot.__doc__  # absl's --help prints the main module's docstring
flags.adopt_module_key_flags(plot)  # and lists its key flags

if __name__ == "__main__":
  plot.run()
