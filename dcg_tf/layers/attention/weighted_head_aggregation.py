"""Weighted head aggregation (WHA) of H head embeddings into one vector.

CLRec (Zhou et al., KDD'21), appendix B.1.2:
  m = (1/H) sum_h z_h,   alpha_h = softmax_h(z_h^T A m),   f(x) = sum_h alpha_h z_h,
with A [d, d] learnable.
"""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class WeightedHeadAggregation(keras.layers.Layer):
  """Aggregates head embeddings [B, H, D] into [B, D] with WHA weights.

  Args:
    kernel_initializer: initializer of A [D, D].

  Call args:
    heads: float [B, H, D] head embeddings (CLRec l2-normalises them first).

  Returns:
    [B, D] = sum_h alpha_h z_h.

  Example:
    >>> WeightedHeadAggregation()(tf.ones([2, 4, 8])).shape   # [2, 8]
  """

  def __init__(self, kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    dim = int(input_shape[-1])
    self.kernel = self.add_weight(  # A in the paper.
        name="kernel", shape=(dim, dim), initializer=self.kernel_initializer)
    super().build(input_shape)

  def head_weights(self, heads):
    """Returns alpha [B, H]."""
    m = tf.reduce_mean(heads, axis=1)                                 # [B, D]
    scores = tf.einsum("bhd,de,be->bh", heads, self.kernel, m)        # [B, H]
    return tf.nn.softmax(scores, axis=-1)                             # [B, H]

  def call(self, heads):
    alpha = self.head_weights(heads)                                  # [B, H]
    return tf.einsum("bh,bhd->bd", alpha, heads)                      # [B, D]

  def get_config(self):
    config = super().get_config()
    config.update(kernel_initializer=keras.initializers.serialize(
        self.kernel_initializer))
    return config
