"""SASRec-style user tower: causal self-attention over the history.

Kang & McAuley, "Self-Attentive Sequential Recommendation" (ICDM'18),
section III: item embedding + learned positional embedding (III-B), stacked
self-attention blocks with a causal mask (III-C), point-wise feed-forward
network (III-D), residual connections, layer normalisation and dropout (III-E).
Like the authors' code, blocks are pre-LN and a final LayerNorm follows them.
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.attention.resumable_multi_head_attention import ResumableMultiHeadAttention
from dcg_tf.layers.nested_config import NestedLayerConfig
from dcg_tf.layers.resumable_dropout import ResumableDropout

_POSITION_MODES = ("recency", "order")


@keras.utils.register_keras_serializable(package="dcg_tf")
class SelfAttentionUserTower(NestedLayerConfig, keras.layers.Layer):
  """Causal Transformer encoder over a left-aligned item history.

  For each position t: `h_t = Blocks(e(y_t) + P[pos_t])` with attention
  restricted to valid positions `<= t`; the user vector is the hidden state at
  the last valid position (histories are left-aligned, docs/design.md), passed
  through an optional linear projection and l2 normalisation.

  Positions: SASRec right-aligns sequences so its last position is always the
  most recent event. With left-aligned histories, `position_mode="recency"`
  keeps that meaning (`pos_t = n - 1 - t`, distance from the most recent valid
  event); `"order"` uses `pos_t = t` (CLRec appendix B.1.1's "backward"
  positional embedding, earliest click at 0). Either way padding does not move
  the positions of valid events, so extra padding leaves outputs unchanged.

  Args:
    item_embedding: the `ItemEmbedding` shared with the item tower; its `dim`
      is the model width d.
    max_len: the longest history L accepted (rows of the positional table).
    num_blocks: number of self-attention blocks (SASRec: 2).
    num_heads: attention heads (SASRec: 1); must divide d.
    dropout: dropout rate on embeddings, attention weights and block outputs
      (`ResumableDropout`: masks from the checkpointed generator, so a resumed
      run drops what the uninterrupted run dropped).
    output_dim: dimension of a final linear projection; None for none (then
      D = d and user vectors live in the item embedding space).
    l2_normalize: l2-normalise the output (cosine similarity downstream).
    ffn_dim: hidden size of the point-wise feed-forward network (default d).
    position_mode: "recency" or "order" (see above).
    causal: position t attends to positions <= t (SASRec); False lets every
      valid position attend to every valid position (a bidirectional
      Transformer encoder, e.g. the ICAN user tower's).

  Call:
    batch: dict with `history` int64 [B, L] and `history_mask` bool [B, L],
      L <= max_len -> float32 [B, D]. `sequence_output(batch)` gives every
      position's vector [B, L, D] (position t only sees events <= t).

  Attributes:
    embedding_dim: D. normalized: whether outputs are unit vectors.

  Example:
    >>> tower = SelfAttentionUserTower(ItemEmbedding(num_items=100, dim=32),
    ...                                max_len=50)
    >>> tower({"history": h, "history_mask": h > 0})   # [B, 32]
  """

  NESTED_LAYERS = ("item_embedding",)

  def __init__(self, item_embedding, max_len, num_blocks=2, num_heads=1,
               dropout=0.2, output_dim=None, l2_normalize=False, ffn_dim=None,
               position_mode="recency", causal=True, **kwargs):
    super().__init__(**kwargs)
    self.item_embedding = item_embedding
    self.max_len = int(max_len)
    self.num_blocks = int(num_blocks)
    self.num_heads = int(num_heads)
    self.dropout = float(dropout)
    self.output_dim = None if output_dim is None else int(output_dim)
    self.l2_normalize = bool(l2_normalize)
    self.ffn_dim = None if ffn_dim is None else int(ffn_dim)
    self.position_mode = position_mode
    self.causal = bool(causal)
    width = int(item_embedding.dim)
    if width % self.num_heads:
      raise ValueError("SelfAttentionUserTower %r: num_heads=%d must divide the "
                       "item embedding dim %d" % (self.name, self.num_heads, width))
    if position_mode not in _POSITION_MODES:
      raise ValueError("SelfAttentionUserTower %r: position_mode must be one of "
                       "%s, got %r" % (self.name, _POSITION_MODES, position_mode))

    # === Layers ===
    self.input_dropout = ResumableDropout(self.dropout)
    self.attention_norms, self.attentions, self.attention_dropouts = [], [], []
    self.ffn_norms, self.ffn_inner, self.ffn_outer, self.ffn_dropouts = [], [], [], []
    for i in range(self.num_blocks):
      self.attention_norms.append(
          keras.layers.LayerNormalization(epsilon=1e-8, name="attention_norm_%d" % i))
      self.attentions.append(ResumableMultiHeadAttention(
          num_heads=self.num_heads, key_dim=width // self.num_heads,
          dropout=self.dropout, name="attention_%d" % i))
      self.attention_dropouts.append(ResumableDropout(self.dropout))
      self.ffn_norms.append(
          keras.layers.LayerNormalization(epsilon=1e-8, name="ffn_norm_%d" % i))
      self.ffn_inner.append(keras.layers.Dense(
          self.ffn_dim or width, activation="relu", name="ffn_inner_%d" % i))
      self.ffn_outer.append(keras.layers.Dense(width, name="ffn_outer_%d" % i))
      self.ffn_dropouts.append(ResumableDropout(self.dropout))
    self.final_norm = keras.layers.LayerNormalization(epsilon=1e-8, name="final_norm")
    self.output_layer = (None if self.output_dim is None
                         else keras.layers.Dense(self.output_dim, name="output"))

  def build(self, input_shape):
    self.position_embedding = self.add_weight(
        name="position_embedding", shape=(self.max_len, self.item_embedding.dim),
        initializer=self.item_embedding.initializer, trainable=True)
    super().build(input_shape)

  @property
  def embedding_dim(self):
    return self.output_dim if self.output_dim is not None else self.item_embedding.dim

  @property
  def normalized(self):
    return self.l2_normalize

  def _positions(self, mask):
    """Positional-table row of every position: [B, L] int64."""
    length = tf.shape(mask, out_type=tf.int64)[1]
    steps = tf.range(length)[None, :]                                # [1, L]
    if self.position_mode == "order":
      return tf.broadcast_to(steps, tf.shape(mask, out_type=tf.int64))  # [B, L]
    count = tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)           # [B]
    return tf.maximum(count[:, None] - 1 - steps, 0)                 # [B, L]

  def sequence_output(self, batch, training=False):
    """Per-position user vectors [B, L, D]; position t sees events 0..t only."""
    return self(batch, training=training, return_sequences=True)

  def call(self, batch, training=False, return_sequences=False):
    sequence = self._encode(batch, training=training)                 # [B, L, D]
    if return_sequences:
      return sequence
    count = tf.reduce_sum(tf.cast(batch["history_mask"], tf.int64), axis=1)  # [B]
    # An empty history reads position 0, computed from zero inputs (biases only).
    last = tf.maximum(count - 1, 0)                                   # [B]
    return tf.gather(sequence, last, batch_dims=1)                    # [B, D]

  def _encode(self, batch, training):
    history = tf.cast(batch["history"], tf.int64)                     # [B, L]
    mask = tf.cast(batch["history_mask"], tf.bool)                    # [B, L]
    maskf = tf.cast(mask, tf.float32)[..., None]                      # [B, L, 1]
    length = tf.shape(history)[1]
    tf.debugging.assert_less_equal(
        length, self.max_len,
        message="SelfAttentionUserTower: history longer than max_len")
    positions = tf.gather(self.position_embedding, self._positions(mask))  # [B, L, d]
    x = (self.item_embedding(history) + positions) * maskf           # [B, L, d]
    x = self.input_dropout(x, training=training) * maskf              # [B, L, d]
    allowed = tf.ones([length, length], tf.bool)                      # [L, L]
    if self.causal:
      allowed = tf.linalg.band_part(allowed, -1, 0)                   # [L, L]
    attention_mask = tf.logical_and(allowed[None], mask[:, None, :])  # [B, L(query), L(key)]
    for i in range(self.num_blocks):
      h = self.attention_norms[i](x)                                  # [B, L, d]
      h = self.attentions[i](h, h, attention_mask=attention_mask,
                             training=training)                      # [B, L, d]
      x = x + self.attention_dropouts[i](h, training=training)       # [B, L, d]
      h = self.ffn_outer[i](self.ffn_inner[i](self.ffn_norms[i](x)))  # [B, L, d]
      x = x + self.ffn_dropouts[i](h, training=training)             # [B, L, d]
      x = x * maskf                                                   # [B, L, d]
    x = self.final_norm(x)                                            # [B, L, d]
    if self.output_layer is not None:
      x = self.output_layer(x)                                        # [B, L, D]
    if self.l2_normalize:
      x = tf.math.l2_normalize(x, axis=-1)                            # [B, L, D]
    return x

  def get_config(self):
    config = super().get_config()
    config.update(self.nested_layer_config(),
                  max_len=self.max_len, num_blocks=self.num_blocks,
                  num_heads=self.num_heads, dropout=self.dropout,
                  output_dim=self.output_dim, l2_normalize=self.l2_normalize,
                  ffn_dim=self.ffn_dim, position_mode=self.position_mode,
                  causal=self.causal)
    return config
