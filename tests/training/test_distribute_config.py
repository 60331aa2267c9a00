"""dcg_tf.training.distribute and dcg_tf.losses.cross_replica without processes:
the chief rule of TF_CONFIG, refused settings, and the one-replica identity
(the default path must be the one-device graph)."""

import json

import pytest
import tensorflow as tf

from dcg_tf.errors import InputError
from dcg_tf.losses import cross_replica
from dcg_tf.training import distribute


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
