"""ICAN-like user tower of MicRec (Xie et al., Tencent), section 3.6, Eq. 6."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.feature_embedding import FeatureEmbedding
from dcg_tf.layers.embeddings.item_features import ItemFeatures
from dcg_tf.layers.nested_config import NestedLayerConfig
from dcg_tf.layers.projection_head import ProjectionHead
from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower


@keras.utils.register_keras_serializable(package="dcg_tf")
class ICANUserTower(NestedLayerConfig, keras.layers.Layer):
  """`u = MLP_u(Concat(Flatten(Transformer(F^b)), u^other))`, MicRec Eq. 6.

  F^b are the embeddings of the user's `num_behaviors` most recent clicks
  (section 5.3: 20), ordered most recent first, so that slot t of the
  flattened vector always holds the t-th most recent click; empty slots are
  zeros. The Transformer is a bidirectional `SelfAttentionUserTower` encoder
  (`causal=False`, positions = recency rank); its outputs are flattened,
  concatenated with the embeddings of the other user features (u^other, e.g.
  age and gender, looked up from `user`), and fed into a 3-layer MLP
  (`hidden_units` then `output_dim`: 128-64-64).

  Args:
    item_embedding: the `ItemEmbedding` shared with the item tower.
    num_behaviors: K, the most recent clicks kept.
    num_blocks, num_heads, dropout: of the Transformer.
    hidden_units: hidden layers of MLP_u (128, 64).
    output_dim: D, the last layer of MLP_u (64).
    l2_normalize: l2-normalise the output.
    user_features: list of `{"name", "vocab_size"}` single-valued user
      features (manifest schema); empty: behaviours only.
    user_feature_arrays: dict name -> int [U+1] (users.npz); needed with
      `user_features` (or `user_feature_specs` from a config).

  Call:
    batch: dict with `history` int64 [B, L], `history_mask` bool [B, L] (and
      `user` int64 [B] with user features) -> float32 [B, D].

  Example:
    >>> tower = ICANUserTower(ItemEmbedding(num_items=100, dim=32))
    >>> tower({"history": h, "history_mask": h > 0})   # [B, 64]
  """

  NESTED_LAYERS = ("item_embedding",)

  def __init__(self, item_embedding, num_behaviors=20, num_blocks=1,
               num_heads=2, dropout=0.0, hidden_units=(128, 64), output_dim=64,
               l2_normalize=False, user_features=(), user_feature_arrays=None,
               user_feature_specs=None, **kwargs):
    super().__init__(**kwargs)
    self.item_embedding = item_embedding
    self.num_behaviors = int(num_behaviors)
    self.num_blocks = int(num_blocks)
    self.num_heads = int(num_heads)
    self.dropout = float(dropout)
    self.hidden_units = [int(u) for u in hidden_units]
    self.output_dim = int(output_dim)
    self.l2_normalize = bool(l2_normalize)
    self.user_features = [dict(f) for f in user_features]
    self.user_feature_arrays = None   # held by `user_feature_table`
    self.user_feature_specs = user_feature_specs

    # === Layers ===
    self.transformer = SelfAttentionUserTower(
        item_embedding, max_len=self.num_behaviors, num_blocks=self.num_blocks,
        num_heads=self.num_heads, dropout=self.dropout, position_mode="order",
        causal=False, name="transformer")
    self.user_feature_table = None
    if self.user_features:
      if user_feature_arrays is None and user_feature_specs is None:
        raise ValueError("ICANUserTower %r: user_features %s need "
                         "user_feature_arrays" % (self.name, self.user_features))
      self.user_feature_table = ItemFeatures(
          feature_arrays=user_feature_arrays,
          feature_specs=None if user_feature_arrays is not None
          else user_feature_specs, name="user_feature_table")
    self.user_feature_embeddings = [
        FeatureEmbedding(int(f["vocab_size"]) + 1, item_embedding.dim,
                         name=f["name"] + "_embedding")
        for f in self.user_features]
    self.head = ProjectionHead(self.hidden_units, self.output_dim,
                               dropout=self.dropout,
                               l2_normalize=self.l2_normalize, name="head")

  @property
  def embedding_dim(self):
    return self.output_dim

  @property
  def normalized(self):
    return self.l2_normalize

  def recent_behaviors(self, batch):
    """The K most recent clicks, most recent first: (ids [B, K], mask [B, K])."""
    history = tf.cast(batch["history"], tf.int64)                    # [B, L]
    mask = tf.cast(batch["history_mask"], tf.bool)                   # [B, L]
    count = tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)           # [B]
    rank = tf.range(self.num_behaviors, dtype=tf.int64)[None, :]     # [1, K]
    valid = rank < count[:, None]                                    # [B, K]
    position = tf.where(valid, count[:, None] - 1 - rank, 0)         # [B, K]
    ids = tf.gather(history, position, batch_dims=1)                 # [B, K]
    return tf.where(valid, ids, 0), valid

  def call(self, batch, training=False):
    ids, valid = self.recent_behaviors(batch)                        # [B, K]
    sequence = self.transformer.sequence_output(
        {"history": ids, "history_mask": valid}, training=training)  # [B, K, d]
    sequence *= tf.cast(valid, sequence.dtype)[..., None]            # [B, K, d]
    parts = [tf.reshape(sequence, [-1, self.num_behaviors
                                   * self.item_embedding.dim])]      # [B, K d]
    if self.user_feature_table is not None:
      values = self.user_feature_table(tf.cast(batch["user"], tf.int64))
      for f, embedding in zip(self.user_features, self.user_feature_embeddings):
        parts.append(embedding(values[f["name"]]))                   # [B, d]
    return self.head(tf.concat(parts, axis=-1), training=training)   # [B, D]

  def get_config(self):
    config = super().get_config()
    specs = (None if self.user_feature_table is None
             else {name: {"shape": list(spec["shape"]), "dtype": spec["dtype"]}
                   for name, spec in self.user_feature_table.feature_specs.items()})
    config.update(self.nested_layer_config(),
                  num_behaviors=self.num_behaviors, num_blocks=self.num_blocks,
                  num_heads=self.num_heads, dropout=self.dropout,
                  hidden_units=list(self.hidden_units),
                  output_dim=self.output_dim, l2_normalize=self.l2_normalize,
                  user_features=[dict(f) for f in self.user_features],
                  user_feature_specs=specs)
    return config
