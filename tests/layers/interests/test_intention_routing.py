"""IntentionRouting (CLRec Eq. 7) against NumPy and a hand-worked value."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.interests.intention_routing import IntentionRouting
from tests.layer_test_util import run_layer_test


def _numpy_routing(prototypes, categories, rho):
  mu = prototypes / np.linalg.norm(prototypes, axis=-1, keepdims=True)
  c = categories / np.linalg.norm(categories, axis=-1, keepdims=True)
  logits = c @ mu.T / rho
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_matches_numpy_eq7():
  rng = np.random.default_rng(0)
  categories = rng.normal(size=(3, 4, 5)).astype(np.float32)
  layer = IntentionRouting(num_intentions=6, temperature=0.07)
  got = layer(tf.constant(categories)).numpy()
  expected = _numpy_routing(layer.prototypes.numpy(), categories, 0.07)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
  # The item's intention (the queue it joins) is the argmax of the logits.
  np.testing.assert_array_equal(
      tf.argmax(layer.logits(tf.constant(categories)), axis=-1).numpy(),
      expected.argmax(-1))


def test_hand_worked_value_and_scale_invariance():
  layer = IntentionRouting(num_intentions=2, temperature=0.5)
  layer.build((None, 2))
  layer.prototypes.assign([[2.0, 0.0], [0.0, 3.0]])
  # c = (1, 1): cos with both prototypes is 1/sqrt(2); equal logits -> [.5, .5].
  # c = (1, 0): logits [1/0.5, 0] = [2, 0] -> softmax = [e^2/(e^2+1), 1/(e^2+1)]
  #           = [0.880797, 0.119203].
  got = layer(tf.constant([[1.0, 1.0], [1.0, 0.0], [7.0, 0.0]])).numpy()
  np.testing.assert_allclose(got, [[0.5, 0.5], [0.880797, 0.119203],
                                   [0.880797, 0.119203]], atol=1e-6)


def test_layer_contract():
  rng = np.random.default_rng(1)
  run_layer_test(IntentionRouting, {"num_intentions": 4, "temperature": 0.07},
                 tf.constant(rng.normal(size=(2, 3, 5)), tf.float32), (2, 3, 4))
