# `python -m coarse2fine.main`: runs the command line of coarse2fine/cli/train.py, which holds its flags and docs.

from absl import flags

from coarse2fine.cli import train

__doc__ = train.__doc__  # absl's --help prints the main module's docstring
flags.adopt_module_key_flags(train)  # and lists its key flags

if __name__ == "__main__":
  train.run()
