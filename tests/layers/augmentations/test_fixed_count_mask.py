"""FixedCountMask (PCL-AISL section 2.3.1): exactly n ones per row, seeded."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.augmentations.fixed_count_mask import FixedCountMask


def test_each_row_keeps_exactly_n_elements_unscaled():
  x = tf.constant(np.arange(1, 1 + 50 * 8, dtype=np.float32).reshape(50, 8))
  layer = FixedCountMask(3)
  out = layer(x, seed=tf.constant([1, 2], tf.int64)).numpy()
  kept = out != 0
  np.testing.assert_array_equal(kept.sum(1), 3)
  np.testing.assert_array_equal(out[kept], x.numpy()[kept])   # e' = m e
  # Positions differ between rows and cover every column.
  assert len({tuple(r) for r in kept}) > 10 and kept.any(0).all()
  again = layer(x, seed=tf.constant([1, 2], tf.int64)).numpy()
  np.testing.assert_array_equal(out, again)
  other = layer(x, seed=tf.constant([1, 3], tf.int64)).numpy()
  assert (other != out).any()


def test_every_position_is_equally_likely():
  # 4000 rows, 2 ones of 5: each column is kept with probability 2/5.
  m = FixedCountMask(2).mask([4000, 5], tf.constant([0, 0], tf.int64)).numpy()
  np.testing.assert_allclose(m.mean(0), 0.4, atol=0.03)


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_ones"):
    FixedCountMask(0)
  with pytest.raises(ValueError, match="exceeds the width 4"):
    FixedCountMask(5)(tf.ones([2, 4]), seed=tf.constant([0, 0], tf.int64))
  assert FixedCountMask.from_config(FixedCountMask(7).get_config()).num_ones == 7
