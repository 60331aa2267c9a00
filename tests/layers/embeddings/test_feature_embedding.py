"""FeatureEmbedding: NumPy reference of masked pooling, OOV, sparse gradients."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.embeddings.feature_embedding import FeatureEmbedding
from tests.layer_test_util import run_layer_test


def _reference(table, values, combiner):
  """Masked pooling in NumPy: values 0 or >= vocab are left out."""
  valid = (values > 0) & (values < table.shape[0])
  vectors = table[np.where(valid, values, 0)] * valid[..., None]
  total = vectors.sum(axis=-2)
  if combiner == "sum":
    return total
  return total / np.maximum(valid.sum(axis=-1), 1)[..., None]


@pytest.mark.parametrize("combiner", ["mean", "sum"])
def test_multi_valued_matches_numpy(combiner):
  emb = FeatureEmbedding(vocab_size=6, dim=3, combiner=combiner, multi_valued=True)
  values = np.array([[[1, 2, 0], [0, 0, 0]], [[5, 5, 3], [4, 9, 0]]])  # 9 is OOV
  got = emb(tf.constant(values)).numpy()
  table = emb.embeddings.numpy()
  np.testing.assert_allclose(got, _reference(table, values, combiner), atol=1e-6)
  # Hand-worked: [1, 2, 0] with mean is (e1 + e2) / 2; all padding is zeros.
  if combiner == "mean":
    np.testing.assert_allclose(got[0, 0], (table[1] + table[2]) / 2, atol=1e-6)
  np.testing.assert_array_equal(got[0, 1], np.zeros(3))
  # The OOV 9 is dropped: [4, 9, 0] pools e4 alone.
  np.testing.assert_allclose(got[1, 1], table[4], atol=1e-6)


def test_single_ids_padding_and_oov_are_zero():
  emb = FeatureEmbedding(vocab_size=4, dim=2)
  got = emb(tf.constant([[3, 0, 7, -1]])).numpy()
  table = emb.embeddings.numpy()
  np.testing.assert_allclose(got[0, 0], table[3])
  np.testing.assert_array_equal(got[0, 1:], np.zeros((3, 2)))


def test_gradient_is_indexed_slices_on_looked_up_rows():
  emb = FeatureEmbedding(vocab_size=1000, dim=4, multi_valued=True, combiner="sum")
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(emb(tf.constant([[3, 7, 0]])))
  grad = tape.gradient(loss, emb.embeddings)
  assert isinstance(grad, tf.IndexedSlices)
  dense = tf.convert_to_tensor(grad).numpy()
  # d/dE of sum(e3 + e7) is 1 on rows 3 and 7 only (padding gets 0).
  expected = np.zeros((1000, 4))
  expected[[3, 7]] = 1.0
  np.testing.assert_allclose(dense, expected)


def test_normal_initializer_is_the_default():
  emb = FeatureEmbedding(vocab_size=20000, dim=8)
  emb(tf.constant([1]))  # builds the table
  table = emb.embeddings.numpy()
  # keras "normal" = RandomNormal(stddev=0.05): not uniform (kurtosis 3, not 1.8).
  z = (table - table.mean()) / table.std()
  assert abs(table.std() - 0.05) < 0.002
  assert abs(np.mean(z ** 4) - 3.0) < 0.1


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="combiner"):
    FeatureEmbedding(10, 4, combiner="max")
  with pytest.raises(ValueError, match="vocab_size"):
    FeatureEmbedding(0, 4)


def test_layer_contract():
  run_layer_test(FeatureEmbedding,
                 dict(vocab_size=10, dim=4, multi_valued=True, combiner="mean"),
                 tf.constant([[1, 2, 0], [3, 0, 0]]), (2, 4),
                 sparse_weights=("embeddings",))
