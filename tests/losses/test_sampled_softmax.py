"""sampled_softmax (CLRec Eq. 2): hand-worked value, NumPy reference, parity with
tf.nn.sampled_softmax_loss (the implementation CLRec's appendix B.3 uses)."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.losses import sampled_softmax


def _numpy_sampled_softmax(query, positive, negatives, pos_log_q, neg_log_q,
                           temperature, pos_ids=None, neg_ids=None):
  pos = (query * positive).sum(1) / temperature - pos_log_q
  neg = query @ negatives.T / temperature - neg_log_q[None, :]
  if pos_ids is not None:
    neg = np.where(pos_ids[:, None] == neg_ids[None, :], -np.inf, neg)
  logits = np.concatenate([pos[:, None], neg], 1)
  m = logits.max(1)
  return m + np.log(np.exp(logits - m[:, None]).sum(1)) - pos


def test_hand_worked():
  # q = [1, 0], positive [2, 0] with p_n = 0.5, negatives [1, 0], [0, 1] with 0.25:
  # o+ = 2 - log 0.5 = 2.6931; o1 = 1 - log 0.25 = 2.3863; o2 = 0 + 1.3863
  # loss = log(1 + e^(o1 - o+) + e^(o2 - o+)) = log(1 + 0.73576 + 0.27067) = 0.69635
  loss = sampled_softmax(tf.constant([[1.0, 0.0]]), tf.constant([[2.0, 0.0]]),
                         tf.constant([[1.0, 0.0], [0.0, 1.0]]),
                         tf.math.log([0.5]), tf.math.log([0.25, 0.25]))
  np.testing.assert_allclose(loss.numpy(), [0.69635], atol=1e-5)
  # Without the correction (CLRec Eq. 3): log(1 + e^-1 + e^-2) = 0.40761.
  loss = sampled_softmax(tf.constant([[1.0, 0.0]]), tf.constant([[2.0, 0.0]]),
                         tf.constant([[1.0, 0.0], [0.0, 1.0]]))
  np.testing.assert_allclose(loss.numpy(), [np.log(1 + np.exp(-1) + np.exp(-2))],
                             atol=1e-6)


def test_matches_numpy_reference_with_accidental_hits():
  rng = np.random.default_rng(0)
  b, s, d = 5, 7, 3
  query, positive = rng.normal(size=(2, b, d))
  negatives = rng.normal(size=(s, d))
  pos_log_q, neg_log_q = np.log(rng.uniform(0.01, 0.2, b)), np.log(rng.uniform(0.01, 0.2, s))
  pos_ids, neg_ids = rng.integers(1, 6, b), rng.integers(1, 6, s)
  got = sampled_softmax(query, positive, negatives, pos_log_q, neg_log_q,
                        temperature=0.3, positive_ids=pos_ids, negative_ids=neg_ids)
  expected = _numpy_sampled_softmax(query, positive, negatives, pos_log_q, neg_log_q,
                                    0.3, pos_ids, neg_ids)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_matches_tf_nn_sampled_softmax_loss():
  rng = np.random.default_rng(2)
  vocab, b, s, d = 12, 6, 8, 4
  table = tf.constant(rng.normal(size=(vocab, d)), tf.float32)
  query = tf.constant(rng.normal(size=(b, d)), tf.float32)
  labels = tf.constant(rng.integers(1, vocab, b), tf.int64)
  # Distinct negatives: TF's accidental-hit kernel maps each id to one sampled
  # position (its samplers draw unique=True), so with repeated negatives it would
  # remove only one copy of a hit, where we remove every copy.
  neg_ids = tf.constant(rng.choice(np.arange(1, vocab), s, replace=False), tf.int64)
  hits = np.isin(labels.numpy(), neg_ids.numpy())
  assert hits.any() and not hits.all()  # the case is exercised both ways
  p = rng.uniform(0.02, 0.2, vocab).astype(np.float32)
  pos_q, neg_q = tf.gather(p, labels), tf.gather(p, neg_ids)
  expected = tf.nn.sampled_softmax_loss(
      weights=table, biases=tf.zeros([vocab]), labels=labels[:, None],
      inputs=query, num_sampled=s, num_classes=vocab,
      sampled_values=(neg_ids, pos_q[:, None], neg_q), remove_accidental_hits=True)
  got = sampled_softmax(query, tf.gather(table, labels), tf.gather(table, neg_ids),
                        tf.math.log(pos_q), tf.math.log(neg_q),
                        positive_ids=labels, negative_ids=neg_ids)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_half_given_arguments_are_rejected():
  x = tf.ones([1, 2])
  with pytest.raises(ValueError, match="positive_log_q and negative_log_q"):
    sampled_softmax(x, x, x, positive_log_q=tf.zeros([1]))
  with pytest.raises(ValueError, match="positive_ids and negative_ids"):
    sampled_softmax(x, x, x, positive_ids=tf.constant([1]))
