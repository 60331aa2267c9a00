"""Embedding of a categorical feature: single ids or 0-padded multi-valued lists.

Index convention (docs/design.md): `0` is padding/unknown. Value `0` and any
value outside `[0, vocab_size)` (out of vocabulary) embed to zeros and are left
out of the combiner, so an all-padding list gives a zero vector.
"""

import tensorflow as tf

from dcg_tf._keras import keras

_COMBINERS = ("mean", "sum")


@keras.utils.register_keras_serializable(package="dcg_tf")
class FeatureEmbedding(keras.layers.Layer):
  """Embedding table for one categorical feature with masked pooling.

  Single-valued input `[...]` gives `[..., dim]`. Multi-valued input
  `[..., F]` (e.g. attributes or title tokens, 0-padded) is pooled over its last
  axis with `combiner` over the non-padding values: `mean` divides by their
  count, `sum` adds them; a row with no valid value gives zeros.

  Lookups use `tf.nn.embedding_lookup` (a `tf.gather` on one table), so the
  gradient with respect to the table is a `tf.IndexedSlices` touching only
  the looked-up rows (what the lazy row-wise optimizers in `dcg_tf.optimizers`
  need); a table sharded over parameter servers (`tf.distribute.ShardedVariable`,
  `dcg_tf.training.parameter_server`) is read shard by shard.

  Args:
    vocab_size: rows of the table, including row 0 (padding/unknown): the
      manifest's `vocab_size` + 1 convention is the caller's business; values
      `>= vocab_size` are treated as unknown (embed to zeros).
    dim: embedding dimension D.
    combiner: "mean" or "sum"; only used for multi-valued input.
    multi_valued: True when the input's last axis lists several values of one
      feature (`[..., F] -> [..., D]`); False for one value per position
      (`[...] -> [..., D]`).
    initializer: Keras initializer identifier. Default "normal" (N(0, 0.05^2)):
      CLRec (Zhou et al., KDD'21) appendix B.2 recommends normal rather than
      uniform initialization when embeddings are l2-normalized.
    regularizer: optional Keras regularizer identifier for the table.

  Example:
    >>> emb = FeatureEmbedding(vocab_size=100, dim=8, multi_valued=True)
    >>> emb(tf.constant([[3, 7, 0], [0, 0, 0]]))   # [2, 8]; row 1 is zeros
  """

  def __init__(self, vocab_size, dim, combiner="mean", multi_valued=False,
               initializer="normal", regularizer=None, **kwargs):
    super().__init__(**kwargs)
    if int(vocab_size) < 1:
      raise ValueError("FeatureEmbedding %r: vocab_size must be >= 1, got %r"
                       % (self.name, vocab_size))
    if int(dim) < 1:
      raise ValueError("FeatureEmbedding %r: dim must be >= 1, got %r"
                       % (self.name, dim))
    if combiner not in _COMBINERS:
      raise ValueError("FeatureEmbedding %r: combiner must be one of %s, got %r"
                       % (self.name, _COMBINERS, combiner))
    self.vocab_size = int(vocab_size)
    self.dim = int(dim)
    self.combiner = combiner
    self.multi_valued = bool(multi_valued)
    self.initializer = initializer
    self.regularizer = regularizer

  def build(self, input_shape):
    self.embeddings = self.add_weight(
        name="embeddings", shape=(self.vocab_size, self.dim),
        initializer=keras.initializers.get(self.initializer),
        regularizer=keras.regularizers.get(self.regularizer), trainable=True)
    super().build(input_shape)

  def _lookup(self, values):
    """Returns (embeddings [..., D] with unknown rows zeroed, valid [...] bool)."""
    values = tf.cast(values, tf.int64)
    valid = tf.logical_and(values > 0, values < self.vocab_size)        # [...]
    safe = tf.where(valid, values, tf.zeros_like(values))               # [...]
    vectors = tf.nn.embedding_lookup(self.embeddings, safe)             # [..., D]
    vectors = vectors * tf.cast(valid, vectors.dtype)[..., None]        # [..., D]
    return vectors, valid

  def call(self, values):
    vectors, valid = self._lookup(values)
    if not self.multi_valued:
      return vectors                                                    # [..., D]
    pooled = tf.reduce_sum(vectors, axis=-2)                            # [..., D]
    if self.combiner == "mean":
      count = tf.reduce_sum(tf.cast(valid, vectors.dtype), axis=-1)     # [...]
      pooled = pooled / tf.maximum(count, 1.0)[..., None]               # [..., D]
    return pooled

  def get_config(self):
    config = super().get_config()
    config.update(
        vocab_size=self.vocab_size, dim=self.dim, combiner=self.combiner,
        multi_valued=self.multi_valued,
        initializer=_serializable(self.initializer, keras.initializers),
        regularizer=_serializable(self.regularizer, keras.regularizers))
    return config


def _serializable(identifier, module):
  if identifier is None or isinstance(identifier, (str, dict)):
    return identifier
  return module.serialize(identifier)
