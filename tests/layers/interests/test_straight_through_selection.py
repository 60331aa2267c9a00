"""StraightThroughSelection (CLRec Eq. 9): one-hot forward, soft gradient."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.interests.straight_through_selection import StraightThroughSelection
from tests.layer_test_util import run_layer_test

RHO = 0.3


def _numpy_soft_weights(pooled, intentions, kernel, bias, rho):
  m = pooled @ kernel + bias                                     # [B, D]
  m = m / np.linalg.norm(m, axis=-1, keepdims=True)
  z = intentions / np.linalg.norm(intentions, axis=-1, keepdims=True)
  logits = np.einsum("bd,bhd->bh", m, z) / rho
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _setup():
  rng = np.random.default_rng(0)
  pooled = rng.normal(size=(3, 4))
  intentions = rng.normal(size=(3, 5, 4))
  layer = StraightThroughSelection(output_dim=4, temperature=RHO)
  layer(tf.constant(pooled, tf.float32), tf.constant(intentions, tf.float32))
  return rng, pooled, intentions, layer


def test_forward_is_one_hot_at_argmax_of_numpy_weights():
  _, pooled, intentions, layer = _setup()
  out = layer(tf.constant(pooled, tf.float32), tf.constant(intentions, tf.float32))
  expected = _numpy_soft_weights(pooled, intentions,
                                 layer.query_layer.kernel.numpy(),
                                 layer.query_layer.bias.numpy(), RHO)
  np.testing.assert_allclose(out["weights"].numpy(), expected, rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_array_equal(out["selected"].numpy(), expected.argmax(-1))
  one_hot = np.eye(5)[expected.argmax(-1)]
  np.testing.assert_allclose(out["straight_through"].numpy(), one_hot, atol=1e-6)


def test_gradient_is_that_of_the_soft_weights():
  rng, pooled, intentions, layer = _setup()
  kernel = layer.query_layer.kernel.numpy().astype(np.float64)
  bias = layer.query_layer.bias.numpy().astype(np.float64)
  coefficients = rng.normal(size=(3, 5))

  # TF: L = sum_bh a_bh tilde w_bh through the straight-through estimator.
  z = tf.Variable(intentions, dtype=tf.float32)
  p = tf.Variable(pooled, dtype=tf.float32)
  with tf.GradientTape() as tape:
    tilde_w = layer(p, z)["straight_through"]
    loss = tf.reduce_sum(tf.constant(coefficients, tf.float32) * tilde_w)
  grad_z, grad_p = tape.gradient(loss, [z, p])

  # Reference: central differences of the SOFT loss sum a w in float64.
  def soft_loss(pooled_, intentions_):
    return np.sum(coefficients * _numpy_soft_weights(pooled_, intentions_,
                                                     kernel, bias, RHO))

  def numeric_grad(x, f):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
      step = np.zeros_like(x)
      step[index] = 1e-5
      grad[index] = (f(x + step) - f(x - step)) / 2e-5
    return grad

  expected_z = numeric_grad(intentions, lambda x: soft_loss(pooled, x))
  expected_p = numeric_grad(pooled, lambda x: soft_loss(x, intentions))
  np.testing.assert_allclose(grad_z.numpy(), expected_z, rtol=2e-3, atol=2e-4)
  np.testing.assert_allclose(grad_p.numpy(), expected_p, rtol=2e-3, atol=2e-4)
  assert np.abs(expected_z).max() > 1e-2  # the check is not vacuous


def test_candidates_restrict_the_argmax_and_the_softmax():
  # Regression: the selection picked an intention holding none of the user's
  # clicks (a user-independent z_h) for every user. Masked intentions must
  # get w = 0 and never be h*, even when their logit is the largest.
  _, pooled, intentions, layer = _setup()
  soft = _numpy_soft_weights(pooled, intentions,
                             layer.query_layer.kernel.numpy(),
                             layer.query_layer.bias.numpy(), RHO)
  candidates = np.ones((3, 5), bool)
  candidates[np.arange(3), soft.argmax(-1)] = False  # forbid the best one
  candidates[1, :] = False                           # no candidate: all H
  out = layer(tf.constant(pooled, tf.float32),
              tf.constant(intentions, tf.float32),
              candidates=tf.constant(candidates))
  allowed = candidates | ~candidates.any(-1, keepdims=True)
  expected = np.where(allowed, soft, 0.0)
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_allclose(out["weights"].numpy(), expected, rtol=1e-4,
                             atol=1e-6)
  selected = out["selected"].numpy()
  np.testing.assert_array_equal(selected, expected.argmax(-1))
  assert selected[0] != soft[0].argmax() and selected[2] != soft[2].argmax()
  assert selected[1] == soft[1].argmax()
  np.testing.assert_allclose(out["straight_through"].numpy(),
                             np.eye(5)[selected], atol=1e-6)


def test_layer_contract():
  rng = np.random.default_rng(1)
  intentions = tf.constant(rng.normal(size=(2, 3, 4)), tf.float32)
  run_layer_test(StraightThroughSelection,
                 {"output_dim": 4, "hidden_units": [5], "temperature": 0.5},
                 tf.constant(rng.normal(size=(2, 6)), tf.float32), (2, 3),
                 call_fn=lambda layer, x, training=False: layer(
                     x, intentions, training=training)["weights"])
