"""CorrelatedFeatureMasking: the paper's masked set, complementary views, the
count floor(k/2) + 1, a seed field that changes with the step and is
reproducible from (seed, step)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.augmentations.correlated_feature_masking import (
    CorrelatedFeatureMasking, masked_field_count)

# k = 8 fields in two planted groups: A = {0..4} (MI 2.0 inside), B = {5, 6, 7}
# (MI 1.0 inside), 0.01 across.
_GROUP_A, _GROUP_B = [0, 1, 2, 3, 4], [5, 6, 7]


def _block_mi():
  mi = np.full((8, 8), 0.01)
  mi[np.ix_(_GROUP_A, _GROUP_A)] = 2.0
  mi[np.ix_(_GROUP_B, _GROUP_B)] = 1.0
  return mi


def _reference_masked_set(mi, seed_field, n):
  """Section 3.2 in NumPy: the seed plus its n highest-MI fields (ties: lower index)."""
  others = [j for j in range(mi.shape[0]) if j != seed_field]
  partners = sorted(others, key=lambda j: (-mi[seed_field, j], j))[:n]
  return {seed_field, *partners}


def test_the_seed_and_its_top_partners_are_masked_and_the_views_are_complementary():
  mi = _block_mi()
  cfm = CorrelatedFeatureMasking(mi)
  # Paper: n = floor(k/2) = 4 partners, so |F_m| = floor(8/2) + 1 = 5.
  assert cfm.num_masked == 5
  seen = set()
  for step in range(40):
    seed = tf.constant([3, step], tf.int64)
    mask_a, mask_b = (m.numpy() for m in cfm(seed))
    seed_field = int(cfm.seed_field(seed))
    seen.add(seed_field)
    assert set(np.flatnonzero(mask_a)) == _reference_masked_set(mi, seed_field, 4)
    assert mask_a.sum() == 5 and mask_b.sum() == 3
    np.testing.assert_array_equal(mask_b, ~mask_a)
  # A seed in group A masks exactly A; one in B masks B plus fields 0, 1
  # (the lowest-index ties at MI 0.01).
  assert _reference_masked_set(mi, 2, 4) == set(_GROUP_A)
  assert _reference_masked_set(mi, 6, 4) == {5, 6, 7, 0, 1}
  # The seed field changes between steps: 40 steps over 8 fields saw them all
  # (each is missed with probability (7/8)^40 = 0.5%; the draws are fixed).
  assert seen == set(range(8))


def test_reproducible_from_seed_and_step_also_when_traced():
  cfm = CorrelatedFeatureMasking(_block_mi())
  first = [cfm(tf.constant([7, s], tf.int64))[0].numpy() for s in range(6)]
  again = [cfm(tf.constant([7, s], tf.int64))[0].numpy() for s in range(6)]
  np.testing.assert_array_equal(first, again)           # e.g. after a resume
  other_run = [cfm(tf.constant([8, s], tf.int64))[0].numpy() for s in range(6)]
  assert not np.array_equal(first, other_run)
  step = tf.Variable(0, dtype=tf.int64)
  traced = tf.function(lambda: cfm(tf.stack([tf.constant(7, tf.int64), step]))[0])
  for s in range(6):
    step.assign(s)
    np.testing.assert_array_equal(traced().numpy(), first[s])


@pytest.mark.parametrize("k, expected", [(2, 1), (3, 2), (4, 3), (7, 4), (8, 5),
                                         (9, 5), (10, 6)])
def test_count_is_floor_half_plus_one_capped_at_k_minus_one(k, expected):
  # floor(k/2) + 1; k = 2 would mask both fields in one view: capped at 1.
  assert masked_field_count(k) == expected
  mask_a, mask_b = CorrelatedFeatureMasking(np.zeros((k, k)))(tf.constant([0, 1]))
  assert int(tf.reduce_sum(tf.cast(mask_a, tf.int32))) == expected
  assert int(tf.reduce_sum(tf.cast(mask_b, tf.int32))) == k - expected


def test_validation_and_config_round_trip():
  with pytest.raises(ValueError, match="at least 2 fields"):
    CorrelatedFeatureMasking(np.zeros((1, 1)))
  with pytest.raises(ValueError, match="square"):
    CorrelatedFeatureMasking(np.zeros((2, 3)))
  with pytest.raises(ValueError, match="num_masked"):
    CorrelatedFeatureMasking(np.zeros((4, 4)), num_masked=4)
  cfm = CorrelatedFeatureMasking(_block_mi(), name="cfm")
  config = json.loads(json.dumps(cfm.get_config()))
  clone = CorrelatedFeatureMasking.from_config(config)
  assert clone.num_masked == 5 and not clone.weights
  seed = tf.constant([1, 2])
  np.testing.assert_array_equal(clone(seed)[0].numpy(), cfm(seed)[0].numpy())
