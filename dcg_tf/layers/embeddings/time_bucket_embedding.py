"""Embedding of the bucketised time between the query and a past click.

CLRec (Zhou et al., KDD'21), appendix B.1.1 "Time Bucket Embedding": the
interval t - t' between the query time t and a click's time t' is put into a
bucket, and each bucket has its own vector.
"""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class TimeBucketEmbedding(keras.layers.Layer):
  """Maps time intervals (int64, any unit) to bucket embeddings.

  Buckets are log2-spaced by default (scale free, so the same layer serves
  timestamps in seconds and the row order of data without time):
  bucket(0) = 0 and bucket(delta) = 1 + floor(log2(delta)) for delta >= 1,
  i.e. 1 -> 1, 2..3 -> 2, 4..7 -> 3, ..., capped at `num_buckets - 1`.
  With explicit `boundaries` b_0 < b_1 < ... the bucket is the number of
  boundaries <= delta (so delta < b_0 -> 0), and `num_buckets` must be
  `len(boundaries) + 1`. Negative intervals (clock skew) count as 0.

  Args:
    num_buckets: number of buckets (rows of the table).
    dim: embedding size D.
    boundaries: optional increasing list of interval boundaries.
    embeddings_initializer: "normal" as CLRec appendix B.2 recommends.

  Call args:
    intervals: int [...] query time minus click time.

  Returns:
    [..., D] float embeddings.

  Example:
    >>> layer = TimeBucketEmbedding(num_buckets=32, dim=8)
    >>> layer(tf.constant([[0, 5, 3600]], tf.int64)).shape   # [1, 3, 8]
  """

  def __init__(self, num_buckets, dim, boundaries=None,
               embeddings_initializer="normal", **kwargs):
    super().__init__(**kwargs)
    if boundaries is not None:
      boundaries = [int(b) for b in boundaries]
      if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
        raise ValueError("TimeBucketEmbedding: boundaries must increase, got %s"
                         % boundaries)
      if num_buckets != len(boundaries) + 1:
        raise ValueError(
            "TimeBucketEmbedding: num_buckets (%d) must be len(boundaries) + 1 (%d)"
            % (num_buckets, len(boundaries) + 1))
    if num_buckets < 1:
      raise ValueError("TimeBucketEmbedding: num_buckets must be >= 1")
    self.num_buckets = int(num_buckets)
    self.dim = int(dim)
    self.boundaries = boundaries
    self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
    # keras Embedding: gathers, so the table gets IndexedSlices gradients.
    self.embedding = keras.layers.Embedding(
        self.num_buckets, self.dim,
        embeddings_initializer=self.embeddings_initializer, name="buckets")

  def bucketize(self, intervals):
    """int [...] -> int64 bucket ids [...]."""
    intervals = tf.maximum(tf.cast(intervals, tf.int64), 0)
    if self.boundaries is None:
      # 1 + floor(log2(delta)) for delta >= 1, computed exactly on integers:
      # the number of k in [0, 62] with 2^k <= delta.
      powers = tf.bitwise.left_shift(tf.ones([63], tf.int64),
                                     tf.range(63, dtype=tf.int64))  # [63]
      buckets = tf.reduce_sum(
          tf.cast(intervals[..., None] >= powers, tf.int64), axis=-1)  # [...]
    else:
      bounds = tf.constant(self.boundaries, tf.int64)  # [K]
      buckets = tf.reduce_sum(
          tf.cast(intervals[..., None] >= bounds, tf.int64), axis=-1)  # [...]
    return tf.minimum(buckets, self.num_buckets - 1)

  def call(self, intervals):
    return self.embedding(self.bucketize(intervals))  # [..., D]

  def get_config(self):
    config = super().get_config()
    config.update(
        num_buckets=self.num_buckets, dim=self.dim, boundaries=self.boundaries,
        embeddings_initializer=keras.initializers.serialize(
            self.embeddings_initializer))
    return config
