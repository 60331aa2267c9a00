"""encode_catalog against a NumPy forward pass of a tiny item tower."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.towers.encode_catalog import encode_catalog

N, D = 11, 3


class _TinyTower(keras.layers.Layer):
  """tanh(E[id] W), with dropout that only a training call would apply."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.table = keras.layers.Embedding(N + 1, 4,
                                        embeddings_initializer="random_normal")
    self.dense = keras.layers.Dense(D, activation="tanh", use_bias=False)
    self.dropout = keras.layers.Dropout(0.9)

  def call(self, ids, training=False):
    return self.dropout(self.dense(self.table(ids)), training=training)


@pytest.fixture(scope="module")
def tower():
  keras.utils.set_random_seed(4)
  layer = _TinyTower()
  layer(tf.constant([0], tf.int64))
  return layer


def _numpy_rows(tower, ids):
  table = tower.table.embeddings.numpy()                        # [N+1, 4]
  return np.tanh(table[ids] @ tower.dense.kernel.numpy())       # [S, D]


@pytest.mark.parametrize("batch_size", [1, 4, N, 100])   # 4: last batch of 3
def test_rows_are_items_one_to_n(tower, batch_size):
  got = encode_catalog(tower, N, batch_size=batch_size)
  assert got.shape == (N, D) and got.dtype == np.float32
  # Row r is item r + 1 (item 0, padding, is not a row); inference mode.
  np.testing.assert_allclose(got, _numpy_rows(tower, np.arange(1, N + 1)),
                             rtol=1e-5, atol=1e-6)


def test_given_items_in_their_order_and_errors(tower):
  ids = np.array([9, 2, 11, 2, 5])
  got = encode_catalog(tower, N, batch_size=2, item_ids=ids)
  np.testing.assert_allclose(got, _numpy_rows(tower, ids), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"item_ids must lie in \[1, 11\]"):
    encode_catalog(tower, N, item_ids=[0, 3])
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    encode_catalog(tower, N, batch_size=0)
  with pytest.raises(ValueError, match="no item to encode"):
    encode_catalog(tower, 0)
