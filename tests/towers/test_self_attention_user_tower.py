"""SelfAttentionUserTower: causality, padding invariance, last valid position,
and a NumPy re-implementation of one SASRec block."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower
from tests.layer_test_util import run_layer_test


def _batch(history, length=None):
  history = np.asarray(history, np.int64)
  if length is not None:
    history = np.pad(history, [(0, 0), (0, length - history.shape[1])])
  return {"history": tf.constant(history), "history_mask": tf.constant(history > 0)}


def _tower(**kwargs):
  kwargs.setdefault("num_blocks", 2)
  kwargs.setdefault("num_heads", 2)
  return SelfAttentionUserTower(ItemEmbedding(num_items=20, dim=8, combine="sum"),
                                max_len=10, dropout=0.3, **kwargs)


@pytest.mark.parametrize("position_mode", ["recency", "order"])
def test_later_items_do_not_change_earlier_positions(position_mode):
  tower = _tower(position_mode=position_mode)
  a = tower.sequence_output(_batch([[3, 7, 1, 9, 4, 0]])).numpy()
  b = tower.sequence_output(_batch([[3, 7, 1, 15, 2, 0]])).numpy()  # change t=3, 4
  np.testing.assert_allclose(a[0, :3], b[0, :3], atol=1e-5)
  assert not np.allclose(a[0, 3], b[0, 3], atol=1e-3)


@pytest.mark.parametrize("position_mode", ["recency", "order"])
def test_padding_does_not_change_the_output(position_mode):
  tower = _tower(position_mode=position_mode, output_dim=5, l2_normalize=True)
  history = [[3, 7, 1, 0], [9, 0, 0, 0]]
  short = tower(_batch(history)).numpy()
  long = tower(_batch(history, length=10)).numpy()
  np.testing.assert_allclose(short, long, atol=1e-5)
  # Ids hidden under the mask are ignored too.
  noisy = {"history": tf.constant([[3, 7, 1, 12], [9, 5, 5, 5]], tf.int64),
           "history_mask": tf.constant([[1, 1, 1, 0], [1, 0, 0, 0]]) > 0}
  np.testing.assert_allclose(tower(noisy).numpy(), short, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)


def test_output_is_the_last_valid_position():
  tower = _tower()
  batch = _batch([[3, 7, 1, 0, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
  sequence = tower.sequence_output(batch).numpy()
  got = tower(batch).numpy()
  np.testing.assert_allclose(got[0], sequence[0, 2], atol=1e-6)
  np.testing.assert_allclose(got[1], sequence[1, 0], atol=1e-6)
  np.testing.assert_allclose(got[2], sequence[2, 0], atol=1e-6)  # empty history
  assert np.all(np.isfinite(got))


def _layer_norm(x, layer):
  gamma, beta = [w.numpy() for w in layer.weights]
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _numpy_tower(tower, history):
  """SASRec with one block, one head, no dropout, recency positions, in NumPy."""
  mask = history > 0
  n = mask.sum(1)
  steps = np.arange(history.shape[1])
  positions = np.maximum(n[:, None] - 1 - steps[None], 0)
  table = tower.item_embedding.id_embedding.embeddings.numpy()
  x = (table[history] + tower.position_embedding.numpy()[positions]) * mask[..., None]
  h = _layer_norm(x, tower.attention_norms[0])
  att = tower.attentions[0]
  wq, bq, wk, bk, wv, bv, wo, bo = [w.numpy() for w in att.weights]
  q = np.einsum("bld,dhk->blhk", h, wq) + bq       # [B, L, 1, d]
  k = np.einsum("bld,dhk->blhk", h, wk) + bk
  v = np.einsum("bld,dhk->blhk", h, wv) + bv
  scores = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(q.shape[-1])
  allowed = np.tril(np.ones((len(steps), len(steps)), bool))[None] & mask[:, None, :]
  scores = np.where(allowed[:, None], scores, -1e9)
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  context = np.einsum("bhqs,bshk->bqhk", weights, v)
  x = x + np.einsum("bqhk,hkd->bqd", context, wo) + bo
  w1, b1 = [w.numpy() for w in tower.ffn_inner[0].weights]
  w2, b2 = [w.numpy() for w in tower.ffn_outer[0].weights]
  x = x + np.maximum(_layer_norm(x, tower.ffn_norms[0]) @ w1 + b1, 0) @ w2 + b2
  x = _layer_norm(x * mask[..., None], tower.final_norm)
  return x[np.arange(len(n)), np.maximum(n - 1, 0)]


def test_matches_numpy_sasrec_block():
  tower = _tower(num_blocks=1, num_heads=1)
  history = np.array([[3, 7, 1, 0], [9, 4, 0, 0]])
  got = tower(_batch(history)).numpy()
  np.testing.assert_allclose(got, _numpy_tower(tower, history), atol=1e-4)


def test_validation():
  with pytest.raises(ValueError, match="num_heads=3 must divide"):
    _tower(num_heads=3)
  with pytest.raises(ValueError, match="position_mode"):
    _tower(position_mode="forward")
  with pytest.raises(tf.errors.InvalidArgumentError, match="longer than max_len"):
    _tower()(_batch(np.ones((1, 11))))


def test_layer_contract():
  run_layer_test(
      SelfAttentionUserTower,
      dict(item_embedding=ItemEmbedding(num_items=20, dim=8), max_len=6,
           num_blocks=1, num_heads=2, dropout=0.1, output_dim=4),
      _batch([[1, 2, 3, 0], [5, 0, 0, 0]]), (2, 4),
      sparse_weights=("item_id_embedding",))
