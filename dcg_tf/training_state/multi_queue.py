"""Main queue plus H secondary queues of Multi-CLRec (Eq. 13 update rules)."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.training_state.queue import FIFOQueue


@keras.utils.register_keras_serializable(package="dcg_tf")
class MultiQueue(keras.layers.Layer):
  """The main FIFO queue Q_0 and one FIFO secondary queue Q_h per intention.

  CLRec paper (Zhou et al., KDD'21), section 3.2, the queue update rules after
  Eq. 13, applied once per training step before the loss:
    (1) the positives y_T of the batch are enqueued into Q_0;
    (2) each item y^- dequeued from Q_0 is enqueued into Q_{h^-}, its own
        intention h^- = argmax_h p_{h|y^-} (routed with the current prototypes
        by the caller's `intention_fn`);
    (3) items dequeued from the secondary queues are discarded.
  Negatives of an example with intention h^+ are Q_0 and Q_{h^+}.

  Every entry stores the item id (variant b of Figure 1: raw items re-encoded
  by the current item tower each step; ids are also what routes a dequeued
  item and masks accidental hits). With `value_dim` set the queues also cache
  the item representations (variant c) next to the ids. All state is
  non-trainable and checkpointed; it lives on the training model only.

  Args:
    main_size: capacity of Q_0 (1,280 in appendix B.3).
    secondary_size: capacity of each Q_h (1,280).
    num_intentions: H (16 on public data).
    value_dim: width of cached representations, or None for raw ids only.
    value_dtype: dtype of cached representations.

  Example:
    >>> queues = MultiQueue(main_size=4, secondary_size=2, num_intentions=3)
    >>> queues.update(tf.constant([5, 6], tf.int64), intention_fn=route)
    >>> main_ids, main_values, main_valid = queues.main_contents()     # [4]
    >>> sec_ids, sec_values, sec_valid = queues.secondary_contents()  # [3, 2]
    >>> own = tf.gather(sec_ids, h_plus)   # Q_{h+} of each example, [B, 2]
  """

  def __init__(self, main_size=1280, secondary_size=1280, num_intentions=16,
               value_dim=None, value_dtype="float32", **kwargs):
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)
    if main_size < 1 or secondary_size < 1 or num_intentions < 1:
      raise ValueError(
          "MultiQueue: main_size, secondary_size and num_intentions must be "
          ">= 1, got %r, %r, %r" % (main_size, secondary_size, num_intentions))
    self.main_size = int(main_size)
    self.secondary_size = int(secondary_size)
    self.num_intentions = int(num_intentions)
    self.value_dim = None if value_dim is None else int(value_dim)
    self.value_dtype = tf.as_dtype(value_dtype).name
    self.main_ids = FIFOQueue(self.main_size, (), "int64", name="main_ids")
    self.main_values = None
    if self.cached:
      self.main_values = FIFOQueue(self.main_size, (self.value_dim,),
                                   self.value_dtype, name="main_values")
    # Secondary queues: one ring buffer per intention, stacked on axis 0.
    self.secondary_ids = self.add_weight(
        name="secondary_ids", shape=(self.num_intentions, self.secondary_size),
        dtype="int64", initializer="zeros", trainable=False)      # [H, Qs]
    self.secondary_values = None
    if self.cached:
      self.secondary_values = self.add_weight(
          name="secondary_values",
          shape=(self.num_intentions, self.secondary_size, self.value_dim),
          dtype=self.value_dtype, initializer="zeros",
          trainable=False)                                        # [H, Qs, D]
    self.secondary_pointer = self.add_weight(
        name="secondary_pointer", shape=(self.num_intentions,), dtype="int64",
        initializer="zeros", trainable=False)                     # [H]
    self.secondary_count = self.add_weight(
        name="secondary_count", shape=(self.num_intentions,), dtype="int64",
        initializer="zeros", trainable=False)                     # [H]

  @property
  def cached(self):
    return self.value_dim is not None

  def update(self, ids, values=None, intention_fn=None):
    """Applies rules (1)-(3) for the batch's positives.

    Args:
      ids: item ids of the positives, int64 [B].
      values: their representations [B, value_dim] (cached queues only); the
        queue stores them without gradient.
      intention_fn: maps dequeued item ids int64 [B] to their intention
        h^- in [0, H), int [B]. Required.

    Returns:
      A dict: "slots" int64 [B], the Q_0 slots just written (to put the
      present batch's representations back with their gradient);
      "dequeued" int64 [B] and "dequeued_valid" bool [B], what left Q_0;
      "dequeued_intention" int64 [B], the queue each of them joined.
    """
    if intention_fn is None:
      raise ValueError("MultiQueue.update needs intention_fn (rule 2)")
    if self.cached and values is None:
      raise ValueError("MultiQueue.update: this queue caches representations "
                       "(value_dim=%d); pass values" % self.value_dim)
    ids = tf.convert_to_tensor(ids, tf.int64)
    batch = tf.shape(ids, out_type=tf.int64)[0]
    slots = (self.main_ids.pointer + tf.range(batch)) % self.main_size  # [B]
    # Rule (1): positives into Q_0.
    dequeued, dequeued_valid = self.main_ids.enqueue(ids)        # [B], [B]
    dequeued_values = None
    if self.cached:
      dequeued_values, _ = self.main_values.enqueue(
          tf.stop_gradient(tf.cast(values, self.value_dtype)))    # [B, D]
    # Rule (2): what left Q_0 joins the queue of its own intention.
    intentions = tf.cast(intention_fn(dequeued), tf.int64)       # [B]
    self._enqueue_secondary(dequeued, dequeued_values, dequeued_valid,
                            intentions)
    return {"slots": slots, "dequeued": dequeued,
            "dequeued_valid": dequeued_valid,
            "dequeued_intention": intentions}

  def _enqueue_secondary(self, ids, values, valid, intentions):
    """Appends the valid `ids` [B] to Q_{intentions}; overwritten ones drop (3)."""
    tf.debugging.assert_less(
        intentions, tf.constant(self.num_intentions, tf.int64),
        message="MultiQueue: intention id >= num_intentions")
    tf.debugging.assert_non_negative(
        intentions, message="MultiQueue: negative intention id")
    one_hot = tf.one_hot(intentions, self.num_intentions, dtype=tf.int64)
    one_hot *= tf.cast(valid, tf.int64)[:, None]                  # [B, H]
    # Rank of each item among the batch's valid items of the same intention,
    # in arrival order, and how many items each intention receives.
    rank = tf.reduce_sum((tf.cumsum(one_hot, axis=0) - one_hot) * one_hot,
                         axis=1)                                  # [B]
    arrivals = tf.reduce_sum(one_hot, axis=0)                     # [H]
    # Only the last Qs arrivals of an intention survive this step: earlier
    # ones would be overwritten within the same batch (rule 3).
    keep = valid & (rank >= tf.gather(arrivals, intentions)
                    - self.secondary_size)                        # [B]
    slot = (tf.gather(self.secondary_pointer, intentions) + rank) \
        % self.secondary_size                                     # [B]
    index = tf.boolean_mask(tf.stack([intentions, slot], axis=1), keep)  # [n, 2]
    self.secondary_ids.scatter_nd_update(index, tf.boolean_mask(ids, keep))
    if self.cached:
      self.secondary_values.scatter_nd_update(
          index, tf.boolean_mask(values, keep))
    self.secondary_pointer.assign(
        (self.secondary_pointer + arrivals) % self.secondary_size)
    self.secondary_count.assign(
        tf.minimum(self.secondary_count + arrivals, self.secondary_size))

  def main_contents(self):
    """Q_0: (ids int64 [Q0], values [Q0, D] or None, valid bool [Q0]).

    Queued representations carry no gradient (Figure 1c): the queue is state.
    """
    ids, valid = self.main_ids.contents()
    values = None
    if self.cached:
      values = tf.stop_gradient(self.main_values.contents()[0])  # [Q0, D]
    return ids, values, valid

  def secondary_contents(self):
    """All Q_h: (ids [H, Qs], values [H, Qs, D] or None, valid [H, Qs])."""
    # Each ring fills slots 0, 1, ... before it wraps: the first `count` are valid.
    valid = (tf.range(self.secondary_size, dtype=tf.int64)[None, :]
             < self.secondary_count[:, None])                     # [H, Qs]
    values = (tf.stop_gradient(self.secondary_values.read_value())
              if self.cached else None)                           # [H, Qs, D]
    return tf.identity(self.secondary_ids), values, valid

  def reset(self):
    self.main_ids.reset()
    if self.cached:
      self.main_values.reset()
      self.secondary_values.assign(tf.zeros_like(self.secondary_values))
    self.secondary_ids.assign(tf.zeros_like(self.secondary_ids))
    self.secondary_pointer.assign(tf.zeros_like(self.secondary_pointer))
    self.secondary_count.assign(tf.zeros_like(self.secondary_count))

  def get_config(self):
    config = super().get_config()
    config.update(main_size=self.main_size,
                  secondary_size=self.secondary_size,
                  num_intentions=self.num_intentions, value_dim=self.value_dim,
                  value_dtype=self.value_dtype)
    return config
