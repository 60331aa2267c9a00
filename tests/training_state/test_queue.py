"""FIFOQueue: FIFO order, wrap-around, dequeued entries, checkpoint round trip."""

import collections

import numpy as np
import tensorflow as tf

from dcg_tf.training_state.queue import FIFOQueue


def _reference_fifo(capacity, batches):
  """A deque-based reference: the last `capacity` entries in arrival order."""
  queue = collections.deque(maxlen=capacity)
  dequeued = []
  for batch in batches:
    out = []
    for value in batch:
      out.append(queue[0] if len(queue) == capacity else None)
      queue.append(value)
    dequeued.append(out)
  return list(queue), dequeued


def test_fifo_order_and_wraparound_match_reference():
  capacity = 5
  batches = [[1, 2], [3, 4], [5, 6], [7], [8, 9, 10]]
  q = FIFOQueue(capacity, entry_shape=(), entry_dtype="int64")
  got_dequeued = []
  for batch in batches:
    out, valid = q.enqueue(tf.constant(batch, tf.int64))
    got_dequeued.append([int(v) if ok else None
                         for v, ok in zip(out.numpy(), valid.numpy())])
  expected_contents, expected_dequeued = _reference_fifo(capacity, batches)
  values, valid = q.contents()
  assert valid.numpy().all()
  # The ring buffer, read from the oldest slot (= pointer) on, is the FIFO order.
  start = int(q.pointer.numpy())
  ring = np.roll(values.numpy(), -start).tolist()
  assert ring == expected_contents == [6, 7, 8, 9, 10]
  assert got_dequeued == expected_dequeued
  # Hand-worked: batch [5, 6] into [1..4] evicts 1 when 6 arrives.
  assert got_dequeued[2] == [None, 1]


def test_partial_queue_masks_unwritten_slots():
  q = FIFOQueue(4, entry_shape=(2,), entry_dtype="float32")
  q.enqueue(tf.ones([3, 2]))
  values, valid = q.contents()
  np.testing.assert_array_equal(valid.numpy(), [True, True, True, False])
  np.testing.assert_array_equal(values.numpy()[:3], np.ones([3, 2]))


def test_queue_is_non_trainable_and_checkpoint_restores_exactly(tmp_path):
  q = FIFOQueue(6, entry_shape=(3,), entry_dtype="float32")
  assert not q.trainable_weights
  rng = np.random.default_rng(0)
  for _ in range(3):
    q.enqueue(tf.constant(rng.normal(size=(4, 3)), tf.float32))
  saved = [w.numpy().copy() for w in q.weights]
  path = tf.train.Checkpoint(queue=q).save(str(tmp_path / "ckpt"))
  q2 = FIFOQueue(6, entry_shape=(3,), entry_dtype="float32")
  tf.train.Checkpoint(queue=q2).restore(path).assert_consumed()
  for a, b in zip(saved, q2.weights):
    np.testing.assert_array_equal(a, b.numpy())


def test_config_round_trip():
  q = FIFOQueue(8, entry_shape=(4,), entry_dtype="float32", name="negatives")
  q2 = FIFOQueue.from_config(q.get_config())
  assert (q2.capacity, q2.entry_shape, q2.entry_dtype) == (8, (4,), "float32")
