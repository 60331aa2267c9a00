"""ItemImportance (CLRec Eq. 6): masked softmax of MLP_2 scores vs NumPy."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.interests.item_importance import ItemImportance
from tests.layer_test_util import run_layer_test


def _numpy_importance(features, mask, weights):
  h = features
  for kernel, bias, act in weights:
    h = h @ kernel + bias
    if act:
      h = np.maximum(h, 0.0)
  logits = h[..., 0]
  p = np.zeros_like(logits)
  for b in range(logits.shape[0]):
    valid = mask[b]
    if valid.any():
      e = np.exp(logits[b, valid] - logits[b, valid].max())
      p[b, valid] = e / e.sum()
  return p


def test_matches_numpy_masked_softmax_of_mlp():
  rng = np.random.default_rng(0)
  g = rng.normal(size=(3, 5, 4)).astype(np.float32)
  c = rng.normal(size=(3, 5, 2)).astype(np.float32)
  gap = rng.uniform(0, 3, size=(3, 5, 1)).astype(np.float32)
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
  layer = ItemImportance(hidden_units=[6])
  got = layer([tf.constant(g), tf.constant(c), tf.constant(gap)],
              tf.constant(mask)).numpy()
  weights = [(layer.hidden_layers[0].kernel.numpy(),
              layer.hidden_layers[0].bias.numpy(), True),
             (layer.score_layer.kernel.numpy(), layer.score_layer.bias.numpy(),
              False)]
  expected = _numpy_importance(np.concatenate([g, c, gap], -1), mask, weights)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[:2].sum(-1), [1.0, 1.0], rtol=1e-6)
  np.testing.assert_array_equal(got[2], np.zeros(5))      # no valid position
  np.testing.assert_array_equal(got[0, 3:], [0.0, 0.0])   # padding


def test_hand_worked_linear_scores():
  layer = ItemImportance(hidden_units=[])
  layer(tf.zeros([1, 2, 1]), tf.ones([1, 2], tf.bool))
  layer.score_layer.kernel.assign([[1.0]])
  layer.score_layer.bias.assign([0.0])
  # Scores [0, ln 3] -> softmax [1/4, 3/4]; the third (padded) item is ignored
  # even though its score (100) dominates.
  features = tf.constant([[[0.0], [np.log(3.0)], [100.0]]], tf.float32)
  got = layer(features, tf.constant([[True, True, False]])).numpy()
  np.testing.assert_allclose(got, [[0.25, 0.75, 0.0]], atol=1e-6)


def test_layer_contract():
  rng = np.random.default_rng(1)
  mask = tf.constant([[True, True, False], [True, False, False]])
  run_layer_test(ItemImportance, {"hidden_units": [4]},
                 tf.constant(rng.normal(size=(2, 3, 5)), tf.float32), (2, 3),
                 call_fn=lambda layer, x, training=False: layer(
                     x, mask, training=training))
