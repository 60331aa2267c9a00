"""SelfAttentiveInterestExtractor (ComiRec-SA Eq. 4-5) against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.interests.self_attentive_interest_extractor import (
    SelfAttentiveInterestExtractor)
from tests.layer_test_util import run_layer_test

B, L, D, K = 3, 5, 4, 2


def _inputs():
  rng = np.random.default_rng(0)
  items = rng.normal(size=(B, L, D)).astype(np.float32)
  mask = np.arange(L)[None, :] < np.array([5, 3, 1])[:, None]
  return items, mask


@pytest.mark.parametrize("use_positions", [True, False])
def test_attention_and_interests_match_numpy(use_positions):
  items, mask = _inputs()
  layer = SelfAttentiveInterestExtractor(K, max_len=L + 1, hidden_units=6,
                                         use_positions=use_positions)
  got = layer(tf.constant(items), tf.constant(mask)).numpy()
  w1, b1 = layer.hidden.kernel.numpy(), layer.hidden.bias.numpy()
  w2, b2 = layer.scores.kernel.numpy(), layer.scores.bias.numpy()
  expected = np.zeros([B, K, D])
  for b in range(B):
    h = items[b].astype(np.float64)
    if use_positions:
      h = h + layer.position_embedding.numpy()[:L]
    logits = (np.tanh(h @ w1 + b1) @ w2 + b2).T                  # [K, L]
    valid = mask[b]
    a = np.zeros([K, L])
    e = np.exp(logits[:, valid] - logits[:, valid].max(1, keepdims=True))
    a[:, valid] = e / e.sum(1, keepdims=True)                    # softmax over valid
    expected[b] = a @ items[b]                                   # V = A H (no positions)
    np.testing.assert_allclose(
        layer.attention(tf.constant(items), tf.constant(mask)).numpy()[b], a,
        rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # The single-item user: every interest is that item.
  np.testing.assert_allclose(got[2], np.stack([items[2, 0]] * K), atol=1e-6)


def test_layer_contract():
  items, mask = _inputs()
  run_layer_test(
      SelfAttentiveInterestExtractor, {"num_interests": K, "max_len": L},
      {"items": tf.constant(items), "mask": tf.constant(mask)}, (B, K, D),
      call_fn=lambda layer, x, training=False: layer(x["items"], x["mask"]))
