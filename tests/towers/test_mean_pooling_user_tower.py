"""MeanPoolingUserTower: NumPy masked mean + MLP, padding ignored, contract."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from tests.layer_test_util import run_layer_test


def _batch(history):
  history = np.asarray(history, np.int64)
  return {"history": tf.constant(history), "history_mask": tf.constant(history > 0)}


def test_forward_matches_numpy_masked_mean_then_mlp():
  embedding = ItemEmbedding(num_items=9, dim=4, combine="sum")
  tower = MeanPoolingUserTower(embedding, output_dim=3, hidden_units=[5],
                               l2_normalize=True)
  history = np.array([[3, 1, 4, 0, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
  got = tower(_batch(history)).numpy()
  table = embedding.id_embedding.embeddings.numpy()
  mask = history > 0
  mean = (table[history] * mask[..., None]).sum(1) / np.maximum(mask.sum(1), 1)[:, None]
  # Hand-worked: row 0 averages e3, e1, e4; the empty history averages to zeros.
  np.testing.assert_allclose(mean[0], (table[3] + table[1] + table[4]) / 3, atol=1e-6)
  w1, b1 = [w.numpy() for w in tower.head.hidden_layers[0].weights]
  w2, b2 = [w.numpy() for w in tower.head.output_layer.weights]
  out = np.maximum(mean @ w1 + b1, 0) @ w2 + b2
  # tf.math.l2_normalize: x / sqrt(max(|x|^2, 1e-12)).
  out /= np.sqrt(np.maximum((out ** 2).sum(1, keepdims=True), 1e-12))
  np.testing.assert_allclose(got, out, atol=1e-5)
  assert tower.embedding_dim == 3 and tower.normalized


def test_masked_positions_do_not_change_the_output():
  tower = MeanPoolingUserTower(ItemEmbedding(num_items=9, dim=4), output_dim=3)
  base = {"history": tf.constant([[2, 5, 0, 0]], tf.int64),
          "history_mask": tf.constant([[True, True, False, False]])}
  # Same valid items, garbage ids under the mask and more padding.
  noisy = {"history": tf.constant([[2, 5, 7, 8, 0, 0]], tf.int64),
           "history_mask": tf.constant([[True, True, False, False, False, False]])}
  np.testing.assert_allclose(tower(base).numpy(), tower(noisy).numpy(), atol=1e-6)
  # ...while unmasking item 7 does change it.
  unmasked = dict(noisy, history_mask=tf.constant([[True, True, True, False, False, False]]))
  assert not np.allclose(tower(base).numpy(), tower(unmasked).numpy())


def test_layer_contract():
  run_layer_test(
      MeanPoolingUserTower,
      dict(item_embedding=ItemEmbedding(num_items=9, dim=4), output_dim=3,
           hidden_units=[5]),
      _batch([[1, 2, 0], [3, 0, 0]]), (2, 3),
      sparse_weights=("item_id_embedding",))
