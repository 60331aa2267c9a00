"""MultiQueue: the update rules after CLRec Eq. 13 against a deque reference."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.training_state.multi_queue import MultiQueue

H = 3


def _intention(ids):
  """A fixed routing for the tests: item id mod H."""
  return np.asarray(ids) % H


def _tf_intention(ids):
  return tf.math.floormod(ids, H)


class _Reference:
  """Rules (1)-(3) with Python deques, one item at a time."""

  def __init__(self, main_size, secondary_size):
    self.main = collections.deque()
    self.main_size = main_size
    self.secondary = [collections.deque(maxlen=secondary_size) for _ in range(H)]

  def update(self, ids):
    for item in ids:
      self.main.append(item)                       # rule (1)
      if len(self.main) > self.main_size:
        out = self.main.popleft()
        self.secondary[_intention(out)].append(out)  # rule (2); maxlen drops (3)


def _ordered(ids, pointer, valid):
  """A ring buffer's valid entries from the oldest on."""
  size = int(valid.sum())
  if size < len(ids):
    return list(ids[:size])
  return list(np.roll(ids, -int(pointer)))


@pytest.mark.parametrize("cached", [False, True])
def test_update_rules_match_reference(cached):
  main_size, secondary_size = 4, 2
  queue = MultiQueue(main_size, secondary_size, H,
                     value_dim=2 if cached else None)
  reference = _Reference(main_size, secondary_size)
  # Intention = id mod 3. Batch 2 fills Q_0 and evicts 1, 2, 3 (into Q_1,
  # Q_2, Q_0); batch 3 evicts 4, 5, 6, 7: 4 and 7 join Q_1 and push 1 out of
  # it (rule 3); batch 4 evicts 10, 13, 16, three items of intention 1, into a
  # secondary queue of size 2 in one step; batch 5 evicts 19, 22 (Q_1).
  batches = [[1, 2, 3], [4, 5, 6, 7], [10, 13, 16, 19], [22, 25, 28],
             [30, 33]]
  for batch in batches:
    ids = tf.constant(batch, tf.int64)
    values = tf.stack([tf.cast(ids, tf.float32), -tf.cast(ids, tf.float32)], 1)
    out = queue.update(ids, values if cached else None,
                       intention_fn=_tf_intention)
    reference.update(batch)
    np.testing.assert_array_equal(
        out["dequeued_intention"].numpy()[out["dequeued_valid"].numpy()],
        _intention(out["dequeued"].numpy()[out["dequeued_valid"].numpy()]))
    main_ids, main_values, main_valid = queue.main_contents()
    assert _ordered(main_ids.numpy(), queue.main_ids.pointer.numpy(),
                    main_valid.numpy()) == list(reference.main)
    sec_ids, sec_values, sec_valid = queue.secondary_contents()
    for h in range(H):
      got = _ordered(sec_ids.numpy()[h], queue.secondary_pointer.numpy()[h],
                     sec_valid.numpy()[h])
      assert got == list(reference.secondary[h]), (batch, h)
    if cached:  # the cached values travel with their ids
      v = sec_values.numpy()[sec_valid.numpy()]
      np.testing.assert_array_equal(v[:, 0], sec_ids.numpy()[sec_valid.numpy()])
      np.testing.assert_array_equal(v[:, 1], -v[:, 0])
      v = main_values.numpy()[main_valid.numpy()]
      np.testing.assert_array_equal(v[:, 0], main_ids.numpy()[main_valid.numpy()])
  # Hand-worked final state: Q_0 holds the last 4 arrivals; Q_0..Q_2 the last
  # two evicted items of their intention.
  assert list(reference.main) == [25, 28, 30, 33]
  assert [list(q) for q in reference.secondary] == [[3, 6], [19, 22], [2, 5]]


def test_contents_give_main_and_own_secondary_queue():
  queue = MultiQueue(main_size=2, secondary_size=2, num_intentions=H)
  queue.update(tf.constant([3, 4], tf.int64), intention_fn=_tf_intention)
  queue.update(tf.constant([5, 8], tf.int64), intention_fn=_tf_intention)
  # Q_0 = [5, 8]; 3 -> Q_0, 4 -> Q_1; Q_2 empty.
  main_ids, main_values, main_valid = queue.main_contents()
  assert main_values is None
  np.testing.assert_array_equal(main_ids.numpy(), [5, 8])
  np.testing.assert_array_equal(main_valid.numpy(), [1, 1])
  sec_ids, sec_values, sec_valid = queue.secondary_contents()
  assert sec_values is None
  np.testing.assert_array_equal(sec_ids.numpy(), [[3, 0], [4, 0], [0, 0]])
  np.testing.assert_array_equal(sec_valid.numpy(), [[1, 0], [1, 0], [0, 0]])
  # Examples with h+ = 1, 2, 0 read Q_{h+} as MultiCLRecModel does.
  h_plus = tf.constant([1, 2, 0], tf.int64)
  np.testing.assert_array_equal(tf.gather(sec_ids, h_plus).numpy(),
                                [[4, 0], [0, 0], [3, 0]])
  np.testing.assert_array_equal(tf.gather(sec_valid, h_plus).numpy(),
                                [[1, 0], [0, 0], [1, 0]])


def test_non_trainable_and_checkpoint_restores_every_queue(tmp_path):
  queue = MultiQueue(3, 2, H, value_dim=4)
  assert not queue.trainable_weights
  rng = np.random.default_rng(0)
  for _ in range(4):
    ids = tf.constant(rng.integers(1, 50, size=3), tf.int64)
    queue.update(ids, tf.constant(rng.normal(size=(3, 4)), tf.float32),
                 intention_fn=_tf_intention)
  saved = [w.numpy().copy() for w in queue.weights]
  assert len(saved) == 10  # Q_0 ids/values (buffer, pointer, size) + 4 secondary
  path = tf.train.Checkpoint(queue=queue).save(str(tmp_path / "ckpt"))
  restored = MultiQueue(3, 2, H, value_dim=4)
  tf.train.Checkpoint(queue=restored).restore(path).assert_consumed()
  for a, b in zip(saved, restored.weights):
    np.testing.assert_array_equal(a, b.numpy())


def test_errors_and_config():
  with pytest.raises(ValueError, match="pass values"):
    MultiQueue(2, 2, H, value_dim=3).update(tf.constant([1], tf.int64),
                                           intention_fn=_tf_intention)
  with pytest.raises(ValueError, match="intention_fn"):
    MultiQueue(2, 2, H).update(tf.constant([1], tf.int64))
  queue = MultiQueue(5, 6, 7, value_dim=8, name="q")
  clone = MultiQueue.from_config(queue.get_config())
  assert (clone.main_size, clone.secondary_size, clone.num_intentions,
          clone.value_dim) == (5, 6, 7, 8)
