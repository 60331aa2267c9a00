"""What every experiments binary shares: quiet start-up and one-line errors.

Import it first, before anything that imports TensorFlow, and start the
binary with `cli.run(main)` instead of `absl.app.run(main)`:

  from experiments import cli  # first: quiets TensorFlow's start-up logs

  ...
  if __name__ == "__main__":
    cli.run(main)

Quiet start-up. TensorFlow 2.21 prints its C++ start-up logs (oneDNN, "Could
not find cuda drivers", "failed call to cuInit", "All log messages before
absl::InitializeLog()") whatever `TF_CPP_MIN_LOG_LEVEL` says. Importing this
module imports dcg_tf (hence TensorFlow and tf_keras) and runs one tiny op with
file descriptor 2 pointed at a temporary file, then points it back: those lines
never reach the terminal. When the import fails, the captured lines are
replayed before the traceback. absl's logging, which TensorFlow's checkpoint
and SavedModel code log through, stays at WARNING (absl.app would raise it to
INFO): no "Sharding callback duration" at each checkpoint, no SavedModel INFO
lines. `--verbosity=0` brings those back; `DCG_TF_VERBOSE=1` in the
environment keeps every log, the C++ start-up lines included.

One-line errors. An expected error, one the user fixes by changing the input,
is printed as `error: <message>` on one line of stderr and the process exits
with status 2, without traceback or help text: flag parsing errors (unknown
flag, bad enum value, failed validator), `absl.app.UsageError`,
`dcg_tf.errors.InputError` (bad dataset, missing run.json, fingerprint
mismatch, ...) and the path errors of the OS (`FileNotFoundError`,
`FileExistsError`, `NotADirectoryError`, `IsADirectoryError`,
`PermissionError`). Every other exception is a bug and keeps its traceback.
Python warnings are printed as one line `warning: <message>`.
"""

import os
import sys
import tempfile
import warnings

VERBOSE_ENV = "DCG_TF_VERBOSE"

# Exit status of an expected error (the usual status of a usage error).
USAGE_EXIT = 2


def verbose():
  """True when `DCG_TF_VERBOSE` asks for TensorFlow's logs."""
  return os.environ.get(VERBOSE_ENV, "").lower() not in ("", "0", "false", "no")


def _import_tensorflow_quietly():
  """Imports dcg_tf and TensorFlow with fd 2 captured (see the module doc)."""
  if verbose() or "tensorflow" in sys.modules:
    import dcg_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import dcg_tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.constant(1)  # the device set-up logs (cuInit) come with the first op
      sys.stderr.flush()
    except BaseException:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      sys.stderr.write(captured.read().decode("utf-8", "replace"))
      sys.stderr.flush()
      raise
    os.dup2(saved, 2)
    os.close(saved)


_import_tensorflow_quietly()

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from dcg_tf.errors import InputError  # noqa: E402
# pylint: enable=g-import-not-at-top,wrong-import-position

# Errors the user fixes by changing the input: one line, exit status 2.
EXPECTED_ERRORS = (app.UsageError, InputError, FileNotFoundError, FileExistsError,
                   NotADirectoryError, IsADirectoryError, PermissionError)


def parse_pairs(items, flag):
  """{NAME: VALUE} from a list flag of NAME=VALUE entries (`--flag` in errors)."""
  pairs = {}
  for item in items:
    if "=" not in item:
      raise app.UsageError("--%s entries are NAME=VALUE, got %r" % (flag, item))
    name, value = item.split("=", 1)
    pairs[name.strip()] = value.strip()
  return pairs


def one_line(error):
  """The message of `error` on one line (its lines joined by spaces)."""
  text = str(error)
  if isinstance(error, OSError) and error.filename is not None and error.strerror:
    text = "%s: %s" % (error.filename, error.strerror)
  return " ".join(line.strip() for line in text.splitlines() if line.strip())


def fail(message):
  """Prints `error: message` on stderr and exits with status 2."""
  sys.stdout.flush()
  sys.stderr.write("error: %s\n" % message)
  sys.stderr.flush()
  sys.exit(USAGE_EXIT)


def _format_warning(message, category, filename, lineno, line=None):
  del category, filename, lineno, line
  return "warning: %s\n" % " ".join(str(message).split("\n"))


def _parse_flags(argv):
  """absl's flag parsing; its errors become one line, its logging WARNING."""
  try:
    argv = flags.FLAGS(argv)
  except flags.Error as e:
    fail(one_line(e))
  # absl.app raises an unset --verbosity to INFO after parsing; TensorFlow's
  # checkpoint and SavedModel code logs through absl at INFO.
  if flags.FLAGS["verbosity"].using_default_value and not verbose():
    flags.FLAGS.verbosity = -1  # WARNING
  return argv


def run(main):
  """`absl.app.run(main)` with one-line expected errors (see the module doc)."""

  def guarded(argv):
    warnings.formatwarning = _format_warning
    try:
      return main(argv)
    except EXPECTED_ERRORS as e:
      fail(one_line(e))
    except BrokenPipeError:
      # The reader of stdout left (`... | head`): exit without a traceback.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      sys.exit(1)

  app.run(guarded, flags_parser=_parse_flags)


def save_png(figure, path):
  """Writes a matplotlib `figure` to `path` (folders created) and closes it."""
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=120)
  pyplot.close(figure)
