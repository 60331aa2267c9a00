"""Eq. 3 (SSL contrastive loss) and spread-out against NumPy and a hand-worked case."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.losses.ssl_contrastive import spread_out, ssl_contrastive


def _numpy_eq3(z, z_prime, tau, ids=None):
  """Eq. 3 per item: -log softmax_j(cos(z_i, z'_j) / tau)[i]; copies of item i
  among the other rows are dropped from row i when ids are given."""
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  z_prime = z_prime / np.linalg.norm(z_prime, axis=1, keepdims=True)
  s = z @ z_prime.T / tau
  out = []
  for i in range(len(z)):
    keep = np.ones(len(z), bool)
    if ids is not None:
      keep = (ids != ids[i]) | (np.arange(len(z)) == i)
    row = s[i][keep]
    out.append(np.log(np.exp(row - row.max()).sum()) + row.max() - s[i, i])
  return np.array(out)


def test_hand_worked_two_items():
  # z = [[1, 0], [0, 1]], z' = [[1, 0], [1, 1]] (cos: [[1, 1/sqrt2], [0, 1/sqrt2]]),
  # tau = 1: loss_0 = -log(e / (e + e^0.70711)) = log(1 + e^-0.29289)
  #                 = log(1.74612) = 0.55739,
  # loss_1 = -log(e^0.70711 / (e^0 + e^0.70711)) = log(1 + e^-0.70711)
  #        = log(1.49307) = 0.40083.
  loss = ssl_contrastive([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]], 1.0)
  np.testing.assert_allclose(loss.numpy(), [0.55739, 0.40083], atol=1e-5)


def test_matches_numpy_with_and_without_accidental_hits():
  rng = np.random.default_rng(0)
  z, z_prime = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
  got = ssl_contrastive(z, z_prime, 0.1).numpy()
  np.testing.assert_allclose(got, _numpy_eq3(z, z_prime, 0.1), rtol=1e-4)
  ids = np.array([3, 7, 3, 1, 2, 7])
  got = ssl_contrastive(z, z_prime, 0.1, item_ids=tf.constant(ids)).numpy()
  np.testing.assert_allclose(got, _numpy_eq3(z, z_prime, 0.1, ids), rtol=1e-4)
  # The scale of the views does not matter: s is a cosine.
  np.testing.assert_allclose(ssl_contrastive(3 * z, 0.5 * z_prime, 0.1).numpy(),
                             _numpy_eq3(z, z_prime, 0.1), rtol=1e-4)


def test_spread_out_is_the_papers_reduced_form():
  # Section 3.1: with identity augmentations and H = G, Eq. 3 becomes
  # -1/N sum_i log(exp(1/tau) / (exp(1/tau) + sum_{j != i} exp(s(z_i, z_j)/tau))).
  rng = np.random.default_rng(1)
  z = rng.normal(size=(5, 4))
  tau = 0.2
  unit = z / np.linalg.norm(z, axis=1, keepdims=True)
  s = unit @ unit.T
  expected = []
  for i in range(5):
    others = np.exp(np.delete(s[i], i) / tau).sum()
    expected.append(-np.log(np.exp(1 / tau) / (np.exp(1 / tau) + others)))
  got = spread_out(z, tau).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  assert float(tf.reduce_mean(got)) == pytest.approx(np.mean(expected), rel=1e-4)
