"""in_batch_softmax: hand-worked values, NumPy reference, tfrs Retrieval parity."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs

from dcg_tf._keras import keras
from dcg_tf.losses import in_batch_softmax


def _numpy_in_batch_softmax(query, candidates, temperature, q=None, ids=None):
  batch = query.shape[0]
  logits = query @ candidates.T / temperature
  if q is not None:
    logits = logits - np.log(np.maximum(q, 1e-6))[None, :]
  if ids is not None:
    hit = (ids[:batch, None] == ids[None, :])
    hit[np.arange(batch), np.arange(batch)] = False
    logits = np.where(hit, -np.inf, logits)
  m = logits.max(1, keepdims=True)
  log_z = m[:, 0] + np.log(np.exp(logits - m).sum(1))
  return log_z - logits[np.arange(batch), np.arange(batch)]


def test_hand_worked():
  # scores = query @ candidates.T = [[4, 3], [7, 4]]
  # loss_0 = log(e^4 + e^3) - 4 = log(1 + e^-1) = 0.313262
  # loss_1 = log(e^7 + e^4) - 4 = 3 + log(1 + e^-3) = 3.048587
  query = tf.constant([[1.0, 2.0], [3.0, 1.0]])
  candidates = tf.constant([[2.0, 1.0], [1.0, 1.0]])
  np.testing.assert_allclose(in_batch_softmax(query, candidates).numpy(),
                             [0.313262, 3.048587], atol=1e-5)
  # With q = [0.5, 0.25]: logits - log q = [[4.693, 4.386], [7.693, 5.386]]
  # loss_0 = log(1 + e^(3 - 4) * 0.5 / 0.25) = log(1 + 2 e^-1) = 0.551444
  got = in_batch_softmax(query, candidates,
                         candidate_sampling_probability=tf.constant([0.5, 0.25]))
  np.testing.assert_allclose(got.numpy()[0], np.log(1 + 2 * np.exp(-1)), atol=1e-5)
  # Same id in both rows: each row's only negative is removed, loss 0.
  got = in_batch_softmax(query, candidates, candidate_ids=tf.constant([5, 5]))
  np.testing.assert_allclose(got.numpy(), [0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("extra_negatives", [0, 3])
def test_matches_numpy_reference(extra_negatives):
  rng = np.random.default_rng(0)
  batch, dim = 6, 4
  query = rng.normal(size=(batch, dim)).astype(np.float32)
  candidates = rng.normal(size=(batch + extra_negatives, dim)).astype(np.float32)
  q = rng.uniform(0.01, 0.5, size=batch + extra_negatives).astype(np.float32)
  ids = rng.integers(1, 4, size=batch + extra_negatives)
  got = in_batch_softmax(query, candidates, temperature=0.2,
                         candidate_sampling_probability=q, candidate_ids=ids)
  expected = _numpy_in_batch_softmax(query.astype(np.float64), candidates, 0.2, q, ids)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_matches_tfrs_retrieval_task():
  rng = np.random.default_rng(1)
  query = tf.constant(rng.normal(size=(8, 5)), tf.float32)
  candidates = tf.constant(rng.normal(size=(8, 5)), tf.float32)
  q = tf.constant(rng.uniform(0.001, 0.3, size=8), tf.float32)
  ids = tf.constant([1, 2, 3, 2, 5, 6, 1, 8])
  task = tfrs.tasks.Retrieval(
      loss=keras.losses.CategoricalCrossentropy(
          from_logits=True, reduction=keras.losses.Reduction.NONE),
      temperature=0.5, remove_accidental_hits=True)
  expected = task(query, candidates, candidate_sampling_probability=q,
                  candidate_ids=ids, compute_metrics=False,
                  compute_batch_metrics=False)
  got = in_batch_softmax(query, candidates, temperature=0.5,
                         candidate_sampling_probability=q, candidate_ids=ids)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
  # tfrs' default reduction (SUM) is the sum of ours.
  total = tfrs.tasks.Retrieval(temperature=0.5)(query, candidates,
                                                compute_metrics=False,
                                                compute_batch_metrics=False)
  np.testing.assert_allclose(
      float(tf.reduce_sum(in_batch_softmax(query, candidates, temperature=0.5))),
      float(total), rtol=1e-5)


def test_gradient_flows_to_both_towers_in_graph_mode():
  query = tf.Variable(tf.random.normal([4, 3], seed=1))
  candidates = tf.Variable(tf.random.normal([4, 3], seed=2))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(in_batch_softmax(query, candidates, temperature=0.1))
    return loss, tape.gradient(loss, [query, candidates])

  loss, grads = step()
  assert np.isfinite(float(loss))
  assert all(float(tf.norm(g)) > 0 for g in grads)
