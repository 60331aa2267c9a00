"""CapsuleInterestExtractor (MIND / ComiRec-DR routing) against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.interests.capsule_interest_extractor import CapsuleInterestExtractor
from tests.layer_test_util import run_layer_test

B, L, D, K = 3, 5, 4, 3


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  items = rng.normal(size=(B, L, D)).astype(np.float32)
  lengths = np.array([5, 2, 1])
  mask = np.arange(L)[None, :] < lengths[:, None]
  return items, mask


def _numpy_squash(s):
  n2 = (s ** 2).sum(-1, keepdims=True)
  return n2 / (1 + n2) / np.sqrt(n2 + 1e-9) * s


def _numpy_routing(items, mask, bilinear, weight, init, iterations=3):
  """MIND Algorithm 1 / ComiRec-DR written with loops over b, j, i."""
  b_size, length, _ = items.shape
  k = init.shape[0]
  out = np.zeros([b_size, k, weight.shape[-1] if bilinear == "shared"
                  else weight.shape[1] // k])
  for b in range(b_size):
    if bilinear == "shared":
      u_hat = np.stack([[items[b, i] @ weight for i in range(length)]] * k)
    else:
      u_hat = np.stack([[(weight[i] @ items[b, i]).reshape(k, -1)[j]
                         for i in range(length)] for j in range(k)])  # [K, L, D]
    logits = init[:, :length].astype(np.float64).copy()           # [K, L]
    for it in range(iterations):
      w = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)  # softmax over j
      w = w * mask[b][None, :]
      caps = np.stack([_numpy_squash((w[j][:, None] * u_hat[j]).sum(0))
                       for j in range(k)])                        # [K, D]
      if it < iterations - 1:
        for j in range(k):
          for i in range(length):
            logits[j, i] += u_hat[j, i] @ caps[j]
    out[b] = caps
  return out


@pytest.mark.parametrize("bilinear", ["shared", "per_position"])
def test_routing_matches_numpy(bilinear):
  items, mask = _inputs()
  layer = CapsuleInterestExtractor(K, max_len=L + 2, bilinear=bilinear, seed=3)
  got = layer(tf.constant(items), tf.constant(mask)).numpy()
  expected = _numpy_routing(items, mask, bilinear, layer.bilinear_map.numpy(),
                            layer.initial_logits.numpy())
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
  # Squashed capsules are shorter than 1.
  assert np.all(np.linalg.norm(got, axis=-1) < 1.0)


def test_mind_starts_from_fixed_random_logits_comirec_dr_from_zeros():
  mind = CapsuleInterestExtractor(K, max_len=L, bilinear="shared", seed=1)
  dr = CapsuleInterestExtractor(K, max_len=L, bilinear="per_position", seed=1)
  items, mask = _inputs()
  a = mind(tf.constant(items), tf.constant(mask)).numpy()
  np.testing.assert_array_equal(
      a, mind(tf.constant(items), tf.constant(mask)).numpy())   # deterministic
  init = mind.initial_logits.numpy()
  assert init.std() > 0.3 and np.abs(init).max() <= 2.0        # truncated N(0, 1)
  dr(tf.constant(items), tf.constant(mask))
  np.testing.assert_array_equal(dr.initial_logits.numpy(), 0.0)
  # With a shared map, distinct capsules need the random start: all differ.
  assert np.abs(a[0, 0] - a[0, 1]).max() > 1e-4


def test_padding_does_not_change_the_capsules():
  items, mask = _inputs()
  layer = CapsuleInterestExtractor(K, max_len=L, bilinear="per_position")
  ref = layer(tf.constant(items), tf.constant(mask)).numpy()
  noisy = np.where(mask[..., None], items, 100.0).astype(np.float32)
  np.testing.assert_allclose(layer(tf.constant(noisy), tf.constant(mask)).numpy(),
                             ref, atol=1e-6)


def test_routing_coefficients_carry_no_gradient_with_stop_gradient():
  # With one valid behaviour per row and a shared map, the final capsule
  # j is squash(w_j u_hat): a gradient through the routing would also reach
  # the map via w. Compare with the gradient of the NumPy formula where w is
  # a constant: d/dS sum(squash(w S^T e)) by finite differences.
  rng = np.random.default_rng(4)
  items = rng.normal(size=(1, 2, D)).astype(np.float32)
  mask = np.array([[True, True]])
  layer = CapsuleInterestExtractor(2, max_len=2, bilinear="shared", seed=2)
  layer(tf.constant(items), tf.constant(mask))
  weight = layer.bilinear_map.numpy().astype(np.float64)
  init = layer.initial_logits.numpy()
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(layer(tf.constant(items), tf.constant(mask)))
  grad = tape.gradient(total, layer.bilinear_map).numpy()

  def routing_weights(w):
    return _routing_weights(items[0].astype(np.float64), w, init)

  frozen = routing_weights(weight)

  def f(w):   # the last iteration with the routing weights held fixed
    u_hat = items[0].astype(np.float64) @ w                      # [L, D]
    return sum(_numpy_squash(frozen[j] @ u_hat).sum() for j in range(2))

  numeric = np.zeros_like(weight)
  for idx in np.ndindex(*weight.shape):
    step = np.zeros_like(weight)
    step[idx] = 1e-5
    numeric[idx] = (f(weight + step) - f(weight - step)) / 2e-5
  np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)


def _routing_weights(items, weight, init, iterations=3):
  u_hat = items @ weight                                         # [L, D]
  logits = init[:, :items.shape[0]].astype(np.float64).copy()    # [K, L]
  for it in range(iterations):
    w = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    if it == iterations - 1:
      return w
    caps = np.stack([_numpy_squash(w[j] @ u_hat) for j in range(len(w))])
    logits += caps @ u_hat.T


@pytest.mark.parametrize("bilinear", ["shared", "per_position"])
def test_layer_contract(bilinear):
  items, mask = _inputs()
  run_layer_test(
      CapsuleInterestExtractor,
      {"num_interests": K, "max_len": L, "bilinear": bilinear, "output_dim": 6},
      {"items": tf.constant(items), "mask": tf.constant(mask)}, (B, K, 6),
      call_fn=lambda layer, x, training=False: layer(x["items"], x["mask"]))


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="bilinear"):
    CapsuleInterestExtractor(K, L, bilinear="tied")
  layer = CapsuleInterestExtractor(K, max_len=2)
  items, mask = _inputs()
  with pytest.raises(ValueError, match="max_len=2"):
    layer(tf.constant(items), tf.constant(mask))
