"""Base class of every training model: towers + losses + training-only state."""

import tensorflow as tf

from dcg_tf._keras import keras


class RetrievalModel(keras.Model):
  """Training wrapper around an exportable user tower and item tower.

  Subclasses implement `compute_loss(inputs, training)` and may own
  training-only state (queues, momentum encoders, prototypes) as attributes:
  it is tracked for checkpoints but is not reachable from `user_tower` or
  `item_tower`, so it never enters an export (docs/design.md).

  Args:
    user_tower: maps a batch dict to [B, D] (or `(vectors [B, K, D], mask [B, K])`
      for multi-interest towers).
    item_tower: maps item ids int64 [B] to [B, D].
  """

  def __init__(self, user_tower, item_tower, **kwargs):
    super().__init__(**kwargs)
    self.user_tower = user_tower
    self.item_tower = item_tower

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    """Returns a dict of scalars with at least "loss" (the total to minimise)."""
    raise NotImplementedError

  def after_train_step(self):
    """Hook run after the optimizer step (momentum updates and the like)."""
    return None

  def training_callbacks(self):
    """Keras callbacks the trainer must run (e.g. prototype refresh per epoch)."""
    return []

  def train_step(self, data):
    with tf.GradientTape() as tape:
      outputs = self.compute_loss(data, training=True)
      loss = outputs["loss"]
      if self.losses:
        loss = loss + tf.add_n(self.losses)
    variables = self.trainable_variables
    gradients = tape.gradient(loss, variables)
    self.optimizer.apply_gradients(
        (g, v) for g, v in zip(gradients, variables) if g is not None)
    self.after_train_step()
    return dict(outputs, loss=loss)

  def test_step(self, data):
    return self.compute_loss(data, training=False)

  def call(self, inputs, training=False):
    """The user embedding(s) for a batch: what retrieval queries with."""
    return self.user_tower(inputs, training=training)
