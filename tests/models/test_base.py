"""RetrievalModel.queries_and_targets: every position predicts its next event."""

import numpy as np
import tensorflow as tf

from dcg_tf.models.base import RetrievalModel


class _IdentitySequenceTower(tf.Module):
  """Per-position 'embedding' = [item id, position]: makes rows traceable."""

  def __call__(self, batch, training=False):
    return self.sequence_output(batch)[:, -1]

  def sequence_output(self, batch, training=False):
    history = tf.cast(batch["history"], tf.float32)                 # [B, L]
    pos = tf.broadcast_to(tf.range(tf.shape(history)[1], dtype=tf.float32),
                          tf.shape(history))                        # [B, L]
    return tf.stack([history, pos], -1)                             # [B, L, 2]


def test_all_positions_pairs_each_position_with_the_next_event():
  batch = {"history": tf.constant([[5, 7, 9, 0], [3, 0, 0, 0]], tf.int64),
           "history_mask": tf.constant([[1, 1, 1, 0], [1, 0, 0, 0]]) > 0,
           "target": tf.constant([11, 4], tf.int64)}
  model = RetrievalModel(_IdentitySequenceTower(), None, all_positions=True)
  queries, targets = model.queries_and_targets(batch)
  # User 0: 5 -> 7, 7 -> 9, 9 -> 11 (the target); user 1: 3 -> 4.
  np.testing.assert_array_equal(targets.numpy(), [7, 9, 11, 4])
  np.testing.assert_array_equal(queries.numpy(),
                                [[5, 0], [7, 1], [9, 2], [3, 0]])


def test_one_query_per_example_by_default():
  batch = {"history": tf.constant([[5, 7, 0]], tf.int64),
           "history_mask": tf.constant([[1, 1, 0]]) > 0,
           "target": tf.constant([8], tf.int64)}
  model = RetrievalModel(_IdentitySequenceTower(), None)
  queries, targets = model.queries_and_targets(batch)
  np.testing.assert_array_equal(targets.numpy(), [8])
  np.testing.assert_array_equal(queries.numpy(), [[0, 2]])  # the last slot (pad)
