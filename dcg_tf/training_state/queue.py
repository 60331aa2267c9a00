"""FIFO queue of fixed capacity held as non-trainable training state.

CLRec (Zhou et al., KDD'21), section 3.1 and Figure 1 (b)/(c); MoCo (He et al.,
CVPR'20). The queue is a `tf.Variable(trainable=False)` owned by a training
model, so `tf.train.Checkpoint` saves and restores it, while exported towers
never reach it.
"""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class FIFOQueue(keras.layers.Layer):
  """A first-in first-out ring buffer of `capacity` entries of `entry_shape`.

  `enqueue(values)` writes a batch over the oldest entries and returns what it
  overwrote (the dequeued entries, needed by Multi-CLRec's secondary queues,
  Eq. 13) with a mask of which of them were real. `contents()` returns the
  buffer and a validity mask (slots never written are invalid).

  Args:
    capacity: number of entries, e.g. 2,560 (CLRec appendix A).
    entry_shape: shape of one entry: `()` for item ids (variant b stores raw
      items), `(D,)` for cached representations (variant c).
    entry_dtype: dtype of the entries, e.g. "int64" or "float32".

  Example:
    >>> q = FIFOQueue(capacity=4, entry_shape=(), entry_dtype="int64")
    >>> out, out_valid = q.enqueue(tf.constant([7, 8], tf.int64))
    >>> values, valid = q.contents()   # [7, 8, 0, 0], [T, T, F, F]
  """

  def __init__(self, capacity, entry_shape=(), entry_dtype="float32", **kwargs):
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)
    if capacity < 1:
      raise ValueError("FIFOQueue capacity must be >= 1, got %d" % capacity)
    self.capacity = int(capacity)
    self.entry_shape = tuple(int(d) for d in entry_shape)
    self.entry_dtype = tf.as_dtype(entry_dtype).name
    self.buffer = self.add_weight(
        name="buffer", shape=(self.capacity,) + self.entry_shape,
        dtype=self.entry_dtype, initializer="zeros", trainable=False)
    # Next slot to write; once full it is also the oldest entry.
    self.pointer = self.add_weight(name="pointer", shape=(), dtype="int64",
                                   initializer="zeros", trainable=False)
    self.size = self.add_weight(name="size", shape=(), dtype="int64",
                                initializer="zeros", trainable=False)

  def enqueue(self, values):
    """Enqueues `values` [B, *entry_shape]; returns (dequeued [B, ...], valid [B])."""
    values = tf.convert_to_tensor(values, dtype=self.entry_dtype)
    batch = tf.shape(values, out_type=tf.int64)[0]
    tf.debugging.assert_less_equal(
        batch, tf.constant(self.capacity, tf.int64),
        message="FIFOQueue: a batch larger than the queue capacity")
    slots = (self.pointer + tf.range(batch, dtype=tf.int64)) % self.capacity  # [B]
    dequeued = tf.gather(self.buffer, slots)                                    # [B, ...]
    # Before the first wrap the written slots are 0..size-1 and pointer == size,
    # so slot size+k (mod C) held a real entry iff size + k >= C.
    k = tf.range(batch, dtype=tf.int64)
    dequeued_valid = self.size + k >= self.capacity                             # [B]
    # `scatter_update` (not `scatter_nd_update`): a mirrored variable under a
    # tf.distribute strategy supports it in a replica context.
    self.buffer.scatter_update(tf.IndexedSlices(values, slots))
    self.pointer.assign((self.pointer + batch) % self.capacity)
    self.size.assign(tf.minimum(self.size + batch, self.capacity))
    return dequeued, dequeued_valid

  def contents(self):
    """Returns (buffer [C, *entry_shape], valid [C] bool)."""
    # Slots fill 0, 1, 2, ... before the first wrap, so the first `size` are valid.
    valid = tf.range(self.capacity, dtype=tf.int64) < self.size  # [C]
    return tf.identity(self.buffer), valid

  def reset(self):
    self.buffer.assign(tf.zeros_like(self.buffer))
    self.pointer.assign(0)
    self.size.assign(0)

  def get_config(self):
    config = super().get_config()
    config.update(capacity=self.capacity, entry_shape=self.entry_shape,
                  entry_dtype=self.entry_dtype)
    return config
