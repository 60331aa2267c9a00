"""Run metadata (`run.json`) and rebuilding a trained model from `model_dir`.

`experiments/train.py` writes `model_dir/run.json` with the experiment name, its
resolved parameters, the trainer settings, the data folder and the dataset
fingerprint. Every later verb (evaluate, export) rebuilds the same model from
it through the registry and restores the latest checkpoint.

Checkpoints are verified before they are restored (`verify_checkpoint`: every
tensor is read back, checksums included): a truncated or altered checkpoint
is a `CorruptCheckpointError` that names it, never a traceback from the
reader.
"""

import importlib
import json
import os
import warnings

import numpy as np
import tensorflow as tf

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.errors import InputError
from dcg_tf.models import registry

RUN_FILE = "run.json"


class CorruptCheckpointError(InputError):
  """A checkpoint whose files cannot be read back (cut short, altered, missing)."""


# What TensorFlow's checkpoint reader raises on damaged files: a truncated
# `.data` file is an IndexError ("Read less bytes than requested"), a changed
# byte a DataLossError (checksum), a missing file a NotFoundError.
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, OSError, RuntimeError)


def verify_checkpoint(path):
  """Reads back every tensor of the checkpoint `path` (a prefix `.../ckpt-N`).

  The reader checks each tensor's size and CRC32C checksum, so a `.data` file
  cut short, a changed byte or a missing file is found here, before a restore
  has assigned part of the variables.

  Raises:
    CorruptCheckpointError: one line naming `path` and what is wrong.
  """
  try:
    reader = tf.train.load_checkpoint(path)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except _READ_ERRORS as e:
    reason = (getattr(e, "message", None) or str(e) or type(e).__name__)
    reason = " ".join(reason.split())
    raise CorruptCheckpointError(
        "checkpoint %s is corrupt and cannot be restored (%s: %s)"
        % (path, type(e).__name__, reason[:300])) from e


# Trainer settings a rerun may change silently: more epochs or steps is how a
# finished run is continued. Any other change (batch size, learning rate,
# seed, ...) would mix two runs under one run.json.
RESUMABLE_TRAINER_KEYS = ("epochs", "steps")


def write_run_info(model_dir, info, allow_trainer_changes=False):
  """Writes `run.json`; refuses to resume a different run in the same dir.

  Args:
    model_dir: the run's folder (created if needed).
    info: the run's description: "experiment", "params", "trainer" (the
      training flags), "dataset_fingerprint", ...
    allow_trainer_changes: accept "trainer" settings that differ from the
      existing run.json (other than `RESUMABLE_TRAINER_KEYS`); each accepted
      change is appended to `info["trainer_changes"]` with the checkpoint it
      continues from.

  Raises:
    InputError: run.json holds another experiment, other params or another
      dataset, another train_on_valid, or (without `allow_trainer_changes`)
      other trainer settings; the message lists them.
  """
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, RUN_FILE)
  if os.path.exists(path):
    previous = read_run_info(model_dir)
    for key in ("experiment", "params", "dataset_fingerprint"):
      # As run.json holds it: a tuple parameter (`--param=w=1.0,0.1`) reads
      # back as a list and is the same run.
      if previous.get(key) != json.loads(json.dumps(info.get(key))):
        raise InputError(
            "%s already holds a run with a different %s (%r, now %r). Use a new "
            "--model_dir or delete the old one." % (model_dir, key,
                                                    previous.get(key), info.get(key)))
    # Training data: resuming with or without the validation events folded in
    # would change the data under a half-trained model.
    for key, default in (("train_on_valid", False), ("train_fraction", 1.0)):
      before = previous.get("trainer", {}).get(key, default)
      now = info.get("trainer", {}).get(key, default)
      if before != now:
        raise InputError(
            "%s already holds a run with %s=%s (now %s). Use a new "
            "--model_dir or delete the old one." % (model_dir, key, before, now))
    changed = trainer_changes(previous.get("trainer", {}), info.get("trainer", {}))
    history = list(previous.get("trainer_changes", []))
    if changed and not allow_trainer_changes:
      raise InputError(
          "%s already holds a run trained with other flags: %s. Rerun with the "
          "run's flags to resume it, add --allow_flag_changes to continue with "
          "the new ones (recorded in run.json), or use a new --model_dir."
          % (model_dir, ", ".join("--%s=%s (now %s)" % (key, old, new)
                                  for key, (old, new) in changed.items())))
    if changed:
      latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
      history.append({"from_checkpoint": latest and os.path.basename(latest),
                      "changed": {key: {"before": old, "after": new}
                                  for key, (old, new) in changed.items()}})
    if history:
      info = dict(info, trainer_changes=history)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def trainer_changes(before, after):
  """`{key: (old, new)}` of the trainer settings a rerun may not change silently.

  Keys in `RESUMABLE_TRAINER_KEYS` and keys the older run.json does not record
  are not compared.
  """
  return {key: (before[key], after.get(key)) for key in sorted(before)
          if key not in RESUMABLE_TRAINER_KEYS and key in after
          and before[key] != after[key]}


def read_run_info(model_dir):
  path = os.path.join(model_dir, RUN_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        "%s has no %s: it is not a model_dir written by experiments/train.py"
        % (model_dir, RUN_FILE))
  with open(path) as f:
    return json.load(f)


CHECKPOINTS = ("latest", "best")


def checkpoint_path(model_dir, checkpoint="latest"):
  """The checkpoint prefix of `model_dir` to restore: "latest" or "best"."""
  if checkpoint not in CHECKPOINTS:
    raise InputError("checkpoint must be one of %s, got %r" % (CHECKPOINTS, checkpoint))
  folder = os.path.join(model_dir, "checkpoints")
  if checkpoint == "best":
    folder = os.path.join(folder, "best")
  path = tf.train.latest_checkpoint(folder)
  if path is None:
    if checkpoint == "best":
      raise FileNotFoundError(
          "%s has no best checkpoint: train with --validate_every=N (it keeps the "
          "weights with the best --best_metric on the validation split)" % model_dir)
    raise FileNotFoundError("%s has no checkpoint yet" % model_dir)
  return path


def load_trained_model(model_dir, data_dir=None, checkpoint="latest"):
  """Rebuilds the model of `model_dir` and restores one of its checkpoints.

  Args:
    model_dir: a folder written by `experiments/train.py`.
    data_dir: the processed dataset; defaults to the one recorded at training.
      Its fingerprint must match the one the model was trained on.
    checkpoint: "latest" (the end of training) or "best" (the epoch with the
      best validation metric, written when training validated).

  Returns:
    `(model, data)`: the `RetrievalModel` and the `ProcessedDataset` (the view
    with validation folded into training when the model was trained so).
  """
  info = read_run_info(model_dir)
  data = ProcessedDataset.load(data_dir or info["data_dir"])
  if info.get("dataset_fingerprint") and data.fingerprint != info["dataset_fingerprint"]:
    raise InputError(
        "the dataset in %s (fingerprint %s) is not the one %s was trained on (%s)"
        % (data.directory, data.fingerprint[:12], model_dir, info["dataset_fingerprint"][:12]))
  if info.get("trainer", {}).get("train_on_valid"):
    data = data.with_validation_in_train()
  data = data.with_train_fraction(info.get("trainer", {}).get("train_fraction", 1.0))
  # Only the paper this model comes from is imported (runs written before
  # run.json recorded it import every config module).
  if info.get("experiment_module"):
    importlib.import_module(info["experiment_module"])
    for module in info.get("auxiliary_task_modules", []):
      importlib.import_module(module)
  else:
    configs.import_all()
  params, removed = registry.split_known_params(info["experiment"], info["params"])
  if removed:
    warnings.warn("%s/run.json has parameter(s) %s that experiment %r no longer "
                  "has; they are ignored" % (model_dir, ", ".join(removed),
                                             info["experiment"]))
  model = registry.build_model(info["experiment"], params, data)
  from dcg_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  batch = next(iter(pipeline.eval_dataset(data, "test", batch_size=2,
                                          max_len=info["trainer"]["max_len"])))
  model.total_loss(_as_train_batch(batch, model, data), training=False)
  path = checkpoint_path(model_dir, checkpoint)
  try:
    verify_checkpoint(path)
  except CorruptCheckpointError as e:
    raise CorruptCheckpointError(
        "%s. Rerun experiments.train with the run's flags: it resumes from the "
        "newest intact checkpoint and writes a new one" % e) from e
  tf.train.Checkpoint(model=model).restore(path).expect_partial()
  return model, data


def _as_train_batch(eval_batch, model, data):
  """An evaluation batch viewed as a training batch (its first target).

  With the model's auxiliary streams (`RetrievalModel.auxiliary_streams`, epoch
  0) under "aux", as the trainer zips them, so that every variable the
  training loss creates exists before the restore.
  """
  batch = dict(eval_batch)
  batch["target"] = eval_batch["targets"][:, 0]
  rows = int(batch["target"].shape[0])
  streams = model.input_streams(data, batch_size=rows, seed=0, epoch=0)
  if streams:
    batch["aux"] = {name: next(iter(stream)) for name, stream in streams.items()}
  return batch


def checkpoint_difference(path_a, path_b, common_only=False):
  """Largest absolute difference of each floating-point variable of two checkpoints.

  Args:
    path_a, path_b: checkpoint prefixes (e.g. `checkpoint_path(model_dir)`).
    common_only: compare the float variables both hold and also return the
      keys only one of them holds (e.g. state that a later commit added).

  Returns:
    dict variable key -> float max |a - b| over the variable's entries, for
    the float variables both checkpoints hold with the same shape (equal
    infinities and NaN in both count as equal, NaN in one as an infinite
    difference). With `common_only`, `(that dict, (keys only in a, keys only
    in b))`.

  Raises:
    ValueError: when the checkpoints hold different float variables (unless
      `common_only`) or shapes.
  """
  reader_a = tf.train.load_checkpoint(path_a)
  reader_b = tf.train.load_checkpoint(path_b)
  dtypes_a = reader_a.get_variable_to_dtype_map()
  dtypes_b = reader_b.get_variable_to_dtype_map()
  floats_a = {k for k, d in dtypes_a.items() if d.is_floating}
  floats_b = {k for k, d in dtypes_b.items() if d.is_floating}
  only = (sorted(floats_a - floats_b), sorted(floats_b - floats_a))
  if common_only:
    floats_a = floats_a & floats_b
  elif floats_a != floats_b:
    raise ValueError("%s and %s hold different float variables: %s"
                     % (path_a, path_b, sorted(floats_a ^ floats_b)[:5]))
  result = {}
  for key in sorted(floats_a):
    a, b = reader_a.get_tensor(key), reader_b.get_tensor(key)
    if a.shape != b.shape:
      raise ValueError("%s: shape %s in %s but %s in %s"
                       % (key, a.shape, path_a, b.shape, path_b))
    with np.errstate(invalid="ignore"):
      diff = np.abs(a.astype(np.float64) - b)
    # Equal entries (infinities included, e.g. the best validation value
    # before any validation) and NaN in both are equal; NaN in one only is an
    # infinite difference.
    diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    result[key] = float(diff.max()) if diff.size else 0.0
  return (result, only) if common_only else result
