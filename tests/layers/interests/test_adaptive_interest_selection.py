"""AdaptiveInterestSelection (PCL-AISL Eq. 2-6): hard forward, soft gradient."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.interests.adaptive_interest_selection import AdaptiveInterestSelection

K, T = 4, 0.5


def _layer(relaxation):
  layer = AdaptiveInterestSelection(K, hidden_units=[5], temperature=T,
                                    relaxation=relaxation)
  # h_0 = [log(1 + #interactions), a demographic feature] for 6 users.
  features = tf.constant(np.stack([np.log1p([1.0, 3.0, 12.0, 40.0, 2.0, 7.0]),
                                   [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]], axis=1),
                         tf.float32)
  layer(features)
  rng = np.random.default_rng(0)
  for w in layer.trainable_weights:     # spread the logits out
    w.assign(rng.normal(scale=1.5, size=w.shape))
  return layer, features


def _numpy_logits(layer, features):
  h = features.numpy().astype(np.float64)
  for dense in layer.hidden_layers:
    h = np.maximum(h @ dense.kernel.numpy() + dense.bias.numpy(), 0.0)
  return h @ layer.logit_layer.kernel.numpy() + layer.logit_layer.bias.numpy()


def _numpy_soft(logits, relaxation):
  e = np.exp(logits / T - (logits / T).max(-1, keepdims=True))
  soft = e / e.sum(-1, keepdims=True)
  if relaxation == "cumulative":
    soft = np.cumsum(soft[:, ::-1], axis=-1)[:, ::-1]      # P(K_u >= k)
  return soft


@pytest.mark.parametrize("relaxation", ["softmax", "cumulative"])
def test_forward_is_the_multi_hot_of_the_argmax(relaxation):
  layer, features = _layer(relaxation)
  out = layer(features)
  logits = _numpy_logits(layer, features)
  k_u = logits.argmax(-1) + 1
  np.testing.assert_array_equal(out["num_interests"].numpy(), k_u)
  multi_hot = (np.arange(1, K + 1)[None, :] <= k_u[:, None]).astype(np.float32)
  np.testing.assert_array_equal(out["mask"].numpy(), multi_hot)
  np.testing.assert_allclose(out["soft_mask"].numpy(),
                             _numpy_soft(logits, relaxation), rtol=1e-5)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  np.testing.assert_allclose(out["probabilities"].numpy(),
                             e / e.sum(-1, keepdims=True), rtol=1e-5)
  assert len(set(k_u)) > 1   # the test sees several K_u


@pytest.mark.parametrize("relaxation", ["softmax", "cumulative"])
def test_gradient_is_the_soft_masks_by_finite_differences(relaxation):
  # Loss = sum_k c_k s_u^k. Eq. 6's gradient w.r.t. every weight must be
  # that of sum_k c_k s_hat_u^k, computed here in NumPy by central
  # differences of the relaxation alone.
  layer, features = _layer(relaxation)
  c = tf.constant(np.random.default_rng(1).normal(size=(6, K)), tf.float32)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(c * layer(features)["mask"])
  weights = layer.trainable_weights
  grads = tape.gradient(loss, weights)
  values = [w.numpy().astype(np.float64) for w in weights]

  def soft_loss(vals):
    h = features.numpy().astype(np.float64)
    h = np.maximum(h @ vals[0] + vals[1], 0.0)
    logits = h @ vals[2] + vals[3]
    return float((c.numpy() * _numpy_soft(logits, relaxation)).sum())

  names = [w.name for w in weights]
  assert "kernel" in names[0] and "bias" in names[1] and "logits" in names[2]
  for i, value in enumerate(values):
    numeric = np.zeros_like(value)
    for idx in np.ndindex(*value.shape):
      plus = [v.copy() for v in values]
      minus = [v.copy() for v in values]
      plus[i][idx] += 1e-5
      minus[i][idx] -= 1e-5
      numeric[idx] = (soft_loss(plus) - soft_loss(minus)) / 2e-5
    np.testing.assert_allclose(grads[i].numpy(), numeric, rtol=2e-3, atol=1e-5)


def test_config_and_bad_arguments():
  layer = AdaptiveInterestSelection(3, hidden_units=[4], relaxation="cumulative")
  clone = AdaptiveInterestSelection.from_config(layer.get_config())
  assert clone.relaxation == "cumulative" and clone.max_interests == 3
  with pytest.raises(ValueError, match="relaxation"):
    AdaptiveInterestSelection(3, relaxation="gumbel")
  with pytest.raises(ValueError, match="temperature"):
    AdaptiveInterestSelection(3, temperature=0)
