"""ParameterServerStrategy: embedding tables sharded over parameter servers.

A minimal custom training loop after TensorFlow's "Parameter server training
with ParameterServerStrategy" tutorial: the coordinator (this process)
creates the model and optimizer under the strategy's scope, so every variable
lives on a parameter server, and tables with at least `min_rows` rows are
cut by `table_partitioner` into `num_shards` row ranges on different servers
(`tf.distribute.ShardedVariable`); `tf.distribute.coordinator.ClusterCoordinator`
schedules `model.train_step` on the workers, each reading its batches from
`create_per_worker_dataset` (the same pipeline, a pure function of (seed,
epoch)). Lookups gather the rows they need from the shards; `LazyAdam`
applies the `IndexedSlices` gradient of each shard to its rows.

Scope: `two_tower` (and any model whose step needs no cross-replica state);
one worker runs the global batch, so with one worker the steps are those of
the one-device trainer. With several workers the steps are asynchronous (each
worker's gradient is applied when it arrives), which is the strategy's
design, not the one-device result. No checkpoints, resume, validation or
epoch callbacks yet (docs/scale.md, "Training past one machine").
"""

import tensorflow as tf

from dcg_tf.training import trainer as trainer_lib


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


def in_process_cluster(num_workers, num_ps):
  """Worker and parameter-server `tf.distribute.Server`s in this process.

  TensorFlow's documented in-process cluster (the tutorial's
  `create_in_process_cluster`), on free ports of 127.0.0.1. Returns a
  `SimpleClusterResolver` for `ParameterServerStrategy`.
  """
  # pylint: disable=g-import-not-at-top
  import socket
  sockets = [socket.socket() for _ in range(num_workers + num_ps)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  cluster = {"worker": ["127.0.0.1:%d" % p for p in ports[:num_workers]],
             "ps": ["127.0.0.1:%d" % p for p in ports[num_workers:]]}
  spec = tf.train.ClusterSpec(cluster)
  for i in range(num_workers):
    tf.distribute.Server(spec, job_name="worker", task_index=i, protocol="grpc",
                         start=True)
  for i in range(num_ps):
    tf.distribute.Server(spec, job_name="ps", task_index=i, protocol="grpc",
                         start=True)
  return tf.distribute.cluster_resolver.SimpleClusterResolver(
      spec, rpc_layer="grpc")


def make_strategy(cluster_resolver, num_shards, min_rows):
  """`ParameterServerStrategy` whose big tables are cut into `num_shards`."""
  return tf.distribute.experimental.ParameterServerStrategy(
      cluster_resolver,
      variable_partitioner=table_partitioner(num_shards, min_rows))


def build(strategy, model, optimizer, data, config):
  """Creates the variables of `model` and `optimizer` on the servers.

  Call before restoring initial weights (a checkpoint of unsharded
  variables restores into the shards); `train` calls it if needed.
  """
  model.optimizer = optimizer
  if not model.built:
    first = next(iter(trainer_lib.training_dataset(model, data, config, 0)))
    with strategy.scope():
      model.total_loss(first, training=False)
      optimizer.build(model.trainable_variables)
    model.built = True


def train(strategy, model, optimizer, data, config):
  """Trains `config.steps` steps of epoch 0 on the workers; returns losses.

  Args:
    strategy: a `ParameterServerStrategy` under whose scope `model` and
      `optimizer` were created.
    model: a `RetrievalModel`.
    optimizer: its optimizer.
    data: the `ProcessedDataset`.
    config: a `TrainerConfig`; `batch_size` is each worker's batch, `steps`
      the number of steps scheduled (within epoch 0).

  Returns:
    list of float, the loss of each step in schedule order.
  """
  coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
  build(strategy, model, optimizer, data, config)

  def dataset_fn():
    return trainer_lib.training_dataset(model, data, config, 0)

  iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))

  @tf.function
  def step(iterator):
    outputs = strategy.run(model.train_step, args=(next(iterator),))
    return outputs["loss"]

  losses = [coordinator.schedule(step, args=(iterator,))
            for _ in range(config.steps)]
  coordinator.join()
  return [float(loss.fetch()) for loss in losses]
