"""IPW loss (CLRec Eq. 4) and its popularity propensity model vs NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.losses.ipw import fit_popularity_propensity, ipw, ipw_weights


def test_propensity_is_smoothed_mle_of_counts():
  # Counts of items 1..3 = 3, 1, 0; alpha = 1: (4, 2, 1) / 7.
  q = fit_popularity_propensity(np.array([0, 3, 1, 0]), smoothing=1.0)
  np.testing.assert_allclose(q, [0.0, 4 / 7, 2 / 7, 1 / 7])
  # alpha = 0 is the plain MLE count / total.
  q0 = fit_popularity_propensity(np.array([5, 3, 1, 0]), smoothing=0.0)
  np.testing.assert_allclose(q0, [0.0, 0.75, 0.25, 0.0])


def test_propensity_rejects_bad_counts():
  with pytest.raises(ValueError, match="negative count at item 2"):
    fit_popularity_propensity(np.array([0, 1, -1]))
  with pytest.raises(ValueError, match="all counts are zero"):
    fit_popularity_propensity(np.array([0, 0, 0]), smoothing=0.0)


def test_weights_clip_and_self_normalize_like_numpy():
  q = np.array([0.5, 0.25, 1e-9, 0.1], np.float32)
  # 1 / max(q, 1e-3) = 2, 4, 1000, 10; mean 254; weights / mean.
  raw = np.array([2.0, 4.0, 1000.0, 10.0])
  np.testing.assert_allclose(ipw_weights(q, 1e-3).numpy(), raw / raw.mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(ipw_weights(q, 1e-3, self_normalize=False).numpy(),
                             raw, rtol=1e-5)


def test_ipw_loss_weights_the_nll_and_gives_gradient_only_through_nll():
  nll = tf.Variable([1.0, 2.0, 3.0])
  q = tf.constant([0.5, 0.25, 0.25])
  with tf.GradientTape() as tape:
    loss = ipw(nll, q, self_normalize=True)
    total = tf.reduce_sum(loss)
  # Weights 2, 4, 4 / mean 10/3 = 0.6, 1.2, 1.2; loss = 0.6, 2.4, 3.6.
  np.testing.assert_allclose(loss.numpy(), [0.6, 2.4, 3.6], rtol=1e-5)
  np.testing.assert_allclose(tape.gradient(total, nll).numpy(), [0.6, 1.2, 1.2],
                             rtol=1e-5)
