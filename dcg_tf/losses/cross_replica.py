"""Negatives gathered across the replicas of a `tf.distribute` strategy.

A loss whose negatives come from the batch (the in-batch softmax, CLRec's
queue) sees only its own replica's rows when the global batch of G rows is
split over R replicas: G/R - 1 in-batch negatives instead of G - 1, a
different loss than on one device (tensorflow-recommenders keeps them per
replica, its issues #138 and #710). These functions all-gather a replica's
rows so that every replica scores its G/R queries against the G rows of the
global batch, as one device would.

The gradient flows back through the gather: `ReplicaContext.all_gather`'s
gradient sums the replicas' gradients of the gathered tensor and hands each
replica the slice of its own rows, so with every replica's loss scaled by 1/R
(`dcg_tf.models.base.RetrievalModel.train_step`) the summed gradients are the
single-device gradients of the global batch's mean loss.

Outside a replica context with more than one replica (no strategy, the
build in cross-replica context, a parameter-server worker) every function
returns its input unchanged: the one-device graph is the one it always was.
"""

import tensorflow as tf


def num_replicas():
  """Replicas in sync in the present replica context; 1 outside one."""
  context = tf.distribute.get_replica_context()
  return 1 if context is None else int(context.num_replicas_in_sync)


def all_gather(tensor):
  """The global batch of `tensor` [b, ...]: [R b, ...] in replica order.

  Replica r's rows are rows `r b .. (r + 1) b - 1`, as the split of the
  global batch gave them (`tf.distribute.Strategy.experimental_distribute_dataset`
  hands replica r the r-th slice of each global batch). Every replica gets
  the same tensor. With one replica: `tensor` itself.
  """
  if num_replicas() == 1:
    return tensor
  devices = tf.distribute.get_strategy().extended.worker_devices
  if len(devices) == 1:
    # MultiWorkerMirroredStrategy with one device per worker: a traced
    # tensor without a device fails its all_gather ("destinations can not
    # be empty"), so the input is placed on the worker's device.
    with tf.device(devices[0]):
      tensor = tf.identity(tensor)
  return tf.distribute.get_replica_context().all_gather(tensor, axis=0)


def local_first(local, gathered):
  """`gathered` [G, ...] reordered so that this replica's rows come first.

  Losses that find row i's positive in column i (`in_batch_softmax`) take
  `local_first(candidates, all_gather(candidates))`: columns 0..b-1 are the
  replica's own rows (the `local` tensor itself, so their gradient needs no
  gather), then the other replicas' rows in replica order. A softmax does not
  depend on the order of its columns, so the loss is the global-batch loss.
  With one replica: `local` itself.

  Args:
    local: [b, ...] this replica's rows.
    gathered: [R b, ...] `all_gather(local)`.
  """
  if num_replicas() == 1:
    return local
  context = tf.distribute.get_replica_context()
  size = tf.shape(local)[0]
  start = tf.cast(context.replica_id_in_sync_group, tf.int32) * size
  others = tf.concat([gathered[:start], gathered[start + size:]], 0)  # [G - b, ...]
  return tf.concat([local, others], 0)                                # [G, ...]


def global_rows(local_size):
  """Rows of the global batch that this replica holds: int64 [b].

  `r b + arange(b)` for replica r; `arange(b)` with one replica.
  """
  rows = tf.range(local_size, dtype=tf.int64)                          # [b]
  if num_replicas() == 1:
    return rows
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  return tf.cast(replica, tf.int64) * tf.cast(local_size, tf.int64) + rows
