"""LabelAwareAttention (MIND Eq. 9) against hand-worked values."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.interests.label_aware_attention import LabelAwareAttention

# Interests v_1 = (1, 0), v_2 = (0, 1), v_3 = (-1, 0); target e = (0.5, 0.2):
# scores <v_k, e> = 0.5, 0.2, -0.5.
V = tf.constant([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
E = tf.constant([[0.5, 0.2]])


def _softmax(x):
  e = np.exp(np.array(x) - max(x))
  return e / e.sum()


def test_power_one_is_softmax_of_scores():
  got = LabelAwareAttention(power=1.0)(V, E).numpy()[0]
  np.testing.assert_allclose(got, _softmax([0.5, 0.2, -0.5]), rtol=1e-6)


def test_power_two_keeps_the_sign():
  # sign(x)|x|^2: 0.25, 0.04, -0.25 (pow(-0.5, 2) = +0.25 would rank v_3 first).
  got = LabelAwareAttention(power=2.0)(V, E).numpy()[0]
  np.testing.assert_allclose(got, _softmax([0.25, 0.04, -0.25]), rtol=1e-6)


def test_hard_and_mask():
  layer = LabelAwareAttention(hard=True)
  np.testing.assert_array_equal(layer(V, E).numpy(), [[1.0, 0.0, 0.0]])
  mask = tf.constant([[False, True, True]])
  np.testing.assert_array_equal(layer(V, E, mask).numpy(), [[0.0, 1.0, 0.0]])
  soft = LabelAwareAttention()(V, E, mask).numpy()[0]
  np.testing.assert_allclose(soft, [0.0] + list(_softmax([0.2, -0.5])), rtol=1e-6)
  assert LabelAwareAttention.from_config(
      LabelAwareAttention(power=3.0, hard=True).get_config()).power == 3.0
