"""negative_sampling_bce (PCL-AISL Eq. 1): hand-worked value, NumPy reference,
shared negatives equal tiled per-example negatives."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.losses import negative_sampling_bce


def _softplus(x):
  return np.logaddexp(0.0, x)


def _numpy_bce(query, positive, negatives, temperature, pos_ids=None, neg_ids=None):
  """-log sig(s+) - sum log(1 - sig(s-)) = softplus(-s+) + sum softplus(s-)."""
  pos = (query * positive).sum(1) / temperature
  if negatives.ndim == 2:
    negatives = np.broadcast_to(negatives, (query.shape[0],) + negatives.shape)
    if neg_ids is not None:
      neg_ids = np.broadcast_to(neg_ids, (query.shape[0], neg_ids.size))
  neg = np.einsum("bd,bsd->bs", query, negatives) / temperature
  neg_loss = _softplus(neg)
  if pos_ids is not None:
    neg_loss = np.where(pos_ids[:, None] == neg_ids, 0.0, neg_loss)
  return _softplus(-pos) + neg_loss.sum(1)


def test_hand_worked():
  # s+ = <[1, 0], [2, 0]> = 2; shared negatives give s- = 0 and 1:
  # softplus(-2) + softplus(0) + softplus(1) = 0.126928 + 0.693147 + 1.313262
  loss = negative_sampling_bce(tf.constant([[1.0, 0.0]]), tf.constant([[2.0, 0.0]]),
                               tf.constant([[0.0, 0.0], [1.0, 0.0]]))
  np.testing.assert_allclose(loss.numpy(), [2.133337], atol=1e-5)
  # Negative id 7 equals the positive's: its softplus(1) term is dropped.
  loss = negative_sampling_bce(tf.constant([[1.0, 0.0]]), tf.constant([[2.0, 0.0]]),
                               tf.constant([[0.0, 0.0], [1.0, 0.0]]),
                               positive_ids=tf.constant([7]),
                               negative_ids=tf.constant([3, 7]))
  np.testing.assert_allclose(loss.numpy(), [0.126928 + 0.693147], atol=1e-5)


@pytest.mark.parametrize("shared", [False, True])
def test_matches_numpy_reference(shared):
  rng = np.random.default_rng(0)
  b, s, d = 4, 6, 3
  query, positive = rng.normal(size=(2, b, d))
  negatives = rng.normal(size=(s, d) if shared else (b, s, d))
  pos_ids = rng.integers(1, 5, b)
  neg_ids = rng.integers(1, 5, s if shared else (b, s))
  got = negative_sampling_bce(query, positive, negatives, temperature=0.5,
                              positive_ids=pos_ids, negative_ids=neg_ids)
  expected = _numpy_bce(query, positive, negatives, 0.5, pos_ids, neg_ids)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_shared_equals_tiled_per_example_negatives():
  rng = np.random.default_rng(1)
  query, positive = rng.normal(size=(2, 3, 4)).astype(np.float32)
  negatives = rng.normal(size=(5, 4)).astype(np.float32)
  shared = negative_sampling_bce(query, positive, negatives)
  tiled = negative_sampling_bce(query, positive, np.tile(negatives[None], [3, 1, 1]))
  np.testing.assert_allclose(shared.numpy(), tiled.numpy(), rtol=1e-6)


def test_large_scores_stay_finite():
  # sigmoid would round to 1 and log(1 - 1) = -inf; the stable form gives ~100.
  loss = negative_sampling_bce(tf.constant([[10.0]]), tf.constant([[10.0]]),
                               tf.constant([[10.0]]))
  np.testing.assert_allclose(loss.numpy(), [100.0], rtol=1e-6)


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match="\\[B, S, D\\] or \\[S, D\\]"):
    negative_sampling_bce(tf.ones([2, 3]), tf.ones([2, 3]), tf.ones([3]))
