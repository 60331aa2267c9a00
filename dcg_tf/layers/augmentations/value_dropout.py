"""Random keep-masks for the values of multi-valued item features."""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class ValueDropout(keras.layers.Layer):
  """Draws `value_mask`: each value of a multi-valued feature kept w.p. 1 - rate.

  SSL-CFM (Yao et al., CIKM'21) section 3.2, second stage of the augmentation
  ("for categorical features with multiple values, we drop out each value with
  a certain probability"); MicRec (Tencent) section 3.3, "categorical feature
  dropout" (some tags are ignored when building the tag field embedding). The
  output is the `value_mask` of `ItemEmbedding.field_embeddings` /
  `ItemTower.call`: dropped values count as padding, so a mean pools the
  values kept. Draws are `tf.random.stateless_uniform` keyed by `seed` (field
  i uses `stateless_fold_in(seed, i)`, i its position in `lengths`), so the
  same seed gives the same masks, in a resumed run too.

  Args:
    rate: probability of dropping a value, in [0, 1).
    lengths: dict name -> max_len of the multi-valued features to drop from
      (`ItemEmbedding.multi_valued_lengths`).

  Call:
    item_ids: int [...] (only its shape is used).
    seed: int [2] stateless seed, e.g. `[run_seed, step]`; give each view of a
      step its own (e.g. `tf.random.experimental.stateless_fold_in(seed, view)`).
    Returns dict name -> bool [..., max_len], True = keep.

  Example:
    >>> drop = ValueDropout(0.3, {"attribute": 4})
    >>> drop(tf.constant([1, 2]), seed=tf.constant([0, 7]))  # {"attribute": [2, 4]}
  """

  def __init__(self, rate, lengths, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= float(rate) < 1.0:
      raise ValueError("ValueDropout %r: rate must be in [0, 1), got %r"
                       % (self.name, rate))
    self.rate = float(rate)
    self.lengths = {str(name): int(n) for name, n in dict(lengths).items()}

  def call(self, item_ids, seed):
    batch_shape = tf.shape(item_ids)                                 # [rank]
    seed = tf.convert_to_tensor(seed)
    masks = {}
    for i, (name, length) in enumerate(self.lengths.items()):
      shape = tf.concat([batch_shape, [length]], axis=0)
      field_seed = tf.random.experimental.stateless_fold_in(seed, i)  # [2]
      uniform = tf.random.stateless_uniform(shape, field_seed)        # [..., max_len]
      masks[name] = uniform >= self.rate                              # [..., max_len]
    return masks

  def get_config(self):
    config = super().get_config()
    config.update(rate=self.rate, lengths=dict(self.lengths))
    return config
