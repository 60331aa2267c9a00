"""A resumable training loop for `RetrievalModel`s.

What a run owns, all in one `tf.train.Checkpoint` under `model_dir/checkpoints`:
the model (towers and training-only state such as queues), the optimizer slots,
the global step, the epoch and the position inside the epoch, and the random
generator. Killed at any point and started again with the same arguments, the
loop restores the latest checkpoint and continues from the same batch: the
input of epoch `e` is a pure function of `(seed, e)` (see
`dcg_tf.data.pipeline.train_dataset`), so skipping the batches already consumed
lands on the exact next batch. The same holds for the model's auxiliary
input streams (`RetrievalModel.auxiliary_streams`), zipped into each batch as
`batch["aux"][name]` by `training_dataset` and skipped with it. Every random
draw of a training step comes from a generator in the checkpoint: the global
`tf.random.Generator`, seeded from `config.seed` here (dropout,
`dcg_tf.layers.resumable_dropout.ResumableDropout`), or a model's own (sampled
negatives, CLRec's u2u split); so the resumed run draws what the
uninterrupted one drew. Checkpoints are verified before they are restored: a
corrupt one (cut short by a crash, altered) is named on stderr and the run
resumes from the newest intact one.

Epoch-level state (`RetrievalModel.training_callbacks`, see
`dcg_tf.training.callbacks.EpochCallback`) is refreshed at the start of every
epoch, after the model is built; the refreshed state and the epoch it belongs
to are variables of the model, so a resumed run neither repeats nor skips a
refresh. A `steps` bound reached exactly at an epoch boundary stops before the
next epoch begins (its refresh is left to the resumed run).

Validation (`validate_every` > 0 and a `validate_fn`): after every
`validate_every`-th epoch and after the last, `validate_fn(model)` returns a dict
of metrics (e.g. HR@10 on the validation split,
`dcg_tf.evaluation.evaluator.evaluate_model`). They go to TensorBoard under
`valid/` and to `model_dir/validation.json`; with `best_metric`, the weights of
the best epoch so far are kept in `model_dir/checkpoints/best` (model only;
`dcg_tf.training.checkpoint.load_trained_model(..., checkpoint="best")`), and
the best value is part of the training checkpoint, so a resumed run keeps it.

Under a `tf.distribute` strategy (`strategy=`, built by
`dcg_tf.training.distribute.make_strategy`; the model and optimizer created
under its scope) the loop is the same, except that each global batch of the
same pipeline is split over the replicas (`experimental_distribute_dataset`),
`strategy.run` runs the model's `train_step` on every replica and the
metrics are averaged over them. Every worker restores the chief's newest
checkpoint; checkpoints, TensorBoard logs and validation records are written
by the chief only (the other workers save into a temporary folder that they
delete, as TensorFlow's multi-worker guide does). docs/scale.md, "Training
past one machine".
"""

import json

import contextlib
import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.data import pipeline
from dcg_tf.errors import InputError
from dcg_tf.training import checkpoint as checkpoint_lib
from dcg_tf.training import distribute


class NonFiniteLossError(RuntimeError):
  """Raised when the training loss becomes NaN or infinite."""


@dataclasses.dataclass
class TrainerConfig:
  """How long and how to train; read by the trainer only, never by layers."""
  batch_size: int = 256
  max_len: int = 50
  epochs: int = 1
  steps: int = 0            # 0: no bound besides epochs.
  seed: int = 0
  all_prefixes: bool = False
  last_cut: bool = False
  checkpoint_every: int = 1000
  log_every: int = 50
  keep_checkpoints: int = 3
  progress: bool = True
  validate_every: int = 0   # epochs between validations; 0: never.
  best_metric: str = ""     # with validation: keep the checkpoint maximising it.
  # Under a strategy with several replicas: "global" (in-batch and queue
  # negatives gathered from every replica) or "replica" (each replica's own).
  negatives: str = "global"


def steps_per_epoch(data, config):
  """Batches per epoch, as `pipeline.train_dataset` forms them for `config`."""
  lengths = np.diff(data.train_sequences().offsets)
  lengths = lengths[lengths >= 2]
  n = int((lengths - 1).sum()) if config.all_prefixes else lengths.size
  if n < config.batch_size:
    raise InputError(
        "%s has %d training examples per epoch, fewer than --batch_size=%d "
        "(batches are full, the remainder is dropped): lower the batch size%s"
        % (data.directory, n, config.batch_size,
           "" if config.all_prefixes else " or use --all_prefixes"))
  return n // config.batch_size


def training_dataset(model, data, config, epoch):
  """The training batches of `epoch`: main batches plus the model's streams.

  Args:
    model: a `RetrievalModel`; its `input_streams(data, batch_size, seed,
      epoch)` (`auxiliary_streams` and those of its plug-in tasks) are
      zipped in.
    data: a `ProcessedDataset`.
    config: a `TrainerConfig` (batch size, history length, seed, cuts).
    epoch: the epoch index; the batches are a pure function of it and the seed.

  Returns:
    `tf.data.Dataset` of `pipeline.train_dataset` dicts; when the model has
    streams, each also holds `"aux": {name: element k of that stream}` for
    main batch k (docs/design.md, "tf.data batches").

  Raises:
    ValueError: a stream with fewer elements than the epoch has batches.
  """
  ds = pipeline.train_dataset(data, batch_size=config.batch_size,
                              max_len=config.max_len, seed=config.seed,
                              epoch=epoch, all_prefixes=config.all_prefixes,
                              last_cut=config.last_cut)
  streams = dict(model.input_streams(data, batch_size=config.batch_size,
                                     seed=config.seed, epoch=epoch))
  if not streams:
    return ds
  needed = steps_per_epoch(data, config)
  for name, stream in streams.items():
    length = int(stream.cardinality())
    if 0 <= length < needed:
      raise ValueError(
          "%s.auxiliary_streams()[%r] has %d elements but epoch %d has %d batches: "
          "make the stream infinite (e.g. Dataset.counter()) or at least as long "
          "as the epoch" % (type(model).__name__, name, length, epoch, needed))
  return tf.data.Dataset.zip((ds, streams)).map(
      lambda batch, aux: dict(batch, aux=aux))


class _Progress:
  """A one-line progress bar on stderr (no dependency; quiet when not a tty)."""

  def __init__(self, total, prefix, enabled=True):
    self.total = total
    self.prefix = prefix
    self.enabled = enabled
    self.start = time.time()
    self.last = 0.0
    self.tty = sys.stderr.isatty()

  def update(self, done, metrics, force=False):
    now = time.time()
    if not self.enabled or (not force and now - self.last < (0.2 if self.tty else 10)):
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    width = 24
    frac = min(done / self.total, 1.0) if self.total else 0.0
    bar = "=" * int(frac * width) + "." * (width - int(frac * width))
    eta = (self.total - done) / rate if self.total and rate > 0 else 0
    text = " ".join("%s=%.4f" % (k, v) for k, v in metrics.items())
    line = "%s [%s] %d/%s %.1f steps/s eta %ds %s" % (
        self.prefix, bar, done, self.total or "?", rate, eta, text)
    sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
    sys.stderr.flush()

  def close(self, done, metrics):
    self.update(done, metrics, force=True)
    if self.enabled and self.tty:
      sys.stderr.write("\n")


class Trainer:
  """Trains `model` on `data` with `optimizer`, checkpointing into `model_dir`.

  Args:
    model: a compiled-free `dcg_tf.models.base.RetrievalModel`.
    optimizer: a Keras 2 optimizer (e.g. `dcg_tf.optimizers.LazyAdam`).
    data: a `dcg_tf.data.dataset.ProcessedDataset`.
    model_dir: where checkpoints and TensorBoard logs go.
    config: a `TrainerConfig`.
    validate_fn: optional `model -> {metric: float}`, called after every
      `config.validate_every`-th epoch.
    strategy: None (one device), or a `tf.distribute.Strategy` under whose
      scope `model` and `optimizer` were created
      (`dcg_tf.training.distribute.make_strategy`); `config.batch_size` is
      then the global batch, split evenly over the replicas.
  """

  def __init__(self, model, optimizer, data, model_dir, config, validate_fn=None,
               strategy=None):
    if config.validate_every and validate_fn is None:
      raise ValueError("TrainerConfig.validate_every=%d needs a validate_fn"
                       % config.validate_every)
    if config.negatives not in ("global", "replica"):
      raise InputError("TrainerConfig.negatives (--negatives) must be 'global' "
                       "or 'replica', got %r" % (config.negatives,))
    self.strategy = strategy
    self.is_chief = distribute.is_chief(strategy)
    if strategy is not None:
      replicas = strategy.num_replicas_in_sync
      if config.batch_size % replicas:
        raise InputError("--batch_size=%d is the global batch and must split "
                         "evenly over the %d replicas of the strategy"
                         % (config.batch_size, replicas))
      model.cross_replica_negatives = config.negatives == "global"
    self.validate_fn = validate_fn
    self.model = model
    self.optimizer = optimizer
    self.data = data
    self.model_dir = model_dir
    self.config = config
    model.optimizer = optimizer
    # The loop's own counters are host variables, outside any strategy scope:
    # every worker keeps its copy and moves it the same way.
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name="step_in_epoch")
    self.best_value = tf.Variable(-np.inf, dtype=tf.float64, trainable=False,
                                  name="best_value")
    tf.random.set_global_generator(tf.random.Generator.from_seed(config.seed))
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, global_step=self.global_step,
        epoch=self.epoch, step_in_epoch=self.step_in_epoch,
        rng=tf.random.get_global_generator(), best_value=self.best_value)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(model_dir, "checkpoints"),
        max_to_keep=config.keep_checkpoints)
    best_dir = os.path.join(model_dir, "checkpoints", "best")
    self._worker_dir = None
    self._save_manager = self.manager
    if not self.is_chief:
      # Every worker saves (a save may need all of them), only the chief's
      # checkpoints are kept; the others write here and delete it.
      self._worker_dir = tempfile.mkdtemp(prefix="dcg_tf_worker_checkpoints_")
      self._save_manager = tf.train.CheckpointManager(
          self.checkpoint, self._worker_dir, max_to_keep=1)
      best_dir = os.path.join(self._worker_dir, "best")
    self.best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), best_dir, max_to_keep=1)
    self.validation_path = os.path.join(model_dir, "validation.json")
    if strategy is None:
      self._train_fn = tf.function(model.train_step, reduce_retracing=True)
    else:
      self._train_fn = tf.function(self._distributed_step, reduce_retracing=True)
    self.history = []
    self.corrupt_checkpoints = []

  def restore(self):
    """Restores the newest intact checkpoint, if any; returns its path or None.

    Each checkpoint is verified before it is restored
    (`dcg_tf.training.checkpoint.verify_checkpoint`); a corrupt one is named
    on stderr and the next older one is tried (those skipped are listed in
    `self.corrupt_checkpoints`). The resumed run writes its checkpoints over
    the corrupt ones as it reaches their steps again.

    Raises:
      CorruptCheckpointError: every checkpoint of the run is corrupt.
    """
    candidates = list(reversed(self.manager.checkpoints))
    latest = self.manager.latest_checkpoint
    if latest and latest not in candidates:
      candidates.insert(0, latest)
    if not candidates:
      return None
    corrupt = []
    for path in candidates:
      try:
        checkpoint_lib.verify_checkpoint(path)
      except checkpoint_lib.CorruptCheckpointError as e:
        print("warning: %s; trying the previous one" % e, file=sys.stderr)
        corrupt.append(path)
        continue
      self.corrupt_checkpoints = corrupt
      self._build(self._first_batch())
      self.checkpoint.restore(path).assert_existing_objects_matched()
      # The restored generator replaces the one seeded in __init__.
      tf.random.set_global_generator(self.checkpoint.rng)
      return path
    raise checkpoint_lib.CorruptCheckpointError(
        "every checkpoint of %s is corrupt (%s): move them away to train from "
        "the start" % (self.model_dir, ", ".join(corrupt)))

  def _first_batch(self):
    """Batch 0 of epoch 0; under a strategy, split over the replicas."""
    return next(iter(self._distribute(
        training_dataset(self.model, self.data, self.config, 0))))

  def _scope(self):
    if self.strategy is None:
      return contextlib.nullcontext()
    return self.strategy.scope()

  def _build(self, batch):
    """Creates every variable (model and optimizer slots) before a restore.

    Under a strategy `batch` is a distributed batch, each replica's part
    evaluated in a replica context (where the variables are created
    mirrored and a momentum encoder can take the gradients it inspects),
    and the optimizer slots are created under the scope.
    """
    if self.strategy is None:
      if not self.model.built:
        self.model.total_loss(batch, training=False)
        self.model.built = True
      self.optimizer.build(self.model.trainable_variables)
      return
    with self.strategy.scope():
      if not self.model.built:
        self.strategy.run(lambda b: self.model.total_loss(b, training=False),
                          args=(batch,))
        self.model.built = True
      self.optimizer.build(self.model.trainable_variables)

  def _distribute(self, dataset):
    """Splits each global batch over the replicas (identity without strategy).

    Data sharding: worker w of W takes the w-th per-worker slice of every
    global batch, so the replicas of all workers see exactly the global
    batches of the one-device run.
    """
    if self.strategy is None:
      return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return self.strategy.experimental_distribute_dataset(
        dataset.with_options(options))

  def _distributed_step(self, batch):
    devices = self.strategy.extended.worker_devices

    def replica_step(batch):
      if len(devices) == 1:
        # MultiWorkerMirroredStrategy, one device per worker: traced without
        # a device, its all_gather fails ("destinations can not be empty").
        with tf.device(devices[0]):
          return self.model.train_step(batch)
      return self.model.train_step(batch)

    outputs = self.strategy.run(replica_step, args=(batch,))
    return {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value,
                                       axis=None)
            for name, value in outputs.items()}

  def _save(self, manager, step):
    manager.save(checkpoint_number=step)
    if not self.is_chief:
      shutil.rmtree(self._worker_dir, ignore_errors=True)

  def steps_per_epoch(self):
    """Batches per epoch, as `pipeline.train_dataset` forms them."""
    return steps_per_epoch(self.data, self.config)

  def train(self):
    """Runs until `epochs` (or `steps`) are done; returns the last metrics."""
    config = self.config
    restored = self.restore()
    if restored:
      print("Resuming from %s%s (step %d, epoch %d, batch %d of the epoch)"
            % (restored, ", the newest intact checkpoint" if self.corrupt_checkpoints
               else "", int(self.global_step), int(self.epoch),
               int(self.step_in_epoch)), file=sys.stderr)
    if self.is_chief:
      writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "logs"))
    else:
      writer = tf.summary.create_noop_writer()
    per_epoch = self.steps_per_epoch()
    callbacks = list(self.model.training_callbacks(self.data, config.seed))
    if (callbacks or self.strategy is not None) and not self.model.built:
      # A refresh reads the weights: create them (as the first batch would).
      self._build(self._first_batch())
    for callback in callbacks:
      callback.set_model(self.model)
    metrics = {}
    stop = False
    while int(self.epoch) < config.epochs and not stop:
      if config.steps and int(self.global_step) >= config.steps:
        break
      epoch = int(self.epoch)
      skip = int(self.step_in_epoch)
      for callback in callbacks:
        callback.on_epoch_begin(epoch)
      ds = training_dataset(self.model, self.data, config, epoch)
      if skip:
        ds = ds.skip(skip)
      ds = self._distribute(ds)
      bar = _Progress(per_epoch, "epoch %d/%d" % (epoch + 1, config.epochs),
                      config.progress)
      done = skip
      for batch in ds:
        if config.steps and int(self.global_step) >= config.steps:
          stop = True
          break
        if not self.model.built:
          self._build(batch)
        outputs = self._train_fn(batch)
        metrics = {k: float(v) for k, v in outputs.items()}
        if not math.isfinite(metrics["loss"]):
          raise NonFiniteLossError(
              "training loss became %s at step %d (epoch %d, batch %d); the last "
              "good checkpoint is %s. Lower --learning_rate or check the data."
              % (metrics["loss"], int(self.global_step) + 1, epoch, done,
                 self.manager.latest_checkpoint))
        done += 1
        self.global_step.assign_add(1)
        self.step_in_epoch.assign(done)
        step = int(self.global_step)
        if step % config.log_every == 0:
          with writer.as_default(step=step):
            for name, value in metrics.items():
              tf.summary.scalar(name, value)
          self.history.append(dict(metrics, step=step))
        bar.update(done, metrics)
        if step % config.checkpoint_every == 0:
          self._save(self._save_manager, step)
      bar.close(done, metrics)
      if not stop:
        for callback in callbacks:
          callback.on_epoch_end(epoch, metrics)
        if config.validate_every and ((epoch + 1) % config.validate_every == 0
                                      or epoch + 1 == config.epochs):
          self._validate(epoch, writer)
        self.epoch.assign_add(1)
        self.step_in_epoch.assign(0)
      self._save(self._save_manager, int(self.global_step))
    writer.flush()
    return metrics

  def validation_history(self):
    """The validation records written so far (a list of dicts), [] if none."""
    if not os.path.exists(self.validation_path):
      return []
    with open(self.validation_path) as f:
      return json.load(f)

  def _validate(self, epoch, writer):
    """Runs `validate_fn`, logs it, and keeps the best weights (see module doc)."""
    start = time.time()
    values = {k: float(v) for k, v in self.validate_fn(self.model).items()
              if isinstance(v, (int, float, np.number))}
    step = int(self.global_step)
    with writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar("valid/" + name, value)
    record = {"epoch": epoch + 1, "step": step, "metrics": values}
    best = self.config.best_metric
    if best:
      if best not in values:
        raise KeyError("best_metric %r is not among the validation metrics %s"
                       % (best, sorted(values)))
      if values[best] > float(self.best_value):
        self.best_value.assign(values[best])
        self._save(self.best_manager, step)
        record["best"] = True
    if not self.is_chief:
      return
    # A resumed run may repeat an epoch: its earlier record is replaced.
    history = [r for r in self.validation_history() if r["epoch"] <= epoch]
    history.append(record)
    tmp = self.validation_path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(history, f, indent=1)
    os.replace(tmp, self.validation_path)
    shown = {k: values[k] for k in sorted(values) if k.startswith(("HR@", "NDCG@10"))}
    print("validation after epoch %d (%.0f s): %s%s" % (
        epoch + 1, time.time() - start,
        " ".join("%s=%.4f" % kv for kv in shown.items()),
        " (best %s so far)" % best if record.get("best") else ""), file=sys.stderr)


def set_seeds(seed):
  """Seeds Python, NumPy, TF and Keras initialisers for repeatable runs."""
  keras.utils.set_random_seed(seed)
