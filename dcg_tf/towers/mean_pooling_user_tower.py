"""User tower of YouTube DNN: masked mean of the history's item embeddings, then an MLP."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.towers.embedding_head_tower import EmbeddingHeadTower


@keras.utils.register_keras_serializable(package="dcg_tf")
class MeanPoolingUserTower(EmbeddingHeadTower):
  """Averages the embeddings of the valid history items, then applies an MLP.

  `f(x) = normalize(W_out MLP(sum_t m_t e(y_t) / max(1, sum_t m_t)))` where
  `m_t` is `history_mask`: padded positions are left out of the mean, and an
  empty history averages to zeros; `normalize(W_out MLP(.))` is a
  `ProjectionHead`. Covington et al., "Deep Neural Networks for
  YouTube Recommendations" (RecSys'16), section 3 / Figure 3 ("embedded video
  watches" averaged, then ReLU layers).

  Args:
    item_embedding: the `ItemEmbedding` shared with the item tower.
    output_dim: dimension of the final linear projection; None for none.
    hidden_units: hidden layer sizes (ReLU by default) before the projection.
    activation: activation of the hidden layers.
    l2_normalize: l2-normalise the output (cosine similarity downstream).
    dropout: dropout rate after each hidden layer (training only).

  Call:
    batch: dict with `history` int64 [B, L] and `history_mask` bool [B, L]
      (other keys are ignored) -> float32 [B, D].

  Attributes:
    embedding_dim: D. normalized: whether outputs are unit vectors.

  Example:
    >>> tower = MeanPoolingUserTower(ItemEmbedding(num_items=100, dim=32),
    ...                              output_dim=32, hidden_units=[64])
    >>> tower({"history": h, "history_mask": h > 0})   # [B, 32]
  """

  def pooled_history(self, batch):
    """Masked mean of the history item embeddings: [B, D_item]."""
    history = batch["history"]                                  # [B, L]
    mask = tf.cast(batch["history_mask"], tf.float32)           # [B, L]
    vectors = self.item_embedding(history) * mask[..., None]    # [B, L, D_item]
    count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)        # [B]
    return tf.reduce_sum(vectors, axis=1) / count[:, None]      # [B, D_item]

  def call(self, batch, training=False):
    x = self.pooled_history(batch)                    # [B, D_item]
    return self.head(x, training=training)            # [B, D]
