"""Importance weights of the clicked items in Multi-CLRec (Eq. 6)."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.masking import mask_logits


@keras.utils.register_keras_serializable(package="dcg_tf")
class ItemImportance(keras.layers.Layer):
  """p_t = softmax over valid positions of MLP_2([g(y_t); c_t; time features]).

  CLRec paper (Zhou et al., KDD'21), section 3.2, Eq. 6:
    p'_t = MLP_2([g(y_t); c_t; time gap between y_t and y_T; ...]) in R,
    p_t = exp(p'_t) / sum_{t'} exp(p'_{t'}),
  where the sum runs over the valid (non-padding) history positions.

  Args:
    hidden_units: widths of MLP_2's hidden layers; a final Dense(1) follows.
    activation: activation of the hidden layers.

  Call:
    features: a tensor float [B, L, F] or a list of tensors [B, L, F_i] that are
      concatenated (e.g. [g(y_t), c_t, time-gap features]).
    mask: bool [B, L], True at valid positions.
    Returns p_t, float [B, L]: zero at padding, sums to 1 over valid positions
    (all zeros for a row without valid positions).

  Example:
    >>> importance = ItemImportance(hidden_units=[32])
    >>> p = importance([g, c, gaps], mask)    # [B, L]
  """

  def __init__(self, hidden_units=(64,), activation="relu", **kwargs):
    super().__init__(**kwargs)
    self.hidden_units = [int(u) for u in hidden_units]
    self.activation = activation
    self.hidden_layers = [keras.layers.Dense(u, activation=activation,
                                             name="hidden_%d" % i)
                          for i, u in enumerate(self.hidden_units)]
    self.score_layer = keras.layers.Dense(1, name="score")

  def call(self, features, mask):
    if isinstance(features, (list, tuple)):
      features = tf.concat(list(features), axis=-1)               # [B, L, F]
    h = features
    for layer in self.hidden_layers:
      h = layer(h)                                                # [B, L, U]
    logits = tf.squeeze(self.score_layer(h), axis=-1)             # [B, L]
    mask = tf.cast(mask, tf.bool)
    logits = mask_logits(logits, mask)                            # [B, L]
    weights = tf.nn.softmax(logits, axis=-1)                      # [B, L]
    # A row with no valid position gets a uniform softmax (every logit is
    # MASKED_LOGIT): zero it.
    return weights * tf.cast(mask, weights.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(hidden_units=self.hidden_units, activation=self.activation)
    return config
