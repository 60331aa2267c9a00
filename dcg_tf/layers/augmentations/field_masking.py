"""Replaces masked fields of an item by learned per-field default embeddings."""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class FieldMasking(keras.layers.Layer):
  """`out[..., f, :] = default_f if mask[..., f] else fields[..., f, :]`.

  SSL-CFM (Yao et al., CIKM'21) section 3.2, first stage of the augmentation:
  "We use a default embedding in the input layer to represent the features
  that are masked". The defaults are trainable, one per field, and live in
  this layer, which the training model owns: the item tower never references
  it, so they never enter an export. Which fields to mask (RFM, CFM) is the
  caller's choice; this layer only applies a given mask. (MicRec's field-level
  dropout, zeros instead of defaults, is `tf.where(mask[..., None], 0., fields)`.)

  Args:
    num_fields: F+1, the rows of `ItemEmbedding.field_embeddings`
      (`len(item_embedding.field_names)`).
    dim: D, the width of a field row.
    initializer: Keras initializer of the defaults (default "normal", as the
      item embedding tables).

  Call:
    fields: float32 [..., F+1, D].
    mask: bool [..., F+1] (or [F+1], one mask for the whole batch), True where
      the field is replaced.
    Returns float32 [..., F+1, D].

  Example:
    >>> masking = FieldMasking(num_fields=3, dim=8)
    >>> masking(fields, tf.constant([False, True, False]))  # field 1 -> default
  """

  def __init__(self, num_fields, dim, initializer="normal", **kwargs):
    super().__init__(**kwargs)
    if int(num_fields) < 1 or int(dim) < 1:
      raise ValueError("FieldMasking %r: num_fields and dim must be >= 1, got %r "
                       "and %r" % (self.name, num_fields, dim))
    self.num_fields = int(num_fields)
    self.dim = int(dim)
    self.initializer = initializer

  def build(self, input_shape):
    self.default_embeddings = self.add_weight(
        name="default_embeddings", shape=(self.num_fields, self.dim),
        initializer=keras.initializers.get(self.initializer), trainable=True)
    super().build(input_shape)

  def call(self, fields, mask):
    if fields.shape[-2] is not None and fields.shape[-2] != self.num_fields:
      raise ValueError("FieldMasking %r: fields have %d rows, the layer was built "
                       "for num_fields=%d" % (self.name, fields.shape[-2],
                                              self.num_fields))
    mask = tf.convert_to_tensor(mask, tf.bool)[..., None]            # [..., F+1, 1]
    defaults = tf.cast(self.default_embeddings, fields.dtype)        # [F+1, D]
    return tf.where(mask, defaults, fields)                          # [..., F+1, D]

  def get_config(self):
    config = super().get_config()
    config.update(num_fields=self.num_fields, dim=self.dim,
                  initializer=self.initializer)
    return config
