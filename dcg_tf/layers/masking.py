"""The one masked-logit value, shared by attention masks and loss corrections.

A leaf module (it imports no other part of dcg_tf), so that layers and towers
use it without importing `dcg_tf.losses` (tests/test_layout.py), and the
losses' corrections (`dcg_tf.losses.corrections`) use the same value.

`MASKED_LOGIT` is finite (tfrs `layers.loss.MIN_FLOAT`: the float32 minimum
/ 100), so that

  * exp(MASKED_LOGIT - max) is exactly 0 in float32 whenever a row keeps one
    ordinary logit: a masked entry gets zero softmax weight and zero gradient,
    exactly as -inf (or the -1e9 this package used before) would;
  * a row whose every entry is masked stays finite: its softmax is uniform
    (not NaN, as with -inf), and each caller decides what such a row means
    (attention zeroes its weights, a contrastive loss whose negatives are all
    masked keeps only its positive);
  * subtracting a log-probability or dividing by a temperature < 1 after
    masking cannot overflow to -inf (100x of head room), though corrections
    apply masks last (`dcg_tf.losses.corrections.correct_logits`).

Logits in this package are float32; in float16 the value would round to -inf.
"""

import numpy as np
import tensorflow as tf

MASKED_LOGIT = float(np.finfo(np.float32).min) / 100.0


def mask_logits(logits, valid):
  """Replaces `logits` by `MASKED_LOGIT` where `valid` is False.

  Args:
    logits: float tensor [...].
    valid: bool tensor broadcastable to `logits` (True keeps the logit).

  Returns:
    float tensor, the shape of `logits` broadcast with `valid`. Kept entries
    are the input values bit for bit; masked entries pass no gradient.

  Example:
    >>> mask_logits(tf.constant([[1.0, 2.0]]), tf.constant([[True, False]]))
    # [[1.0, MASKED_LOGIT]]
  """
  logits = tf.convert_to_tensor(logits)
  return tf.where(tf.cast(valid, tf.bool), logits,
                  tf.constant(MASKED_LOGIT, logits.dtype))
