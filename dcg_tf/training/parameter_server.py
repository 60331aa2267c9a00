"""ParameterServerStrategy: embedding tables sharded over parameter servers.

After TensorFlow's "Parameter server training with ParameterServerStrategy"
tutorial, one binary for every task (`experiments.train
--strategy=parameter_server`, each process with its own `TF_CONFIG`):

- a `"worker"` or `"ps"` task starts its `tf.distribute.Server` and joins
  (`serve`);
- the `"chief"` task is the coordinator: it creates the model and optimizer
  under the strategy's scope, so every variable lives on a parameter server,
  and tables with at least `min_rows` rows are cut by `table_partitioner`
  into `num_shards` row ranges on different servers
  (`tf.distribute.ShardedVariable`); `ParameterServerTrainer` schedules
  `model.train_step` on the workers with
  `tf.distribute.coordinator.ClusterCoordinator`, each worker reading its
  batches from `create_per_worker_dataset` (the same pipeline, a pure
  function of (seed, epoch)). Lookups gather the rows they need from the
  shards; `LazyAdam` applies the `IndexedSlices` gradient of each shard to
  its rows. The chief writes the checkpoints (a sharded table is saved as one
  tensor: the layout of the one-device `Trainer`, which `experiments.export`
  reads) and a restarted chief resumes from them.

Scope (`check_supported`): `two_tower` without dropout, whose step needs no
random generator and no cross-replica state; one replica per worker, whose
batch is `config.batch_size`. With one worker the steps are those of the
one-device trainer. With W workers worker w reads batches w, w + W, ... of
each epoch (`tf.distribute.coordinator.experimental_get_current_worker_index`),
repeated if it runs out before the epoch's steps are scheduled; the steps are
asynchronous (each worker's gradient is applied when it arrives), which is
the strategy's design, not the one-device result, and a resumed epoch skips
about its share of batches on each worker. No validation or epoch callbacks
(docs/scale.md, "Training past one machine").
"""

import math
import os
import sys

import tensorflow as tf

from dcg_tf.errors import InputError
from dcg_tf.training import trainer as trainer_lib

# Experiments whose training step runs on a parameter-server worker.
SUPPORTED_EXPERIMENTS = ("two_tower",)


def check_supported(experiment, params=None):
  """Raises InputError unless `experiment` (with `params`) trains here.

  Args:
    experiment: the registered experiment name (`--model`).
    params: its resolved parameters, or None to check the name only.
  """
  if experiment not in SUPPORTED_EXPERIMENTS:
    raise InputError(
        "--strategy=parameter_server trains --model=%s only, got --model=%s "
        "(other models need state or random draws the workers do not share; "
        "use --strategy=mirrored or multi_worker, docs/scale.md)"
        % ("|".join(SUPPORTED_EXPERIMENTS), experiment))
  if params and params.get("dropout"):
    raise InputError(
        "--strategy=parameter_server needs --param=dropout=0 (got %s): the "
        "dropout generator is not a parameter-server variable"
        % params["dropout"])


def table_partitioner(num_shards, min_rows):
  """A `variable_partitioner`: `num_shards` row shards for big tables.

  A float variable with at least `min_rows` rows (an embedding table) is cut
  into `num_shards` contiguous row ranges; every other variable stays whole
  (the integer catalog arrays of `ItemFeatures` too).
  """
  def partition(shape, dtype):
    if (tf.as_dtype(dtype).is_floating and shape.rank
        and shape[0] >= min_rows):
      return [num_shards] + [1] * (shape.rank - 1)
    return [1] * max(shape.rank, 1)
  return partition


def serve(cluster, tasks):
  """Starts the server of each `(task type, index)` of `tasks`, then blocks.

  What a `"worker"` or `"ps"` task of the cluster does (TensorFlow's
  tutorial); several tasks in one process make an in-process cluster (the
  tests). Never returns.

  Args:
    cluster: dict job name -> list of "host:port" (TF_CONFIG's "cluster").
    tasks: list of ("worker" | "ps", index).
  """
  # The tutorial's setting: a worker retries a lost connection to a server.
  os.environ["GRPC_FAIL_FAST"] = "use_caller"
  spec = tf.train.ClusterSpec(cluster)
  servers = [tf.distribute.Server(spec, job_name=job, task_index=int(index),
                                  protocol="grpc", start=True)
             for job, index in tasks]
  servers[-1].join()


def make_strategy(cluster_resolver, num_shards, min_rows):
  """`ParameterServerStrategy` whose big tables are cut into `num_shards`."""
  return tf.distribute.experimental.ParameterServerStrategy(
      cluster_resolver,
      variable_partitioner=table_partitioner(num_shards, min_rows))


def shard_devices(model):
  """{shard variable name: its device} of the model's sharded tables."""
  return {w.name: w.device for w in model.weights if "/part_" in w.name}


class ParameterServerTrainer(trainer_lib.Trainer):
  """`Trainer` whose steps the coordinator schedules on parameter-server workers.

  The run is the `Trainer`'s (the same checkpoint: model, optimizer slots,
  step, epoch, position in the epoch, generator; resume; TensorBoard logs;
  `history`), written by this process, the chief. `model` and `optimizer`
  must be created under `strategy.scope()`
  (`dcg_tf.training.experiment.build_trainer` does it). `config.batch_size`
  is each worker's batch.

  Raises:
    InputError: not a `ParameterServerStrategy`, workers with several
      replicas, validation, or a model with epoch callbacks.
  """

  def __init__(self, model, optimizer, data, model_dir, config, validate_fn=None,
               strategy=None):
    if not isinstance(strategy,
                      tf.distribute.experimental.ParameterServerStrategy):
      raise InputError("ParameterServerTrainer needs a ParameterServerStrategy "
                       "(dcg_tf.training.parameter_server.make_strategy), got %r"
                       % (strategy,))
    if strategy.num_replicas_in_sync != 1:
      raise InputError("--strategy=parameter_server: one replica per worker "
                       "(got %d)" % strategy.num_replicas_in_sync)
    if config.validate_every:
      raise InputError("--validate_every is not supported with "
                       "--strategy=parameter_server; set it to 0 and evaluate "
                       "the checkpoints (experiments.evaluate)")
    if list(model.training_callbacks(data, config.seed)):
      raise InputError("--strategy=parameter_server: %s has epoch callbacks, "
                       "which the coordinator does not run"
                       % type(model).__name__)
    super().__init__(model, optimizer, data, model_dir, config,
                     validate_fn=validate_fn, strategy=strategy)
    self.coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    # The strategy's count of its cluster's workers (no public accessor).
    self.num_workers = strategy.extended._num_workers  # pylint: disable=protected-access

    @tf.function
    def step(iterator):
      return strategy.run(model.train_step, args=(next(iterator),))
    self._train_fn = step

  def _first_batch(self):
    """Batch 0 of epoch 0, read here (the coordinator)."""
    return next(iter(trainer_lib.training_dataset(
        self.model, self.data, self.config, 0)))

  def _build(self, batch):
    """Creates the model's and the optimizer's variables on the servers."""
    with self.strategy.scope():
      if not self.model.built:
        self.model.total_loss(batch, training=False)
        self.model.built = True
      self.optimizer.build(self.model.trainable_variables)

  def _worker_dataset(self, epoch, skip):
    """Each worker's batches of `epoch` from batch `skip` of the epoch."""
    model, data, config, workers = (self.model, self.data, self.config,
                                    self.num_workers)

    def dataset_fn():
      ds = trainer_lib.training_dataset(model, data, config, epoch)
      if workers == 1:
        return ds.skip(skip)
      index = tf.distribute.coordinator.experimental_get_current_worker_index()
      return ds.shard(workers, index).skip(skip // workers).repeat()

    return self.coordinator.create_per_worker_dataset(dataset_fn)

  def _finish(self, pending, writer):
    """Waits for the scheduled steps; counts and logs them in order."""
    self.coordinator.join()
    metrics = {}
    for remote in pending:
      metrics = {k: float(v) for k, v in remote.fetch().items()}
      step = int(self.global_step) + 1
      if not math.isfinite(metrics["loss"]):
        raise trainer_lib.NonFiniteLossError(
            "training loss became %s at step %d; the last good checkpoint is "
            "%s. Lower --learning_rate or check the data."
            % (metrics["loss"], step, self.manager.latest_checkpoint))
      self.global_step.assign(step)
      self.step_in_epoch.assign_add(1)
      if step % self.config.log_every == 0:
        with writer.as_default(step=step):
          for name, value in metrics.items():
            tf.summary.scalar(name, value)
        self.history.append(dict(metrics, step=step))
    del pending[:]
    return metrics

  def train(self):
    """Runs until `epochs` (or `steps`) are done; returns the last metrics."""
    config = self.config
    restored = self.restore()
    if restored:
      print("Resuming from %s (step %d, epoch %d, batch %d of the epoch)"
            % (restored, int(self.global_step), int(self.epoch),
               int(self.step_in_epoch)), file=sys.stderr)
    elif not self.model.built:
      self._build(self._first_batch())
    print("table shards: %s" % ", ".join(
        "%s on %s" % kv for kv in sorted(shard_devices(self.model).items())),
          file=sys.stderr)
    writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "logs"))
    per_epoch = self.steps_per_epoch()
    metrics = {}
    while int(self.epoch) < config.epochs:
      if config.steps and int(self.global_step) >= config.steps:
        break
      skip = int(self.step_in_epoch)
      todo = per_epoch - skip
      if config.steps:
        todo = min(todo, config.steps - int(self.global_step))
      iterator = iter(self._worker_dataset(int(self.epoch), skip))
      pending = []
      for _ in range(todo):
        pending.append(self.coordinator.schedule(self._train_fn,
                                                 args=(iterator,)))
        if (int(self.global_step) + len(pending)) % config.checkpoint_every == 0:
          metrics = self._finish(pending, writer) or metrics
          self._save(self.manager, int(self.global_step))
      metrics = self._finish(pending, writer) or metrics
      if int(self.step_in_epoch) == per_epoch:
        self.epoch.assign_add(1)
        self.step_in_epoch.assign(0)
      self._save(self.manager, int(self.global_step))
    writer.flush()
    return metrics
