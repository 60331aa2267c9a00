"""IntentionAggregation (CLRec Eq. 8) against NumPy."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.interests.intention_aggregation import IntentionAggregation
from tests.layer_test_util import run_layer_test


def test_matches_numpy_eq8():
  rng = np.random.default_rng(0)
  batch, length, dim, heads, out = 2, 4, 3, 5, 6
  items = rng.normal(size=(batch, length, dim)).astype(np.float32)
  importance = rng.dirichlet(np.ones(length), size=batch).astype(np.float32)
  routing = rng.dirichlet(np.ones(heads), size=(batch, length)).astype(np.float32)
  layer = IntentionAggregation(num_intentions=heads, output_dim=out,
                               hidden_units=[7])
  got = layer(tf.constant(items), tf.constant(importance),
              tf.constant(routing)).numpy()
  # z'_h = sum_t p_{h|t} p_t g(y_t), written as explicit loops.
  pooled = np.zeros((batch, heads, dim))
  for b in range(batch):
    for h in range(heads):
      for t in range(length):
        pooled[b, h] += routing[b, t, h] * importance[b, t] * items[b, t]
  beta = layer.intention_bias.numpy()
  x = np.concatenate([pooled, np.broadcast_to(beta, pooled.shape)], -1)
  hidden = np.maximum(x @ layer.hidden_layers[0].kernel.numpy()
                      + layer.hidden_layers[0].bias.numpy(), 0)
  expected = (hidden @ layer.output_layer.kernel.numpy()
              + layer.output_layer.bias.numpy())
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_bias_vectors_are_shared_and_give_the_output_of_an_empty_history():
  layer = IntentionAggregation(num_intentions=3, output_dim=2)
  # With p_t = 0 (no valid history) z_h = MLP_3([0; beta_h]): identical for
  # every user, different across intentions.
  z = layer(tf.ones([2, 4, 3]), tf.zeros([2, 4]), tf.fill([2, 4, 3], 1 / 3)).numpy()
  beta = layer.intention_bias.numpy()
  expected = (np.concatenate([np.zeros((3, 3)), beta], -1)
              @ layer.output_layer.kernel.numpy() + layer.output_layer.bias.numpy())
  np.testing.assert_allclose(z[0], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(z[1], expected, rtol=1e-5, atol=1e-6)


def test_layer_contract():
  rng = np.random.default_rng(1)
  importance = tf.constant(rng.dirichlet(np.ones(3), size=2), tf.float32)
  routing = tf.constant(rng.dirichlet(np.ones(4), size=(2, 3)), tf.float32)
  run_layer_test(IntentionAggregation,
                 {"num_intentions": 4, "output_dim": 5, "hidden_units": [3]},
                 tf.constant(rng.normal(size=(2, 3, 6)), tf.float32), (2, 4, 5),
                 call_fn=lambda layer, x, training=False: layer(
                     x, importance, routing, training=training))
