"""tf.distribute strategies for the trainer: which one, and who is the chief.

`make_strategy(name)` turns `experiments.train --strategy` into a
`tf.distribute.Strategy` (or None, one device, the default):

- "mirrored": `tf.distribute.MirroredStrategy`, synchronous data parallelism
  over the devices of one machine (its GPUs; with `logical_cpus=N`, the CPU
  split into N logical devices, which is how the tests run it).
- "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, the same over
  several processes/machines, each started with its own `TF_CONFIG`
  (cluster `{"worker": [...]}` and its `task`).
- "parameter_server": `tf.distribute.experimental.ParameterServerStrategy`,
  variables on parameter servers, embedding tables sharded over them; made
  in the `"chief"` task of TF_CONFIG, the coordinator, which drives the
  workers with `ClusterCoordinator` (`dcg_tf.training.parameter_server`;
  the `"worker"` and `"ps"` tasks only serve).

A strategy must be made before TensorFlow touches a device: first thing in a
binary. docs/scale.md, "Training past one machine".
"""

import json
import os

import tensorflow as tf

from dcg_tf.errors import InputError

STRATEGIES = ("none", "mirrored", "multi_worker", "parameter_server")


def split_cpu(count):
  """Splits the first CPU into `count` logical devices (before TF starts).

  Raises:
    InputError: TensorFlow already initialised its devices.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))
  except RuntimeError as e:
    raise InputError("logical_cpus (--logical_cpus=%d) must be set before "
                     "TensorFlow initialises its devices: %s" % (count, e)) from e


def make_strategy(name, logical_cpus=0, ps_shards=0, ps_min_rows=1):
  """The strategy called `name` (one of `STRATEGIES`); None for "none".

  Args:
    name: "none" | "mirrored" | "multi_worker" | "parameter_server".
    logical_cpus: with "mirrored", mirror over this many logical CPU devices
      (0: TensorFlow's default devices, the GPUs if any).
    ps_shards: with "parameter_server", cut each big table into this many
      row shards (0: one per parameter server).
    ps_min_rows: with "parameter_server", the rows from which a float
      variable is a big table (`parameter_server.table_partitioner`).

  Raises:
    InputError: an unknown name, a multi-process strategy without the
      TF_CONFIG it needs, or "parameter_server" in a task other than the
      chief (workers and parameter servers serve:
      `dcg_tf.training.parameter_server.serve`).
  """
  if name not in STRATEGIES:
    raise InputError("strategy (--strategy) must be one of %s, got %r"
                     % (", ".join(STRATEGIES), name))
  if name == "none":
    return None
  if name == "mirrored":
    if logical_cpus:
      split_cpu(logical_cpus)
      return tf.distribute.MirroredStrategy(
          ["/cpu:%d" % i for i in range(int(logical_cpus))])
    return tf.distribute.MirroredStrategy()
  if "TF_CONFIG" not in os.environ:
    raise InputError("--strategy=%s needs the TF_CONFIG environment variable "
                     "(the cluster and this process's task; docs/scale.md)"
                     % name)
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  # pylint: disable=g-import-not-at-top
  from dcg_tf.training import parameter_server  # imports the trainer
  task_type, _ = task()
  if task_type != "chief":
    raise InputError("--strategy=parameter_server: only the \"chief\" task of "
                     "TF_CONFIG makes the strategy (this task is %r; "
                     "\"worker\" and \"ps\" tasks run "
                     "dcg_tf.training.parameter_server.serve)" % (task_type,))
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  jobs = resolver.cluster_spec().as_dict()
  if not jobs.get("ps") or not jobs.get("worker"):
    raise InputError("--strategy=parameter_server: TF_CONFIG's cluster needs "
                     "\"worker\" and \"ps\" tasks, got %s" % sorted(jobs))
  return parameter_server.make_strategy(resolver, ps_shards or len(jobs["ps"]),
                                        ps_min_rows)


def task():
  """(task type, task id) of this process from TF_CONFIG; (None, None) if unset."""
  config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  entry = config.get("task", {})
  return entry.get("type"), entry.get("index")


def is_chief(strategy):
  """True when this process writes checkpoints and logs.

  One device or MirroredStrategy: always. MultiWorkerMirroredStrategy: the
  "chief" task, or worker 0 when the cluster has no chief (TensorFlow's
  convention).
  """
  if strategy is None or not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = task()
  if task_type is None:
    return True
  cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
  if "chief" in cluster:
    return task_type == "chief"
  return task_type == "worker" and int(task_id) == 0
