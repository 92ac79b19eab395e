# `python -m coarse2fine.embed`: runs the command line of coarse2fine/cli/embed.py, which holds its flags and docs.

from absl import flags

from coarse2fine.cli import embed

__doc__ = embed.__doc__  # absl's --help prints the main module's docstring
flags.adopt_module_key_flags(embed)  # and lists its key flags

if __name__ == "__main__":
  embed.run()
