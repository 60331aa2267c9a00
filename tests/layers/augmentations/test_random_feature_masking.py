"""RandomFeatureMasking: complementary split (RFM) and two independent masks
(RFM_no_compl), CFM's count, reproducible from (seed, step)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.augmentations.random_feature_masking import RandomFeatureMasking


def _masks(layer, run_seed, steps):
  pairs = [layer(tf.constant([run_seed, s], tf.int64)) for s in range(steps)]
  return np.array([[a.numpy(), b.numpy()] for a, b in pairs])   # [S, 2, k]


def test_complementary_split_masks_the_cfm_count_of_random_fields():
  masks = _masks(RandomFeatureMasking(8), 0, 60)
  # floor(8/2) + 1 = 5 masked in view a, the other 3 in view b.
  assert (masks[:, 0].sum(1) == 5).all() and (masks[:, 1].sum(1) == 3).all()
  np.testing.assert_array_equal(masks[:, 1], ~masks[:, 0])
  # Random: several different splits, and every field masked in view a
  # sometimes (each field is in view a w.p. 5/8 per step).
  assert len({tuple(m) for m in masks[:, 0]}) > 10
  assert masks[:, 0].any(axis=0).all()


def test_independent_masks_overlap_sometimes():
  masks = _masks(RandomFeatureMasking(8, complementary=False), 0, 60)
  assert (masks[:, 0].sum(1) == 5).all() and (masks[:, 1].sum(1) == 5).all()
  # Two 5-of-8 subsets always share at least 2 fields: never complementary.
  assert ((masks[:, 0] & masks[:, 1]).sum(1) >= 2).all()
  # ... and they are drawn independently: not always the same subset.
  assert (masks[:, 0] != masks[:, 1]).any(axis=1).mean() > 0.5


def test_reproducible_from_seed_and_step():
  layer = RandomFeatureMasking(6, complementary=False)
  np.testing.assert_array_equal(_masks(layer, 4, 10), _masks(layer, 4, 10))
  assert not np.array_equal(_masks(layer, 4, 10), _masks(layer, 5, 10))


def test_validation_and_config_round_trip():
  with pytest.raises(ValueError, match="at least 2 fields"):
    RandomFeatureMasking(1)
  with pytest.raises(ValueError, match="num_masked"):
    RandomFeatureMasking(3, num_masked=0)
  layer = RandomFeatureMasking(5, num_masked=2, complementary=False, name="rfm")
  clone = RandomFeatureMasking.from_config(json.loads(json.dumps(layer.get_config())))
  assert (clone.num_fields, clone.num_masked, clone.complementary) == (5, 2, False)
  np.testing.assert_array_equal(_masks(clone, 1, 3), _masks(layer, 1, 3))
