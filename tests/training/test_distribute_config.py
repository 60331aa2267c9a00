"""dcg_tf.training.distribute, dcg_tf.training.parameter_server and
dcg_tf.losses.cross_replica without processes: the chief rule of TF_CONFIG,
refused settings, the table partitioner, and the one-replica identity (the
default path must be the one-device graph)."""

import json

import pytest
import tensorflow as tf

from dcg_tf.errors import InputError
from dcg_tf.losses import cross_replica
from dcg_tf.training import distribute
from dcg_tf.training import parameter_server


class _FakeMultiWorker(tf.distribute.MultiWorkerMirroredStrategy):
  def __init__(self):  # pylint: disable=super-init-not-called
    pass


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
])
def test_chief_is_worker_0_or_the_chief_task(monkeypatch, cluster, task, chief):
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
  assert distribute.is_chief(_FakeMultiWorker()) is chief
  assert distribute.is_chief(None)    # one device writes its checkpoints


def test_unknown_strategy_and_missing_tf_config_are_refused(monkeypatch):
  assert distribute.make_strategy("none") is None
  with pytest.raises(InputError, match="must be one of"):
    distribute.make_strategy("horovod")
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(InputError, match="TF_CONFIG"):
    distribute.make_strategy("multi_worker")


def test_one_replica_returns_its_input_itself():
  x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
  assert cross_replica.num_replicas() == 1
  assert cross_replica.all_gather(x) is x
  assert cross_replica.local_first(x, x) is x
  assert cross_replica.global_rows(3).numpy().tolist() == [0, 1, 2]


def test_parameter_server_strategy_is_the_chiefs_for_two_tower_only(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(InputError, match="TF_CONFIG"):
    distribute.make_strategy("parameter_server")
  cluster = {"chief": ["c:1"], "worker": ["w:1"], "ps": ["p:1"]}
  # A worker or ps task serves (parameter_server.serve), it makes no strategy.
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": cluster, "task": {"type": "worker", "index": 0}}))
  with pytest.raises(InputError, match="only the \"chief\" task"):
    distribute.make_strategy("parameter_server")
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": {"chief": ["c:1"], "worker": ["w:1"]},
       "task": {"type": "chief", "index": 0}}))
  with pytest.raises(InputError, match="needs \"worker\" and \"ps\" tasks"):
    distribute.make_strategy("parameter_server")
  with pytest.raises(InputError, match="--model=two_tower only, got --model=clrec"):
    parameter_server.check_supported("clrec")
  with pytest.raises(InputError, match="--param=dropout=0"):
    parameter_server.check_supported("two_tower", {"dropout": 0.1})
  parameter_server.check_supported("two_tower", {"dropout": 0.0})


def test_table_partitioner_cuts_big_float_tables_only():
  partition = parameter_server.table_partitioner(num_shards=2, min_rows=31)
  assert partition(tf.TensorShape([31, 8]), tf.float32) == [2, 1]   # a table
  assert partition(tf.TensorShape([30, 8]), tf.float32) == [1, 1]   # too few rows
  assert partition(tf.TensorShape([31]), tf.int64) == [1]           # catalog ids
  assert partition(tf.TensorShape([]), tf.float32) == [1]           # a scalar
