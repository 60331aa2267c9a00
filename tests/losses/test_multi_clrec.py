"""Multi-CLRec losses (CLRec Eq. 10-13) against NumPy and hand-worked values."""

import numpy as np
import tensorflow as tf

from dcg_tf.losses import multi_clrec as losses


def _cos(a, b):
  return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def _numpy_eq13(z, pos, sel, main, main_valid, sec, sec_valid, rho, pos_ids,
                main_ids, sec_ids):
  out = []
  for b in range(z.shape[0]):
    heads = range(z.shape[1])
    numerator = sum(sel[b, h] * np.exp(_cos(z[b, h], pos[b]) / rho)
                    for h in heads)
    # The positive itself sits in Q_0 once (enqueued before the loss).
    denominator = sum(np.exp(_cos(z[b, h], pos[b]) / rho) for h in heads)
    for h in heads:
      for y, ok, i in zip(main, main_valid, main_ids):
        if ok and i != pos_ids[b]:
          denominator += np.exp(_cos(z[b, h], y) / rho)
      for y, ok, i in zip(sec[b], sec_valid[b], sec_ids[b]):
        if ok and i != pos_ids[b]:
          denominator += np.exp(_cos(z[b, h], y) / rho)
    out.append(-np.log(numerator / denominator))
  return np.array(out)


def test_eq13_hand_worked():
  # H = 2, rho = 1, z_1 = (1, 0), z_2 = (0, 1), g(y_T) = (1, 0), tilde w = (1, 0).
  # Q_0 = [(-1, 0) id 7, (1, 0) id 5 = the positive's id: accidental hit];
  # Q_{h+} = [(0, 1) id 8, (0, -1) invalid].
  # numerator   = e^{cos(z_1, y_T)} = e
  # denominator = positive (e^1 + e^0) + (-1, 0): (e^-1 + e^0) + (0, 1): (e^0 + e^1)
  #             = 2e + 3 + 1/e = 8.804443
  # loss = log(8.804443) - 1 = 1.175256
  loss = losses.multi_queue_contrastive(
      intentions=tf.constant([[[1.0, 0.0], [0.0, 1.0]]]),
      positive=tf.constant([[1.0, 0.0]]), selection=tf.constant([[1.0, 0.0]]),
      main_negatives=tf.constant([[-1.0, 0.0], [1.0, 0.0]]),
      main_valid=tf.constant([True, True]),
      secondary_negatives=tf.constant([[[0.0, 1.0], [0.0, -1.0]]]),
      secondary_valid=tf.constant([[True, False]]), temperature=1.0,
      positive_ids=tf.constant([5]), main_ids=tf.constant([7, 5]),
      secondary_ids=tf.constant([[8, 0]]))
  np.testing.assert_allclose(loss.numpy(), [1.175256], atol=1e-5)


def test_eq13_matches_numpy():
  rng = np.random.default_rng(0)
  b, h, d, q0, qs = 3, 4, 5, 6, 3
  z = rng.normal(size=(b, h, d))
  pos = rng.normal(size=(b, d))
  sel = np.eye(h)[rng.integers(0, h, b)]
  main = rng.normal(size=(q0, d))
  sec = rng.normal(size=(b, qs, d))
  pos_ids = np.array([1, 2, 3])
  main_ids = np.array([1, 9, 2, 9, 4, 0])
  main_valid = np.array([1, 1, 1, 1, 1, 0], bool)
  sec_ids = np.array([[5, 1, 6], [3, 2, 2], [7, 8, 0]])
  sec_valid = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], bool)
  got = losses.multi_queue_contrastive(
      tf.constant(z, tf.float32), tf.constant(pos, tf.float32),
      tf.constant(sel, tf.float32), tf.constant(main, tf.float32),
      tf.constant(main_valid), tf.constant(sec, tf.float32),
      tf.constant(sec_valid), 0.07, tf.constant(pos_ids),
      tf.constant(main_ids), tf.constant(sec_ids))
  expected = _numpy_eq13(z, pos, sel, main, main_valid, sec, sec_valid, 0.07,
                         pos_ids, main_ids, sec_ids)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)


def test_eq13_selection_gradient_is_straight_through():
  # d L / d tilde w_h = -exp(s_h) / sum_h' tilde w_h' exp(s_h'); with tilde w
  # one-hot at h* this is -exp(s_h - s_h*).
  rng = np.random.default_rng(1)
  z = rng.normal(size=(1, 3, 4))
  pos = rng.normal(size=(1, 4))
  selection = tf.Variable([[0.0, 1.0, 0.0]])
  with tf.GradientTape() as tape:
    loss = losses.multi_queue_contrastive(
        tf.constant(z, tf.float32), tf.constant(pos, tf.float32), selection,
        tf.constant(rng.normal(size=(2, 4)), tf.float32), tf.constant([True, True]),
        tf.constant(rng.normal(size=(1, 2, 4)), tf.float32),
        tf.constant([[True, True]]), temperature=0.5)
  s = np.array([_cos(z[0, h], pos[0]) / 0.5 for h in range(3)])
  np.testing.assert_allclose(tape.gradient(loss, selection).numpy()[0],
                             -np.exp(s - s[1]), rtol=1e-4)


def test_eq10_polarization():
  logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  got = losses.intention_polarization_loss(tf.constant(logits, tf.float32))
  np.testing.assert_allclose(got.numpy(), -np.log(p.max(-1)), rtol=1e-5)
  # Hand-worked: [ln 3, 0] -> p = [3/4, 1/4] -> -log(3/4) = 0.287682.
  got = losses.intention_polarization_loss(tf.constant([[np.log(3.0), 0.0]]))
  np.testing.assert_allclose(got.numpy(), [0.287682], atol=1e-6)


def test_eq11_target_intention():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(2, 3, 4))
  pos = rng.normal(size=(2, 4))
  h_plus = np.array([2, 0])
  got = losses.intention_target_loss(tf.constant(z, tf.float32),
                                     tf.constant(pos, tf.float32),
                                     tf.constant(h_plus), temperature=0.07)
  expected = []
  for b in range(2):
    s = np.array([_cos(z[b, h], pos[b]) / 0.07 for h in range(3)])
    expected.append(-(s[h_plus[b]] - np.log(np.exp(s).sum())))
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_eq12_balance():
  # Hand-worked: H = 2, items routed [1, 0], [1, 0], [0.5, 0.5], [0.5, 0.5]
  # (+ one masked item) -> pi = [0.75, 0.25];
  # L = 0.5 (log .5 - log .75) + 0.5 (log .5 - log .25) = 0.143841.
  routing = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5],
                         [0.0, 1.0]])
  mask = tf.constant([True, True, True, True, False])
  np.testing.assert_allclose(
      losses.intention_balance_loss(routing, mask).numpy(), 0.143841, atol=1e-6)
  # NumPy on a [B, L, H] batch; uniform routing gives exactly zero.
  rng = np.random.default_rng(3)
  p = rng.dirichlet(np.ones(4), size=(2, 3))
  pi = p.reshape(-1, 4).mean(0)
  np.testing.assert_allclose(
      losses.intention_balance_loss(tf.constant(p, tf.float32)).numpy(),
      np.sum(0.25 * (np.log(0.25) - np.log(pi))), rtol=1e-5)
  assert abs(float(losses.intention_balance_loss(tf.fill([5, 4], 0.25)))) < 1e-6
