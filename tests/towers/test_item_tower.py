"""ItemTower: NumPy forward pass, normalisation, attributes, layer contract."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from tests.layer_test_util import run_layer_test

CATALOG = {"category": np.array([0, 1, 2, 1, 2, 2], np.int32)}
FEATURES = [{"name": "category", "kind": "single", "vocab_size": 2}]


def _embedding(combine="concat"):
  return ItemEmbedding(5, 8, FEATURES, CATALOG, combine=combine)


@pytest.mark.parametrize("l2_normalize", [False, True])
def test_forward_matches_numpy(l2_normalize):
  tower = ItemTower(_embedding(), output_dim=4, hidden_units=[6],
                    activation="relu", l2_normalize=l2_normalize, dropout=0.5)
  ids = np.array([1, 5, 3])
  got = tower(tf.constant(ids)).numpy()  # training=False: dropout is off
  x = tower.item_embedding(tf.constant(ids)).numpy()
  w1, b1 = [w.numpy() for w in tower.head.hidden_layers[0].weights]
  w2, b2 = [w.numpy() for w in tower.head.output_layer.weights]
  expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
  if l2_normalize:
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert tower.embedding_dim == 4 and tower.normalized == l2_normalize


def test_plain_embedding_tower_is_the_item_embedding():
  embedding = _embedding("sum")
  tower = ItemTower(embedding)
  ids = tf.constant([2, 4])
  np.testing.assert_array_equal(tower(ids).numpy(), embedding(ids).numpy())
  assert tower.embedding_dim == 8 and not tower.normalized
  assert ItemTower(embedding, hidden_units=[3]).embedding_dim == 3


def test_dropout_only_in_training():
  tower = ItemTower(_embedding(), output_dim=4, hidden_units=[64], dropout=0.5)
  ids = tf.constant([1, 2, 3, 4])
  a, b = tower(ids).numpy(), tower(ids).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(tower(ids, training=True).numpy(), a)


def test_layer_contract():
  run_layer_test(
      ItemTower,
      dict(item_embedding=_embedding(), output_dim=4, hidden_units=[6],
           l2_normalize=True),
      tf.constant([1, 2, 5], tf.int64), (3, 4),
      sparse_weights=("item_id_embedding", "category_embedding"))


def test_restores_checkpoints_of_the_layout_before_projection_head(tmp_path):
  # Before ProjectionHead the tower held its Dense layers itself; the variables
  # of such checkpoints sit at `<tower>/hidden_layers/0/kernel`,
  # `<tower>/output_layer/kernel`, which the tower must still restore.
  class OldLayout(keras.layers.Layer):

    def __init__(self, item_embedding):
      super().__init__()
      self.item_embedding = item_embedding
      self.hidden_layers = [keras.layers.Dense(6, activation="relu")]
      self.dropout_layers = [keras.layers.Dropout(0.0)]
      self.output_layer = keras.layers.Dense(4)

    def call(self, ids):
      return self.output_layer(self.hidden_layers[0](self.item_embedding(ids)))

  ids = tf.constant([1, 2, 5])
  old = OldLayout(_embedding())
  expected = old(ids).numpy()
  path = tf.train.Checkpoint(tower=old).write(str(tmp_path / "ckpt"))
  tower = ItemTower(_embedding(), output_dim=4, hidden_units=[6])
  tower(ids)
  status = tf.train.Checkpoint(tower=tower).read(path)
  status.assert_consumed()
  status.assert_existing_objects_matched()
  np.testing.assert_allclose(tower(ids).numpy(), expected, atol=1e-6)
