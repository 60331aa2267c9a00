"""Simplified multi-head attention: H softmax-weighted sums of the clicks.

CLRec (Zhou et al., KDD'21), appendix B.1.2:
  MultiAtt(X) = SoftMax(MLP(X)^T, -1) X,
where X [T, d] are the click embeddings and the two-layer MLP outputs [T, H],
one set of attention scores per head. The result is H head embeddings [H, d].
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.masking import mask_logits


def _fresh(initializer):
  # A new instance per weight: one unseeded instance reused gives equal draws.
  return keras.initializers.get(keras.initializers.serialize(initializer))


@keras.utils.register_keras_serializable(package="dcg_tf")
class SimplifiedMultiHeadAttention(keras.layers.Layer):
  """H attention heads whose scores come from a two-layer MLP on each click.

  Padding slots get no attention; a history with no valid click gives zero
  head embeddings.

  Args:
    num_heads: H.
    hidden_units: width of the MLP's hidden layer.
    activation: activation of the hidden layer.
    kernel_initializer: initializer of both MLP layers.

  Call args:
    inputs: float [B, L, D] click embeddings.
    mask: bool [B, L], True at valid clicks (None: all valid).

  Returns:
    [B, H, D] head embeddings.

  Example:
    >>> att = SimplifiedMultiHeadAttention(num_heads=4, hidden_units=32)
    >>> att(tf.ones([2, 5, 8]), mask=tf.ones([2, 5], tf.bool)).shape   # [2, 4, 8]
  """

  def __init__(self, num_heads, hidden_units, activation="tanh",
               kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.num_heads = int(num_heads)
    self.hidden_units = int(hidden_units)
    self.activation = keras.activations.get(activation)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.hidden = keras.layers.Dense(
        self.hidden_units, activation=self.activation,
        kernel_initializer=_fresh(self.kernel_initializer), name="hidden")
    self.scores = keras.layers.Dense(
        self.num_heads, kernel_initializer=_fresh(self.kernel_initializer),
        name="scores")

  def attention_weights(self, inputs, mask=None):
    """Returns the softmax weights [B, H, L] (zero at padding)."""
    logits = self.scores(self.hidden(inputs))              # [B, L, H]
    logits = tf.transpose(logits, [0, 2, 1])               # [B, H, L]
    if mask is None:
      return tf.nn.softmax(logits, axis=-1)
    valid = tf.cast(mask, tf.bool)[:, None, :]             # [B, 1, L]
    weights = tf.nn.softmax(mask_logits(logits, valid), axis=-1)  # [B, H, L]
    # A row with no valid click has a uniform softmax: zero it.
    return weights * tf.cast(valid, weights.dtype)         # [B, H, L]

  def call(self, inputs, mask=None):
    weights = self.attention_weights(inputs, mask)         # [B, H, L]
    return tf.einsum("bhl,bld->bhd", weights, inputs)      # [B, H, D]

  def compute_mask(self, inputs, mask=None):
    return None

  def get_config(self):
    config = super().get_config()
    config.update(
        num_heads=self.num_heads, hidden_units=self.hidden_units,
        activation=keras.activations.serialize(self.activation),
        kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
    return config
