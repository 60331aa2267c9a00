"""Random 0/1 mask with a fixed number of ones per row (PCL-AISL's augmentation)."""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class FixedCountMask(keras.layers.Layer):
  """e' = m * e with m in {0, 1}^D holding exactly `num_ones` ones per row.

  PCL-AISL (Li et al., CIKM'22), section 2.3.1: "a mask layer is applied
  after the standard embedding layer's output e_x. The output of the mask
  layer m_x in R^D only contains elements of 0 and 1, and is constrained to
  have a fixed number of 1s in possibly different positions for different
  e_x", e'_x = m_x e_x. The positions of the ones are the `num_ones` largest
  of a stateless uniform draw keyed by `seed` (uniform over the subsets of
  that size), so a resumed run draws the same masks. Kept elements are not
  rescaled (the paper multiplies by the mask only).

  Args:
    num_ones: ones per row, in [1, D].

  Call:
    x: float [B, D] (or [..., D]; one mask per row of the last axis).
    seed: int [2] stateless seed, e.g. `[run_seed, step]`.
    Returns x * m, x's shape.

  Example:
    >>> FixedCountMask(48)(item_embedding(ids), seed=tf.constant([0, step]))
  """

  def __init__(self, num_ones, **kwargs):
    super().__init__(**kwargs)
    if int(num_ones) < 1:
      raise ValueError("FixedCountMask %r: num_ones must be >= 1, got %r"
                       % (self.name, num_ones))
    self.num_ones = int(num_ones)

  def mask(self, shape, seed):
    """m: float32 of `shape` [..., D], exactly `num_ones` ones along the last axis."""
    dim = shape[-1]
    if isinstance(dim, int) and self.num_ones > dim:
      raise ValueError("FixedCountMask %r: num_ones=%d exceeds the width %d"
                       % (self.name, self.num_ones, dim))
    uniform = tf.random.stateless_uniform(shape, seed)            # [..., D]
    _, top = tf.math.top_k(uniform, k=self.num_ones)              # [..., n]
    return tf.reduce_sum(tf.one_hot(top, shape[-1]), axis=-2)     # [..., D]

  def call(self, x, seed):
    x = tf.convert_to_tensor(x)
    shape = x.shape.as_list()
    if any(d is None for d in shape):
      shape = tf.shape(x)
      dim = x.shape[-1]
      if dim is None:
        raise ValueError("FixedCountMask %r: the last axis must be known"
                         % self.name)
      shape = tf.concat([shape[:-1], [dim]], 0)
    return x * tf.cast(self.mask(shape, seed), x.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(num_ones=self.num_ones)
    return config
