"""What every command line shares: running under absl, and user mistakes as one line.

The library raises exceptions whose messages name the problem and the fix; this module is the
one place that turns them into a single `error: ...` line on stderr (exit code 2) instead of a
traceback. It does so for the mistakes a user makes (a flag, a config file or field, a value,
a path, a workdir) and for the errors the library raises itself; anything raised deep inside
another library keeps its traceback, as a bug would. `--verbose` (or absl's `-v`) always shows
the traceback.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from typing import Callable, Optional

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_bool("verbose", False, "Show the full traceback of an error instead of its one-line summary.")

USER_ERROR_EXIT = 2  # the conventional code of a command given something it cannot use
_LIBRARY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the coarse2fine package
# Raised for a path, a permission or a missing package wherever they come from.
_ALWAYS_USER = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ModuleNotFoundError)
# Raised by the library itself with a message meant for the user (`raise ValueError("... ; use ...")`).
_LIBRARY_RAISED = (ValueError, KeyError, TypeError, OSError, ImportError, RuntimeError, FloatingPointError)


def _verbose_in_argv(argv: list[str]) -> bool:
  """--verbose or absl's -v/--verbosity, read from the raw arguments (the flags may not have parsed)."""
  for arg in argv[1:]:
    if arg in ("--verbose", "--verbose=true", "--verbose=1", "-v") or arg.startswith(("-v=", "--v=", "--verbosity")):
      return True
  return False


def _raised_by_library(error: BaseException) -> bool:
  """Whether a `raise` statement in coarse2fine raised the error (not a bug's KeyError, not another library)."""
  tb = error.__traceback__
  if tb is None:
    return False
  while tb.tb_next is not None:
    tb = tb.tb_next
  filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
  return (filename.startswith(_LIBRARY + os.sep)
          and linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise "))


def _message(error: BaseException) -> str:
  if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
    return error.args[0]  # str(KeyError) would quote it
  return str(error) or type(error).__name__


def _config_file_problem(error: BaseException) -> Optional[str]:
  """ml_collections' failure to load `--config=FILE` (raised lazily, as an OSError) as one line."""
  text = str(error)
  if "Failed loading config file" not in text:
    return None
  path = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--config=")), "")
  filename = path.split(":", 1)[0]
  if "No such file or directory" in text or (filename and not os.path.exists(filename)):
    return (f"--config={path}: no such config file; give a file in configs/ "
            f"(e.g. --config=configs/coarse_fashion_mnist.py) or a path to your own.")
  last = [line.strip() for line in text.splitlines() if line.strip()][-1]
  return f"--config={path} could not be loaded ({last}); --verbose shows the traceback."


def _unknown_field(error: BaseException) -> Optional[str]:
  """An unknown `--config.a.b=value` field (ml_collections raises AttributeError(KeyError(...)))."""
  cause = error.args[0] if error.args else None
  text = cause.args[0] if isinstance(cause, KeyError) and cause.args else str(cause or error)
  match = re.match(r"""'?([\w-]+)'?(?:\nDid you mean "([\w-]+)")?""", str(text))
  if not match:
    return None
  key, suggestion = match.group(1), match.group(2)
  overrides = [a.split("=", 1)[0] for a in sys.argv[1:] if a.startswith("--config.")]
  flag = next((o for o in overrides if key in o[len("--config."):].split(".")), f"--config...{key}")
  line = f"{flag}: the config has no field {key!r}"
  if suggestion:
    parts = flag.split(".")
    fixed = ".".join(suggestion if part == key else part for part in parts)
    return f"{line}; did you mean {fixed}?"
  return f"{line}; the fields are listed in coarse2fine/config_base.py and each method's config.py."


def user_error_line(error: BaseException) -> Optional[str]:
  """The one line for a user-facing error, or None for an error that keeps its traceback."""
  from coarse2fine.engine.interrupt import Interrupted

  if isinstance(error, Interrupted):
    return str(error)
  config_file = _config_file_problem(error)
  if config_file is not None:
    return config_file
  if isinstance(error, _ALWAYS_USER) or (isinstance(error, _LIBRARY_RAISED) and _raised_by_library(error)):
    return _message(error)
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with its errors (and ml_collections' config errors raised inside it) as one line."""
  try:
    return FLAGS(argv)
  except flags.Error as error:
    message = str(error)
    inner = re.search(r"Error whilst parsing config file:.*\n(\w*Error: .*)\s*$", message, re.S)
    if "Error whilst parsing config file" in message and inner:
      message = f"{message.split(':', 1)[0]}: {inner.group(1).strip().splitlines()[-1]}"
    _fail(error, " ".join(message.split()) + " (--helpshort lists the flags)", argv)
  except AttributeError as error:  # an override of a field the config does not have
    line = _unknown_field(error)
    if line is None:
      raise
    _fail(error, line, argv)
  except OSError as error:  # an override of a config file that did not load
    line = _config_file_problem(error)
    if line is None:
      raise
    _fail(error, line, argv)


def _fail(error: BaseException, line: str, argv: list[str]) -> None:
  if _verbose_in_argv(argv):
    raise error
  sys.stderr.write(f"error: {line}\n")
  sys.stderr.flush()
  sys.exit(USER_ERROR_EXIT)


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)`, with user mistakes and interruptions ending in one line and no traceback."""

  def guarded(argv):
    try:
      return main(argv)
    except app.UsageError as error:  # absl would print the whole usage; the message says what to do
      _fail(error, str(error), sys.argv)
    except (Exception, KeyboardInterrupt) as error:
      from coarse2fine.engine.interrupt import Interrupted

      line = user_error_line(error)
      if isinstance(error, KeyboardInterrupt) and line is None:
        line = "interrupted"  # a second Ctrl-C, or one outside training: nothing was saved after the last checkpoint
      verbose = FLAGS.verbose or FLAGS["verbosity"].present
      if line is None or (verbose and not isinstance(error, KeyboardInterrupt)):
        raise
      sys.stdout.flush()
      if isinstance(error, KeyboardInterrupt):
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
        sys.exit(error.exit_code if isinstance(error, Interrupted) else 130)
      _fail(error, line, [])

  app.run(guarded, flags_parser=_parse_flags)
