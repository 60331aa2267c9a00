"""Query tower of an item-to-item task: the features of the user's last item."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower


@keras.utils.register_keras_serializable(package="dcg_tf")
class LastItemUserTower(MeanPoolingUserTower):
  """Encodes the most recent history item (id and features), then an MLP.

  SSL-CFM (Yao et al., CIKM'21), section 4.1: on Wikipedia and AAI the query
  is an item ("the seed item", its features) and the target the item that
  followed it, so the query tower sees one item, not a history:
  `f(x) = normalize(W_out MLP(e(y_last)))` with `e` the item embedding shared
  with the item tower (every table) and an MLP of its own. In a next-item
  dataset the last history event is the previous item: positions are
  left-aligned (`dcg_tf.data.pipeline`), so it sits at `sum(history_mask) - 1`.
  A user with an empty history gets item 0, whose embedding is zeros. The
  head, arguments and config are `MeanPoolingUserTower`'s; only the pooling
  differs.

  Args: those of `MeanPoolingUserTower` (the item embedding shared with the
  item tower, output_dim, hidden_units, activation, l2_normalize, dropout).

  Call:
    batch: dict with `history` int64 [B, L] and `history_mask` bool [B, L]
      (other keys are ignored) -> float32 [B, D].

  Example:
    >>> tower = LastItemUserTower(ItemEmbedding(num_items=100, dim=32),
    ...                           output_dim=32, hidden_units=[64])
    >>> tower({"history": h, "history_mask": h > 0})   # [B, 32]
  """

  @staticmethod
  def last_item(batch):
    """int64 [B]: the most recent history item (0 for an empty history)."""
    history = tf.cast(batch["history"], tf.int64)                    # [B, L]
    length = tf.reduce_sum(tf.cast(batch["history_mask"], tf.int32), 1)  # [B]
    last = tf.gather(history, tf.maximum(length - 1, 0), batch_dims=1)   # [B]
    return tf.where(length > 0, last, tf.zeros_like(last))

  def pooled_history(self, batch):
    """The last history item's embedding (in place of the mean): [B, D_item]."""
    return self.item_embedding(self.last_item(batch))              # [B, D_item]
