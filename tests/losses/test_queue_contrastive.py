"""queue_contrastive: CLRec Eq. 3 with cosine similarity, masking, hand values."""

import numpy as np
import tensorflow as tf

from dcg_tf.losses.in_batch_softmax import in_batch_softmax
from dcg_tf.losses.queue_contrastive import queue_contrastive


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference(query, positive, negatives, valid, pos_ids, neg_ids, temperature):
  """Eq. 3 row by row in NumPy: -log e^s+ / (e^s+ + sum_{kept i} e^s_i)."""
  q, p, n = _normalize(query), _normalize(positive), _normalize(negatives)
  losses = []
  for b in range(q.shape[0]):
    pos = q[b] @ p[b] / temperature
    kept = [q[b] @ n[i] / temperature for i in range(n.shape[0])
            if valid[i] and neg_ids[i] != pos_ids[b]]
    losses.append(-pos + np.log(np.exp(pos) + np.sum(np.exp(kept))))
  return np.array(losses)


def test_matches_numpy_reference_with_invalid_slots_and_accidental_hits():
  rng = np.random.default_rng(0)
  query, positive = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  negatives = rng.normal(size=(6, 3))
  valid = np.array([True, True, False, True, True, False])
  pos_ids = np.array([1, 2, 3, 4])
  neg_ids = np.array([2, 1, 3, 9, 3, 4])   # row 0 hits slot 1, row 2 slot 4
  got = queue_contrastive(tf.constant(query, tf.float32),
                          tf.constant(positive, tf.float32),
                          tf.constant(negatives, tf.float32), tf.constant(valid),
                          tf.constant(pos_ids), tf.constant(neg_ids), 0.07)
  want = _reference(query, positive, negatives, valid, pos_ids, neg_ids, 0.07)
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)


def test_hand_worked_value():
  # query = positive = (1, 0): cos 1. Negatives (0, 1): cos 0; (-1, 0): cos -1;
  # (2, 0) has the positive's id 7 -> an accidental hit, removed.
  # T = 1:   loss = log(e^1 + e^0 + e^-1) - 1 = log(4.0861613) - 1 = 0.4076059
  # T = 0.5: loss = log(e^2 + e^0 + e^-2) - 2 = log(8.5243914) - 2 = 0.1429316
  query = tf.constant([[1.0, 0.0]])
  negatives = tf.constant([[0.0, 1.0], [-1.0, 0.0], [2.0, 0.0]])
  ids = tf.constant([3, 4, 7])
  for temperature, expected in ((1.0, 0.4076059), (0.5, 0.1429316)):
    loss = queue_contrastive(query, query, negatives, None, tf.constant([7]), ids,
                             temperature)
    np.testing.assert_allclose(loss.numpy(), [expected], rtol=1e-5)
  # Without accidental-hit removal the copy (cos 1) counts as a negative:
  # log(e + 1 + e^-1 + e) - 1 = log(6.8044431) - 1 = 0.9175758.
  loss = queue_contrastive(query, query, negatives, temperature=1.0)
  np.testing.assert_allclose(loss.numpy(), [0.9175758], rtol=1e-5)


def test_queue_of_the_present_batch_equals_in_batch_softmax():
  # Enqueue-before-loss with an empty queue: the queue holds exactly the batch's
  # positives, the row's own copy is an accidental hit, so Eq. 3 is the
  # in-batch softmax (an independent implementation) on normalised vectors.
  rng = np.random.default_rng(1)
  query = _normalize(rng.normal(size=(5, 4))).astype(np.float32)
  positive = _normalize(rng.normal(size=(5, 4))).astype(np.float32)
  ids = np.array([3, 8, 3, 1, 2])   # a duplicate id: rows 0 and 2
  got = queue_contrastive(query, positive, positive, None, ids, ids, 0.07)
  want = in_batch_softmax(query, positive, temperature=0.07, candidate_ids=ids)
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_cosine_scale_invariance_and_logits():
  rng = np.random.default_rng(2)
  query, positive = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
  negatives = rng.normal(size=(5, 4))
  base, logits, labels = queue_contrastive(query, positive, negatives,
                                           return_logits=True)
  scaled = queue_contrastive(7.0 * query, 0.1 * positive, 3.0 * negatives)
  np.testing.assert_allclose(base.numpy(), scaled.numpy(), rtol=1e-5)
  np.testing.assert_array_equal(labels.numpy(), [0, 0, 0])
  want = _normalize(query) @ _normalize(negatives).T / 0.07
  np.testing.assert_allclose(logits.numpy()[:, 1:], want, rtol=1e-4, atol=1e-4)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
  np.testing.assert_allclose(ce.numpy(), base.numpy(), rtol=1e-5)
