"""ICANUserTower (MicRec Eq. 6): the K most recent clicks, most recent first,
flattened; older clicks and padding change nothing; user features enter;
config round trip."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.ican_user_tower import ICANUserTower


def _tower(**kwargs):
  return ICANUserTower(ItemEmbedding(num_items=20, dim=4), num_behaviors=3,
                       num_heads=1, hidden_units=[8], output_dim=5, **kwargs)


def test_recent_behaviors_are_the_last_k_most_recent_first():
  tower = _tower()
  # Row 0: 5 clicks 1..5 -> the 3 latest, newest first: [5, 4, 3].
  # Row 1: 2 clicks 7, 8 -> [8, 7, pad].
  history = tf.constant([[1, 2, 3, 4, 5, 0], [7, 8, 0, 0, 0, 0]], tf.int64)
  ids, valid = tower.recent_behaviors({"history": history,
                                       "history_mask": history > 0})
  assert ids.numpy().tolist() == [[5, 4, 3], [8, 7, 0]]
  assert valid.numpy().tolist() == [[True] * 3, [True, True, False]]


def test_older_clicks_and_padding_do_not_change_the_output():
  tower = _tower()
  a = tf.constant([[9, 1, 2, 3]], tf.int64)         # 9 is older than the last 3
  b = tf.constant([[4, 1, 2, 3, 0, 0]], tf.int64)   # another old click, padding
  out_a = tower({"history": a, "history_mask": a > 0})
  out_b = tower({"history": b, "history_mask": b > 0})
  np.testing.assert_allclose(out_a.numpy(), out_b.numpy(), atol=1e-6)
  c = tf.constant([[9, 1, 3, 2]], tf.int64)         # order of the last 3 matters
  out_c = tower({"history": c, "history_mask": c > 0})
  assert not np.allclose(out_a.numpy(), out_c.numpy())


def test_user_features_enter_and_config_round_trips():
  gender = np.array([0, 1, 2], np.int32)
  tower = _tower(user_features=[{"name": "gender", "vocab_size": 2}],
                 user_feature_arrays={"gender": gender})
  h = tf.constant([[1, 2], [1, 2]], tf.int64)
  batch = {"history": h, "history_mask": h > 0, "user": tf.constant([1, 2])}
  out = tower(batch).numpy()
  assert out.shape == (2, 5) and not np.allclose(out[0], out[1])
  clone = ICANUserTower.from_config(tower.get_config())
  clone(batch)
  clone.set_weights(tower.get_weights())
  np.testing.assert_allclose(clone(batch).numpy(), out, atol=1e-6)
