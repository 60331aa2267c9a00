"""MIND's label-aware attention: the target chooses among the user's interests."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.masking import mask_logits


@keras.utils.register_keras_serializable(package="dcg_tf")
class LabelAwareAttention(keras.layers.Layer):
  """Weights over interests: softmax_k(pow(<v_k, e_target>, p)), or argmax.

  MIND (Li et al., CIKM'19), section 3.5, Eq. 9: during training the user
  vector for a target item e is v_u = V softmax(pow(V^T e, p)); p = 0 gives
  uniform weights, larger p sharpens them and p -> infinity is hard
  attention, the interest most similar to the target (`hard=True`; the
  "hard readout" ComiRec trains with, KDD'20 section 3.4 and the official
  code's `hard_readout=True`).

  For a non-integer p, pow of a negative score is undefined; the power is
  applied as sign(x) |x|^p, which is pow(x, p) for p = 1 (the value the
  ComiRec code uses for MIND) and keeps the order of the scores for every p.

  Args:
    power: p >= 0.
    hard: one-hot weights at the argmax instead of the softmax.

  Call:
    interests: float [B, K, D].
    target: float [B, D].
    mask: optional bool [B, K]; False interests get weight 0 (a row without a
      True entry is uniform over K with `hard=False`).
    Returns weights float [B, K], rows summing to 1; no gradient with `hard`.

  Example:
    >>> weights = LabelAwareAttention(power=2.0)(capsules, target)   # [B, K]
    >>> user = tf.einsum("bk,bkd->bd", weights, capsules)
  """

  def __init__(self, power=1.0, hard=False, **kwargs):
    super().__init__(**kwargs)
    if float(power) < 0:
      raise ValueError("LabelAwareAttention: power must be >= 0, got %r" % (power,))
    self.power = float(power)
    self.hard = bool(hard)

  def call(self, interests, target, mask=None):
    scores = tf.einsum("bkd,bd->bk", interests, target)           # [B, K]
    if mask is not None:
      mask = tf.cast(mask, tf.bool)
    if self.hard:
      if mask is not None:
        scores = mask_logits(scores, mask)
      best = tf.argmax(scores, axis=-1)                           # [B]
      return tf.one_hot(best, tf.shape(scores)[-1], dtype=interests.dtype)
    logits = tf.sign(scores) * tf.pow(tf.abs(scores), self.power)  # [B, K]
    if mask is not None:
      logits = mask_logits(logits, mask)
    return tf.nn.softmax(logits, axis=-1)                         # [B, K]

  def get_config(self):
    config = super().get_config()
    config.update(power=self.power, hard=self.hard)
    return config
