"""ComiRec-SA: K interests as K attention heads over the behaviour sequence."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.masking import mask_logits


@keras.utils.register_keras_serializable(package="dcg_tf")
class SelfAttentiveInterestExtractor(keras.layers.Layer):
  """V = A H with A = softmax(W_2 tanh(W_1 H^T)), padding masked.

  ComiRec (Cen et al., KDD'20), section 3.3, Eq. 4-5 (the self-attentive
  method of Lin et al., ICLR'17): for behaviour embeddings H [B, L, d],

    A = softmax_L(W_2 tanh(W_1 H^T))       [B, K, L]  (one row per interest)
    V = A H                                [B, K, d]

  with W_1 [d_a, d] and W_2 [K, d_a]. As in the official code (THUDM/ComiRec,
  src/model.py, `Model_ComiRec_SA`): d_a = 4 d (`hidden_units=None`), both
  projections have biases (`tf.layers.dense`), a trainable position
  embedding P [max_len, d] is added to H inside the attention only
  (`add_pos=True`; V sums the plain H), and padding positions get the masked
  logit before the softmax (`dcg_tf.layers.masking.mask_logits`), i.e. zero
  weight. A row without a valid position gets uniform weights over the
  (all-padding) positions.

  Args:
    num_interests: K.
    max_len: L, the longest history (the position embedding's rows).
    hidden_units: d_a; None: 4 times the input width.
    use_positions: add the position embedding inside the attention.
    seed: seed of the weight initialisers.

  Call:
    items: float [B, L', d], L' <= max_len.
    mask: bool [B, L'], True at valid positions.
    Returns V float [B, K, d].

  Example:
    >>> extractor = SelfAttentiveInterestExtractor(num_interests=4, max_len=50)
    >>> interests = extractor(item_embeddings, history_mask)    # [B, 4, d]
  """

  def __init__(self, num_interests, max_len, hidden_units=None,
               use_positions=True, seed=0, **kwargs):
    super().__init__(**kwargs)
    if int(num_interests) < 1 or int(max_len) < 1:
      raise ValueError("SelfAttentiveInterestExtractor: num_interests and "
                       "max_len must be >= 1, got %r, %r"
                       % (num_interests, max_len))
    self.num_interests = int(num_interests)
    self.max_len = int(max_len)
    self.hidden_units = None if hidden_units is None else int(hidden_units)
    self.use_positions = bool(use_positions)
    self.seed = int(seed)

  def build(self, input_shape):
    dim = int(input_shape[-1])
    self.hidden = keras.layers.Dense(
        self.hidden_units or 4 * dim, activation="tanh",
        kernel_initializer=keras.initializers.GlorotUniform(seed=self.seed),
        name="w1")
    self.scores = keras.layers.Dense(
        self.num_interests,
        kernel_initializer=keras.initializers.GlorotUniform(seed=self.seed + 1),
        name="w2")
    self.position_embedding = None
    if self.use_positions:
      self.position_embedding = self.add_weight(
          name="position_embedding", shape=(self.max_len, dim),
          initializer=keras.initializers.GlorotUniform(seed=self.seed + 2),
          trainable=True)                                         # P [L, d]
    super().build(input_shape)

  def attention(self, items, mask):
    """A: float [B, K, L'], rows sum to 1 over the valid positions."""
    length = items.shape[1]
    if length is not None and length > self.max_len:
      raise ValueError("SelfAttentiveInterestExtractor: the history has %d "
                       "positions, the layer was built for max_len=%d"
                       % (length, self.max_len))
    h = items
    if self.position_embedding is not None:
      h = h + self.position_embedding[None, :tf.shape(items)[1]]  # [B, L, d]
    logits = self.scores(self.hidden(h))                          # [B, L, K]
    logits = tf.transpose(logits, [0, 2, 1])                      # [B, K, L]
    logits = mask_logits(logits, tf.cast(mask, tf.bool)[:, None, :])
    return tf.nn.softmax(logits, axis=-1)                         # [B, K, L]

  def call(self, items, mask):
    return tf.einsum("bkl,bld->bkd", self.attention(items, mask),
                     items)                                       # [B, K, d]

  def get_config(self):
    config = super().get_config()
    config.update(num_interests=self.num_interests, max_len=self.max_len,
                  hidden_units=self.hidden_units,
                  use_positions=self.use_positions, seed=self.seed)
    return config
