"""L_p (PCL-AISL Eq. 12) against NumPy."""

import numpy as np
import tensorflow as tf

from dcg_tf.losses.prototypical_contrastive import prototypical_contrastive


def test_eq12_matches_numpy_with_per_cluster_temperatures():
  rng = np.random.default_rng(0)
  q = rng.normal(size=(3, 4))
  c = rng.normal(size=(5, 4))
  tau = np.array([0.1, 0.2, 0.5, 1.0, 0.3])
  clusters = np.array([0, 2, 4])
  negatives = np.array([[1, 3], [0, 4], [2, 2]])
  got = prototypical_contrastive(q, c, tau, clusters, negatives).numpy()
  qn = q / np.linalg.norm(q, axis=1, keepdims=True)
  cn = c / np.linalg.norm(c, axis=1, keepdims=True)
  for b in range(3):
    pos = np.exp(qn[b] @ cn[clusters[b]] / tau[clusters[b]])
    neg = sum(np.exp(qn[b] @ cn[j] / tau[j]) for j in negatives[b])
    np.testing.assert_allclose(got[b], -np.log(pos / (pos + neg)), rtol=1e-5)


def test_hand_worked_value_and_invalid_negatives():
  # q = c_0 = (1, 0), c_1 = (0, 1): s = 1 and 0; tau_0 = 0.5, tau_1 = 0.25.
  # L = -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) = 0.126928.
  q = tf.constant([[1.0, 0.0]])
  c = tf.constant([[1.0, 0.0], [0.0, 1.0]])
  tau = tf.constant([0.5, 0.25])
  got = prototypical_contrastive(q, c, tau, [0], [[1]]).numpy()
  np.testing.assert_allclose(got, [np.log1p(np.exp(-2.0))], rtol=1e-6)
  # A removed negative leaves the positive alone: loss 0.
  got = prototypical_contrastive(q, c, tau, [0], [[1]],
                                 negative_valid=[[False]]).numpy()
  np.testing.assert_allclose(got, [0.0], atol=1e-6)
