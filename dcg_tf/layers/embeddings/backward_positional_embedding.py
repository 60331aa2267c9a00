"""Backward positional embedding: the earliest click is position 0.

CLRec (Zhou et al., KDD'21), appendix B.1.1 "Backward Positional Embedding":
the earliest click of a history is at position 0 and the latest click at a
position that varies with the history length (the forward way, latest = 0,
was found not to help).
"""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class BackwardPositionalEmbedding(keras.layers.Layer):
  """Positional embeddings counted from the earliest valid click.

  The position of a valid slot is the number of valid slots before it, so the
  layer works for any alignment; for the left-aligned histories of
  docs/design.md the position of slot i is simply i. Padding slots get zeros.

  Args:
    max_len: the longest history L (rows of the table).
    dim: embedding size D.
    embeddings_initializer: "normal" (CLRec appendix B.2).

  Call args:
    mask: bool [B, L], True at valid clicks.

  Returns:
    [B, L, D] embeddings, zero at padding.

  Example:
    >>> layer = BackwardPositionalEmbedding(max_len=50, dim=8)
    >>> layer(tf.constant([[True, True, False]])).shape   # [1, 3, 8]
  """

  def __init__(self, max_len, dim, embeddings_initializer="normal", **kwargs):
    super().__init__(**kwargs)
    self.max_len = int(max_len)
    self.dim = int(dim)
    self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
    self.embedding = keras.layers.Embedding(
        self.max_len, self.dim,
        embeddings_initializer=self.embeddings_initializer, name="positions")

  def positions(self, mask):
    """bool [B, L] -> int64 [B, L]: valid slots before each slot (0 at padding)."""
    mask = tf.cast(mask, tf.int64)
    positions = tf.cumsum(mask, axis=1, exclusive=True) * mask  # [B, L]
    return tf.minimum(positions, self.max_len - 1)

  def call(self, mask):
    embedded = self.embedding(self.positions(mask))                # [B, L, D]
    return embedded * tf.cast(mask, embedded.dtype)[..., None]     # [B, L, D]

  def get_config(self):
    config = super().get_config()
    config.update(max_len=self.max_len, dim=self.dim,
                  embeddings_initializer=keras.initializers.serialize(
                      self.embeddings_initializer))
    return config
