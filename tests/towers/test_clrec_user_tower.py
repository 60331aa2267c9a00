"""CLRec's user encoder (appendix B.1) and its small layers vs NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.backward_positional_embedding import BackwardPositionalEmbedding
from dcg_tf.towers.clrec_user_tower import CLRecUserTower
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.layers.attention.simplified_multi_head_attention import SimplifiedMultiHeadAttention
from dcg_tf.layers.embeddings.time_bucket_embedding import TimeBucketEmbedding
from dcg_tf.layers.attention.weighted_head_aggregation import WeightedHeadAggregation
from tests.layer_test_util import run_layer_test, savedmodel_outputs_in_fresh_process


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def _l2(x):
  n = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.maximum(n, 1e-6)


def _attention_numpy(layer, x, mask):
  w1, b1 = [v.numpy() for v in layer.hidden.weights]
  w2, b2 = [v.numpy() for v in layer.scores.weights]
  scores = np.tanh(x @ w1 + b1) @ w2 + b2                # [B, L, H]
  scores = np.where(mask[:, :, None], scores, -np.inf).transpose(0, 2, 1)
  with np.errstate(invalid="ignore"):                     # all-padding rows
    weights = np.nan_to_num(_softmax(scores))            # [B, H, L]
  return np.einsum("bhl,bld->bhd", weights, x)


def _wha_numpy(kernel, z):
  m = z.mean(axis=1)                                     # [B, D]
  alpha = _softmax(np.einsum("bhd,de,be->bh", z, kernel, m))
  return np.einsum("bh,bhd->bd", alpha, z)


def test_time_buckets_log2_and_explicit_boundaries():
  layer = TimeBucketEmbedding(num_buckets=8, dim=3)
  deltas = tf.constant([0, 1, 2, 3, 4, 7, 8, -5, 2**40], tf.int64)
  # 1 + floor(log2(d)) for d >= 1, 0 for d <= 0, capped at 7.
  np.testing.assert_array_equal(layer.bucketize(deltas).numpy(),
                                [0, 1, 2, 2, 3, 3, 4, 0, 7])
  out = layer(deltas).numpy()
  table = layer.embedding.embeddings.numpy()
  np.testing.assert_allclose(out, table[[0, 1, 2, 2, 3, 3, 4, 0, 7]])
  explicit = TimeBucketEmbedding(num_buckets=3, dim=2, boundaries=[10, 100])
  np.testing.assert_array_equal(
      explicit.bucketize(tf.constant([5, 10, 99, 100, 10**6])).numpy(),
      [0, 1, 1, 2, 2])
  restored = TimeBucketEmbedding.from_config(explicit.get_config())
  assert restored.boundaries == [10, 100] and restored.num_buckets == 3


def test_backward_positions_count_from_the_earliest_click():
  layer = BackwardPositionalEmbedding(max_len=4, dim=2)
  mask = tf.constant([[True, True, True, False], [True, False, False, False],
                      [False, True, False, True]])
  # Left-aligned rows: slot i is position i; the third row shows the count
  # of earlier valid slots is used (earliest valid = 0).
  np.testing.assert_array_equal(layer.positions(mask).numpy(),
                                [[0, 1, 2, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
  out = layer(mask).numpy()
  table = layer.embedding.embeddings.numpy()
  np.testing.assert_allclose(out[0, :3], table[[0, 1, 2]])
  np.testing.assert_allclose(out[0, 3], 0.0)
  np.testing.assert_allclose(out[2, 3], table[1])


def test_simplified_attention_matches_numpy_and_ignores_padding():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 5, 4)).astype(np.float32)
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
  layer = SimplifiedMultiHeadAttention(num_heads=3, hidden_units=6)
  got = layer(tf.constant(x), mask=tf.constant(mask)).numpy()      # [3, 3, 4]
  np.testing.assert_allclose(got, _attention_numpy(layer, x, mask), atol=1e-5)
  np.testing.assert_allclose(got[2], 0.0)   # no valid click -> zero heads
  x2 = x.copy()
  x2[0, 3:] = 100.0                         # change the padding only
  np.testing.assert_allclose(layer(x2, mask=mask).numpy()[0], got[0], atol=1e-5)


def test_weighted_head_aggregation_matches_numpy():
  # Hand-worked: A = I, z_1 = (1, 0), z_2 = (0, 1): m = (.5, .5),
  # scores = (.5, .5), alpha = (.5, .5), f = (.5, .5).
  layer = WeightedHeadAggregation(kernel_initializer="identity")
  np.testing.assert_allclose(layer(tf.constant([[[1.0, 0.0], [0.0, 1.0]]])).numpy(),
                             [[0.5, 0.5]], atol=1e-6)
  rng = np.random.default_rng(1)
  z = rng.normal(size=(4, 3, 5)).astype(np.float32)
  layer = WeightedHeadAggregation()
  got = layer(tf.constant(z)).numpy()
  np.testing.assert_allclose(got, _wha_numpy(layer.kernel.numpy(), z), atol=1e-5)


def _batch(rng, num_items=20, batch=3, length=6):
  lengths = np.array([6, 3, 1])
  history = rng.integers(1, num_items + 1, size=(batch, length))
  mask = np.arange(length)[None, :] < lengths[:, None]
  history = np.where(mask, history, 0)
  times = np.where(mask, np.cumsum(rng.integers(1, 500, size=(batch, length)), 1), 0)
  target_time = times.max(axis=1) + rng.integers(1, 5000, size=batch)
  return {"history": tf.constant(history, tf.int64),
          "history_mask": tf.constant(mask),
          "history_timestamp": tf.constant(times, tf.int64),
          "target_timestamp": tf.constant(target_time, tf.int64)}


def test_user_tower_matches_numpy_composition():
  rng = np.random.default_rng(2)
  batch = _batch(rng)
  items = keras.layers.Embedding(21, 8, embeddings_initializer="normal")
  tower = CLRecUserTower(items, max_len=6, num_heads=3, attention_hidden_units=5)
  got = tower(batch).numpy()                                       # [3, 8]
  h = batch["history"].numpy()
  mask = batch["history_mask"].numpy()
  delta = batch["target_timestamp"].numpy()[:, None] - batch["history_timestamp"].numpy()
  buckets = np.minimum(np.where(delta >= 1, 1 + np.floor(np.log2(np.maximum(delta, 1))),
                                0), 31).astype(int)
  x = (items.embeddings.numpy()[h]
       + tower.time_embedding.embedding.embeddings.numpy()[buckets]
       + tower.position_embedding.embedding.embeddings.numpy()[np.arange(6)][None]
       * mask[:, :, None])
  heads = _l2(_attention_numpy(tower.attention, x.astype(np.float32), mask))
  want = _l2(_wha_numpy(tower.aggregation.kernel.numpy(), heads))
  np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_user_tower_padding_fallback_time_gradients_and_config():
  rng = np.random.default_rng(3)
  batch = _batch(rng)
  embedding = ItemEmbedding(num_items=20, dim=8, combine="sum")
  tower = CLRecUserTower(embedding, max_len=6, num_heads=2)
  base = tower(batch).numpy()
  # Padding slots may hold anything.
  noisy = dict(batch)
  mask = batch["history_mask"].numpy()
  noisy["history_timestamp"] = tf.where(mask, batch["history_timestamp"], 12345)
  np.testing.assert_allclose(tower(noisy).numpy(), base, atol=1e-5)
  # Without target_timestamp the query time is the latest click's time.
  last = batch["history_timestamp"].numpy().max(axis=1)
  without = {k: v for k, v in batch.items() if k != "target_timestamp"}
  with_last = dict(batch, target_timestamp=tf.constant(last, tf.int64))
  np.testing.assert_allclose(tower(without).numpy(), tower(with_last).numpy(),
                             atol=1e-6)
  # Embedding tables get sparse (IndexedSlices) gradients.
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tower(batch)[:, 0])
  grads = tape.gradient(loss, tower.trainable_weights)
  by_name = {v.name: g for v, g in zip(tower.trainable_weights, grads)}
  assert any("buckets" in n and isinstance(g, tf.IndexedSlices)
             for n, g in by_name.items())
  assert any("positions" in n and isinstance(g, tf.IndexedSlices)
             for n, g in by_name.items())
  assert tower.embedding_dim == 8 and tower.normalized
  restored = CLRecUserTower.from_config(tower.get_config())
  assert restored(batch).shape == (3, 8)
  assert (restored.num_heads, restored.max_len) == (2, 6)


def test_layer_contracts():
  rng = np.random.default_rng(4)
  run_layer_test(TimeBucketEmbedding, {"num_buckets": 8, "dim": 4},
                 tf.constant([[0, 3, 900]], tf.int64), (1, 3, 4),
                 sparse_weights=("buckets",))
  run_layer_test(BackwardPositionalEmbedding, {"max_len": 4, "dim": 4},
                 tf.constant([[True, True, False, False]]), (1, 4, 4),
                 sparse_weights=("positions",))
  x = tf.constant(rng.normal(size=(2, 4, 6)), tf.float32)
  mask = tf.constant([[True, True, True, False], [True, False, False, False]])
  run_layer_test(SimplifiedMultiHeadAttention,
                 {"num_heads": 3, "hidden_units": 5}, x, (2, 3, 6),
                 call_fn=lambda layer, data, training=False: layer(data, mask=mask))
  run_layer_test(WeightedHeadAggregation, {}, x, (2, 6))
  embedding = ItemEmbedding(num_items=20, dim=8, combine="sum")
  run_layer_test(CLRecUserTower,
                 {"item_embedding": embedding, "max_len": 6, "num_heads": 2},
                 _batch(rng), (3, 8),
                 sparse_weights=("buckets", "positions", "item_id_embedding"),
                 atol=1e-5)


class _Serving(tf.Module):
  """Test-only serving wrapper (experiments/export.py builds the real one)."""

  def __init__(self, tower):
    super().__init__()
    self.tower = tower

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int64, name="history"),
      tf.TensorSpec([None, None], tf.bool, name="history_mask"),
      tf.TensorSpec([None, None], tf.int64, name="history_timestamp"),
      tf.TensorSpec([None], tf.int64, name="target_timestamp")])
  def serve(self, history, history_mask, history_timestamp, target_timestamp):
    return {"embedding": self.tower(
        {"history": history, "history_mask": history_mask,
         "history_timestamp": history_timestamp,
         "target_timestamp": target_timestamp}, training=False)}


@pytest.mark.slow   # a fresh TensorFlow process
def test_savedmodel_round_trip_without_dcg_tf(tmp_path):
  rng = np.random.default_rng(5)
  embedding = ItemEmbedding(
      num_items=20, dim=8, combine="sum",
      features=[{"name": "category", "kind": "single", "vocab_size": 3}],
      feature_arrays={"category": (np.arange(21) % 4).astype(np.int32)})
  module = _Serving(CLRecUserTower(embedding, max_len=6, num_heads=2))
  inputs = {k: v.numpy() for k, v in _batch(rng).items()}
  expected = module.serve(**{k: tf.constant(v) for k, v in inputs.items()})
  tf.saved_model.save(module, str(tmp_path / "user"),
                      signatures={"serving_default": module.serve})
  (loaded,) = savedmodel_outputs_in_fresh_process(
      [(tmp_path / "user", inputs, tmp_path / "user.npy")])
  np.testing.assert_allclose(loaded, expected["embedding"].numpy(), atol=1e-5)
