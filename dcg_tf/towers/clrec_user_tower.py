"""CLRec's single-queue user encoder: simplified multi-head attention + WHA.

CLRec (Zhou et al., KDD'21), appendix B.1 and B.2:
  x_t = item embedding(y_t) + time bucket(t - t_t) + backward position(t),
  z_1..z_H = l2norm(MultiAtt(X)),  f(x) = l2norm(WHA(z_1..z_H)).
The item embedding is the module the item tower also uses (id embedding +
feature embeddings); the time and position embeddings are only added here.
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.backward_positional_embedding import BackwardPositionalEmbedding
from dcg_tf.layers.nested_config import NestedLayerConfig
from dcg_tf.layers.attention.simplified_multi_head_attention import SimplifiedMultiHeadAttention
from dcg_tf.layers.embeddings.time_bucket_embedding import TimeBucketEmbedding
from dcg_tf.layers.attention.weighted_head_aggregation import WeightedHeadAggregation


def _fresh(initializer):
  # A new instance per table: one unseeded instance reused gives equal draws.
  return keras.initializers.get(keras.initializers.serialize(initializer))


def _embedding_dim(layer):
  for name in ("dim", "output_dim", "embedding_dim"):
    value = getattr(layer, name, None)
    if isinstance(value, int):
      return value
  raise ValueError("CLRecUserTower: cannot read the output size of item_embedding "
                   "%r (no int attribute dim/output_dim/embedding_dim); pass "
                   "embedding_dim=" % (layer,))


@keras.utils.register_keras_serializable(package="dcg_tf")
class CLRecUserTower(NestedLayerConfig, keras.layers.Layer):
  """User tower of the single-queue CLRec (appendix B.1.2).

  Args:
    item_embedding: layer mapping item ids int [..] to [.., D] (shared with the
      item tower, e.g. `dcg_tf.layers.embeddings.item_embedding.ItemEmbedding`).
    max_len: longest history L (size of the positional table).
    num_heads: H, number of attention heads.
    attention_hidden_units: hidden width of the attention MLP.
    num_time_buckets: rows of the time bucket table (log2 buckets by default).
    time_boundaries: optional explicit bucket boundaries (see
      `TimeBucketEmbedding`).
    l2_normalize: l2-normalise the heads and the output (appendix B.2).
    embeddings_initializer: of the time and position tables ("normal", B.2).
    embedding_dim: D; read from `item_embedding` when None.

  Call args:
    batch: dict with `history` int64 [B, L] (left-aligned, 0 = padding),
      `history_mask` bool [B, L], `history_timestamp` int64 [B, L] and
      optionally `target_timestamp` int64 [B] (or [B, M]: the first column is
      used). Without `target_timestamp` the query time is the latest click's.

  Returns:
    [B, D] user embeddings.

  Example:
    >>> tower = CLRecUserTower(keras.layers.Embedding(100, 16), max_len=50)
    >>> tower({"history": h, "history_mask": h > 0, "history_timestamp": t,
    ...        "target_timestamp": t_now})   # [B, 16]
  """

  NESTED_LAYERS = ("item_embedding",)

  def __init__(self, item_embedding, max_len, num_heads=4,
               attention_hidden_units=64, num_time_buckets=32,
               time_boundaries=None, l2_normalize=True,
               embeddings_initializer="normal", embedding_dim=None, **kwargs):
    super().__init__(**kwargs)
    self.item_embedding = item_embedding
    self.max_len = int(max_len)
    self.num_heads = int(num_heads)
    self.attention_hidden_units = int(attention_hidden_units)
    self.num_time_buckets = int(num_time_buckets)
    self.time_boundaries = (None if time_boundaries is None
                            else [int(b) for b in time_boundaries])
    self.l2_normalize = bool(l2_normalize)
    self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
    self.embedding_dim = int(embedding_dim or _embedding_dim(item_embedding))
    self.normalized = self.l2_normalize
    # === Layers ===
    self.time_embedding = TimeBucketEmbedding(
        self.num_time_buckets, self.embedding_dim, boundaries=self.time_boundaries,
        embeddings_initializer=_fresh(self.embeddings_initializer),
        name="time_bucket")
    self.position_embedding = BackwardPositionalEmbedding(
        self.max_len, self.embedding_dim,
        embeddings_initializer=_fresh(self.embeddings_initializer),
        name="position")
    self.attention = SimplifiedMultiHeadAttention(
        self.num_heads, self.attention_hidden_units, name="multi_att")
    self.aggregation = WeightedHeadAggregation(name="wha")

  def click_embeddings(self, batch):
    """X of appendix B.1: [B, L, D] item + time bucket + backward position."""
    for key in ("history", "history_mask", "history_timestamp"):
      if key not in batch:
        raise KeyError("CLRecUserTower: the batch has no %r field (it has: %s)"
                       % (key, ", ".join(sorted(batch))))
    history = tf.cast(batch["history"], tf.int64)                  # [B, L]
    mask = tf.cast(batch["history_mask"], tf.bool)                 # [B, L]
    clicked_at = tf.cast(batch["history_timestamp"], tf.int64)     # [B, L]
    if "target_timestamp" in batch:
      now = tf.cast(batch["target_timestamp"], tf.int64)
      if now.shape.rank == 2:
        now = now[:, 0]                                            # [B]
    else:
      lowest = tf.reduce_min(clicked_at)
      now = tf.reduce_max(tf.where(mask, clicked_at, lowest), axis=1)  # [B]
    items = self.item_embedding(history)                           # [B, L, D]
    times = self.time_embedding(now[:, None] - clicked_at)         # [B, L, D]
    positions = self.position_embedding(mask)                      # [B, L, D]
    return items + times + positions, mask

  def call(self, batch, training=False):
    x, mask = self.click_embeddings(batch)                         # [B, L, D]
    heads = self.attention(x, mask=mask)                           # [B, H, D]
    if self.l2_normalize:
      heads = tf.math.l2_normalize(heads, axis=-1)
    user = self.aggregation(heads)                                 # [B, D]
    if self.l2_normalize:
      user = tf.math.l2_normalize(user, axis=-1)
    return user

  def get_config(self):
    config = super().get_config()
    config.update(
        self.nested_layer_config(),
        max_len=self.max_len, num_heads=self.num_heads,
        attention_hidden_units=self.attention_hidden_units,
        num_time_buckets=self.num_time_buckets,
        time_boundaries=self.time_boundaries, l2_normalize=self.l2_normalize,
        embeddings_initializer=keras.initializers.serialize(
            self.embeddings_initializer),
        embedding_dim=self.embedding_dim)
    return config
