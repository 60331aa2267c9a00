"""Dropout of single elements of an embedding, keyed by an explicit seed."""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class ElementDropout(keras.layers.Layer):
  """Zeroes each element w.p. `rate`, scales the kept ones by 1 / (1 - rate).

  MicRec (Tencent) section 3.3, Eq. 2-3: the augmented item embedding is
  `Dropout(f_i^d)` with f_i^d the concatenation of the item's field embeddings
  ("element-level dropout ... randomly masks elements in the raw feature
  embedding"; mask ratio 0.5 in sections 4.1 and 5.3). Applied as the item tower's
  `field_transform` on `[B, F+1, D]` it drops elements of every field row,
  which under `combine="concat"` is exactly dropout on the concatenation
  (the rows are its consecutive D-wide pieces). Unlike Keras `Dropout` the
  draw is `tf.random.stateless_uniform` keyed by `seed`, so a resumed run
  drops the same elements.

  Args:
    rate: probability of dropping an element, in [0, 1).
    rescale: scale kept elements by 1 / (1 - rate) (inverted dropout, as
      `tf.nn.dropout`); False keeps them as they are.

  Call:
    x: float tensor of any shape.
    seed: int [2] stateless seed, e.g. `[run_seed, step]`.
    Returns x's shape and dtype.

  Example:
    >>> ElementDropout(0.5)(fields, seed=tf.constant([0, step]))
  """

  def __init__(self, rate, rescale=True, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= float(rate) < 1.0:
      raise ValueError("ElementDropout %r: rate must be in [0, 1), got %r"
                       % (self.name, rate))
    self.rate = float(rate)
    self.rescale = bool(rescale)

  def call(self, x, seed):
    uniform = tf.random.stateless_uniform(tf.shape(x), seed)         # x's shape
    keep = uniform >= self.rate
    if self.rescale:
      x = x / (1.0 - self.rate)
    return tf.where(keep, x, tf.zeros_like(x))

  def get_config(self):
    config = super().get_config()
    config.update(rate=self.rate, rescale=self.rescale)
    return config
