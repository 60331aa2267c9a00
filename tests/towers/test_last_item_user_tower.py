"""LastItemUserTower: the last valid history item through the MLP (NumPy)."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.last_item_user_tower import LastItemUserTower
from tests.layer_test_util import run_layer_test


def _batch(history, mask=None):
  history = np.asarray(history, np.int64)
  mask = history > 0 if mask is None else np.asarray(mask)
  return {"history": tf.constant(history), "history_mask": tf.constant(mask)}


def test_forward_is_the_last_valid_item_then_mlp():
  embedding = ItemEmbedding(num_items=9, dim=4, combine="sum")
  tower = LastItemUserTower(embedding, output_dim=3, hidden_units=[5],
                            l2_normalize=True)
  # Left-aligned histories: the last valid items are 4, 9 and (empty) padding 0.
  history = np.array([[3, 1, 4, 0, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
  got = tower(_batch(history)).numpy()
  table = embedding.id_embedding.embeddings.numpy()
  x = table[[4, 9, 0]]
  x[2] = 0.0     # item 0 (padding) embeds to zeros (ItemEmbedding's contract)
  w1, b1 = [w.numpy() for w in tower.head.hidden_layers[0].weights]
  w2, b2 = [w.numpy() for w in tower.head.output_layer.weights]
  out = np.maximum(x @ w1 + b1, 0) @ w2 + b2
  out /= np.sqrt(np.maximum((out ** 2).sum(1, keepdims=True), 1e-12))
  np.testing.assert_allclose(got, out, atol=1e-5)
  assert tower.embedding_dim == 3 and tower.normalized


def test_the_mask_not_the_ids_decides_the_last_item():
  tower = LastItemUserTower(ItemEmbedding(num_items=9, dim=4), output_dim=3)
  # A garbage id under the mask must not be read: both rows' last item is 5.
  a = tower(_batch([[2, 5, 0, 0]])).numpy()
  b = tower(_batch([[2, 5, 7, 8]], mask=[[True, True, False, False]])).numpy()
  np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_array_equal(
      LastItemUserTower.last_item(_batch([[2, 5, 7, 8]],
                                         mask=[[True, True, False, False]])).numpy(),
      [5])


def test_layer_contract():
  run_layer_test(
      LastItemUserTower,
      dict(item_embedding=ItemEmbedding(num_items=9, dim=4), output_dim=3,
           hidden_units=[5], l2_normalize=True),
      _batch([[3, 1, 4, 0], [9, 0, 0, 0]]), (2, 3),
      sparse_weights=("item_id_embedding",))
