"""Inverse propensity weighted loss (CLRec Eq. 4) and its propensity model.

CLRec (Zhou et al., KDD'21), section 2.2 Eq. 4:
  loss = -(1 / q(y | x)) log p_theta(y | x),
with q the propensity (exposure) model fitted in a separate first stage. The
paper's IPW baseline (Tables 8, 9) uses the non-personalised q(y) that CLRec
also assumes (section 3.1: q(y | x) ~ q(y) ~ p_data(y)).

Propensity model (first stage): `fit_popularity_propensity` is the maximum
likelihood estimate of a categorical q(y) from the training click counts,
q(y) = count(y) / sum_y' count(y'), with additive (Laplace) smoothing `alpha`
so that unseen items keep a finite weight. Fitting uses training counts only
(`ProcessedDataset.item_count`), never evaluation data.

Weights: 1 / max(q, min_propensity) (clipping the small propensities that make
IPW unstable, section 2.2; the floor of `dcg_tf.losses.corrections`, shared
with the log-Q correction), then self-normalised to mean 1 over the batch so
that the loss scale does not depend on the catalog size.
"""

import numpy as np
import tensorflow as tf

from dcg_tf.losses import corrections


def fit_popularity_propensity(item_count, smoothing=1.0):
  """MLE of q(y) from training counts; float64 [N+1] with row 0 (padding) = 0.

  Args:
    item_count: int [N+1] training interactions per item, row 0 = padding.
    smoothing: additive smoothing alpha >= 0 per real item.
  """
  counts = np.asarray(item_count, dtype=np.float64)
  if counts.ndim != 1 or counts.shape[0] < 2:
    raise ValueError("fit_popularity_propensity: item_count must be [N+1] with "
                     "N >= 1, got shape %s" % (counts.shape,))
  if (counts < 0).any():
    raise ValueError("fit_popularity_propensity: negative count at item %d"
                     % int(np.argmax(counts < 0)))
  if smoothing < 0:
    raise ValueError("fit_popularity_propensity: smoothing must be >= 0")
  mass = counts[1:] + smoothing
  if mass.sum() <= 0:
    raise ValueError("fit_popularity_propensity: all counts are zero and "
                     "smoothing is 0")
  return np.concatenate([[0.0], mass / mass.sum()])


def ipw_weights(propensity, min_propensity=1e-6, self_normalize=True):
  """Weights 1 / max(q, min_propensity) [B], normalised to batch mean 1."""
  weights = 1.0 / corrections.floor_probability(propensity,
                                                min_propensity)       # [B]
  if self_normalize:
    weights = weights / tf.reduce_mean(weights)
  return tf.stop_gradient(weights)


def ipw(negative_log_likelihood, propensity, min_propensity=1e-6,
        self_normalize=True):
  """Per-example IPW loss of Eq. 4: w(y) * (-log p_theta(y | x)) [B].

  Args:
    negative_log_likelihood: [B] -log p_theta(y | x), e.g. from the full
      softmax or from the log-Q corrected sampled softmax (Eq. 2) that
      approximates it.
    propensity: [B] q(y | x) of each row's positive (e.g. gathered from
      `fit_popularity_propensity`).
    min_propensity: clip q from below.
    self_normalize: normalise weights to mean 1 over the batch.
  """
  weights = ipw_weights(propensity, min_propensity, self_normalize)   # [B]
  return weights * negative_log_likelihood                            # [B]
