"""`InputError`: the error a user fixes by changing what they passed in.

A path, a file's content or an argument value is wrong: a folder that is not a
processed dataset, a model_dir without `run.json`, a dataset or Faiss index
whose fingerprint does not match, `k < 1`. The message names the file or the
argument and says what to do. The experiments binaries print it as one line
(`error: ...`) and exit with status 2 (`experiments/cli.py`); every other
exception is a bug and keeps its traceback.

It subclasses `ValueError`, so `except ValueError` keeps catching it.
"""


class InputError(ValueError):
  """Wrong input from the user; the message names it and says what to do."""
