"""MicRec Eq. 3-5 (`dcg_tf.losses.item_contrastive`) against NumPy loops and a
hand-worked case, with the positive outside the denominator (as written) and
inside (InfoNCE)."""

import numpy as np
import pytest

from dcg_tf.losses.item_contrastive import feature_contrastive, pair_contrastive


def _numpy_eq3(a, b, tau, ids=None, inside=False):
  """Loop over rows: negatives = the other rows' b, minus copies of item i."""
  out = []
  for i in range(len(a)):
    pos = a[i] @ b[i] / tau
    neg = [a[i] @ b[j] / tau for j in range(len(a))
           if j != i and (ids is None or ids[j] != ids[i])]
    if inside:
      neg = neg + [pos]
    out.append(np.log(np.sum(np.exp(neg))) - pos if neg else 0.0)
  return np.array(out)


def _numpy_pairs(a, p, n, tau, pmask, nmask, inside=False):
  out = np.zeros(len(a))
  for i in range(len(a)):
    neg = [a[i] @ n[i, k] / tau for k in range(n.shape[1]) if nmask[i, k]]
    for k in range(p.shape[1]):
      if not pmask[i, k]:
        continue
      pos = a[i] @ p[i, k] / tau
      terms = neg + [pos] if inside else neg
      if terms:
        out[i] += np.log(np.sum(np.exp(terms))) - pos
  return out


def test_hand_worked_feature_level():
  # a = [[1, 0], [0, 1]], b = [[1, 0], [1, 1]], tau = 1:
  # scores a b^T = [[1, 1], [0, 1]].
  # As written: loss_0 = log e^{s01} - s00 = 1 - 1 = 0;
  #             loss_1 = log e^{s10} - s11 = 0 - 1 = -1.
  # InfoNCE:    loss_0 = log(e + e) - 1 = log 2 = 0.693147;
  #             loss_1 = log(e^0 + e^1) - 1 = log(1 + e) - 1 = 0.313262.
  a = np.array([[1., 0.], [0., 1.]], np.float32)
  b = np.array([[1., 0.], [1., 1.]], np.float32)
  np.testing.assert_allclose(feature_contrastive(a, b).numpy(), [0., -1.],
                             atol=1e-6)
  np.testing.assert_allclose(
      feature_contrastive(a, b, positive_in_denominator=True).numpy(),
      [0.693147, 0.313262], atol=1e-6)


@pytest.mark.parametrize("inside", [False, True])
def test_feature_level_against_numpy_with_repeated_items(inside):
  rng = np.random.default_rng(0)
  a = rng.normal(size=(6, 4)).astype(np.float32)
  b = rng.normal(size=(6, 4)).astype(np.float32)
  ids = np.array([3, 5, 3, 7, 9, 5])
  got = feature_contrastive(a, b, temperature=0.5, item_ids=ids,
                            positive_in_denominator=inside).numpy()
  np.testing.assert_allclose(got, _numpy_eq3(a, b, 0.5, ids, inside),
                             rtol=1e-5, atol=1e-5)


def test_feature_level_single_row_has_no_negatives_and_loses_nothing():
  a = np.ones((1, 3), np.float32)
  assert feature_contrastive(a, a).numpy().tolist() == [0.0]


@pytest.mark.parametrize("inside", [False, True])
def test_pair_level_against_numpy_with_masks(inside):
  rng = np.random.default_rng(1)
  a = rng.normal(size=(4, 3)).astype(np.float32)
  p = rng.normal(size=(4, 2, 3)).astype(np.float32)
  n = rng.normal(size=(4, 5, 3)).astype(np.float32)
  pmask = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], bool)
  nmask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [1, 1, 0, 0, 0],
                    [0, 0, 0, 0, 0]], bool)   # row 3: no live negative
  got = pair_contrastive(a, p, n, temperature=1.0, positive_mask=pmask,
                         negative_mask=nmask,
                         positive_in_denominator=inside).numpy()
  np.testing.assert_allclose(got, _numpy_pairs(a, p, n, 1.0, pmask, nmask, inside),
                             rtol=1e-5, atol=1e-5)


def test_pair_level_hand_worked():
  # anchor [1, 0], positive [2, 0] (score 2), negatives [1, 0], [0, 1]
  # (scores 1, 0), tau = 1: as written log(e + 1) - 2 = 1.313262 - 2
  # = -0.686738; InfoNCE log(e^2 + e + 1) - 2 = 2.407606 - 2 = 0.407606.
  a = np.array([[1., 0.]], np.float32)
  p = np.array([[[2., 0.]]], np.float32)
  n = np.array([[[1., 0.], [0., 1.]]], np.float32)
  np.testing.assert_allclose(pair_contrastive(a, p, n).numpy(), [-0.686738],
                             atol=1e-6)
  np.testing.assert_allclose(
      pair_contrastive(a, p, n, positive_in_denominator=True).numpy(),
      [0.407606], atol=1e-6)


def test_as_written_has_no_lower_bound_infonce_stays_non_negative():
  # The runaway of docs/results/micrec.md ("Eq. 3-5 as written: no lower
  # bound"): anchor = positive = s e1, two negatives s e2, tau = 1, so the
  # positive's score is s^2 and the negatives' 0. As written the loss is
  # log(1 + 1) - s^2 = 0.693147 - s^2: 1 -> -0.306853, 3 -> -8.306853,
  # 10 -> -99.306853, falling without end as the vectors grow. InfoNCE is
  # log(e^{s^2} + 2) - s^2 = log(1 + 2 e^{-s^2}): log(1.735759) = 0.551445,
  # 2 e^-9 = 0.000247, 2 e^-100 (0 in float32), never below 0.
  for s, written, infonce in ((1., -0.306853, 0.551445),
                              (3., -8.306853, 0.000247),
                              (10., -99.306853, 0.0)):
    a = np.array([[s, 0.]], np.float32)
    p = np.array([[[s, 0.]]], np.float32)
    n = np.array([[[0., s], [0., s]]], np.float32)
    np.testing.assert_allclose(pair_contrastive(a, p, n).numpy(), [written],
                               rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(
        pair_contrastive(a, p, n, positive_in_denominator=True).numpy(),
        [infonce], atol=1e-6)
    # Eq. 3 on the batch {item 1 = s e1, item 2 = s e2} with f~ = f: each
    # row's negative is the other item (score 0): log(1) - s^2 = -s^2.
    f = np.array([[s, 0.], [0., s]], np.float32)
    np.testing.assert_allclose(feature_contrastive(f, f).numpy(),
                               [-s * s, -s * s], rtol=1e-6)
