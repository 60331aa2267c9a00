"""MomentumEncoder: MoCo's EMA update vs NumPy, no gradients, checkpoints."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.training_state.momentum_encoder import MomentumEncoder, _ordered_weights


def _tower(seed=0):
  tf.random.set_seed(seed)
  embedding = ItemEmbedding(
      num_items=5, dim=4, combine="sum",
      features=[{"name": "category", "kind": "single", "vocab_size": 3}],
      feature_arrays={"category": np.array([0, 1, 2, 3, 1, 2], np.int32)})
  return ItemTower(embedding, output_dim=3, hidden_units=[6], l2_normalize=True)


IDS = tf.constant([1, 2, 5], tf.int64)


def _perturb(tower, rng):
  for v in tower.trainable_weights:
    v.assign_add(rng.normal(size=v.shape).astype(np.float32))


def test_key_starts_as_copy_then_follows_ema_like_numpy():
  online = _tower()
  online(IDS)
  keys = MomentumEncoder(online, momentum=0.9)
  np.testing.assert_allclose(keys(IDS).numpy(), online(IDS).numpy(), atol=1e-6)
  rng = np.random.default_rng(0)
  online_w, key_w = _ordered_weights(online), _ordered_weights(keys.key_tower)
  assert [w.shape for w in online_w] == [w.shape for w in key_w]
  expected = [w.numpy().copy() for w in online_w]
  for _ in range(3):
    _perturb(online, rng)
    keys.update()
    expected = [0.9 * e + 0.1 * o.numpy() if o.trainable else o.numpy()
                for e, o in zip(expected, online_w)]
  for e, k in zip(expected, key_w):
    np.testing.assert_allclose(k.numpy(), e, rtol=1e-5, atol=1e-6)
  # Integer catalog arrays (non-trainable) are copied, not averaged.
  ints = [(k, o) for k, o in zip(key_w, online_w) if k.dtype.is_integer]
  assert ints and all(np.array_equal(k.numpy(), o.numpy()) for k, o in ints)


def test_no_trainable_weights_and_no_gradient():
  online = _tower()
  keys = MomentumEncoder(online, momentum=0.99)
  keys(IDS)
  assert keys.trainable_weights == []
  # Only the copy and the flag: the online tower is not tracked here.
  assert len(keys.weights) == len(online.weights) + 1
  with tf.GradientTape(persistent=True) as tape:
    out = tf.reduce_sum(keys(IDS))
  assert all(g is None for g in tape.gradient(out, online.trainable_weights))
  assert all(g is None for g in tape.gradient(out, keys.key_tower.weights))


def test_initial_copy_happens_once_inside_tf_function():
  online = _tower()
  online(IDS)
  keys = MomentumEncoder(online, momentum=0.5)
  call = tf.function(keys.__call__)
  call(IDS)
  _perturb(online, np.random.default_rng(1))
  key_w = _ordered_weights(keys.key_tower)
  before = [k.numpy().copy() for k in key_w]
  call(IDS)     # must not copy the online weights again
  for b, k in zip(before, key_w):
    np.testing.assert_array_equal(b, k.numpy())
  tf.function(keys.update)()
  for b, k, o in zip(before, key_w, _ordered_weights(online)):
    if o.trainable:
      np.testing.assert_allclose(k.numpy(), 0.5 * b + 0.5 * o.numpy(), atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
  online = _tower()
  keys = MomentumEncoder(online, momentum=0.9)
  keys(IDS)
  _perturb(online, np.random.default_rng(2))
  keys.update()
  saved = [k.numpy().copy() for k in keys.key_tower.weights]
  path = tf.train.Checkpoint(keys=keys).save(str(tmp_path / "ckpt"))
  online2 = _tower(seed=5)
  keys2 = MomentumEncoder(online2, momentum=0.9)
  keys2(IDS)
  tf.train.Checkpoint(keys=keys2).restore(path)
  assert bool(keys2.initialized.numpy())
  for s, k in zip(saved, keys2.key_tower.weights):
    np.testing.assert_array_equal(s, k.numpy())
  keys2(IDS)    # restored flag: the restored copy is not overwritten
  for s, k in zip(saved, keys2.key_tower.weights):
    np.testing.assert_array_equal(s, k.numpy())


def test_rejects_bad_momentum():
  with pytest.raises(ValueError, match="momentum must be in"):
    MomentumEncoder(_tower(), momentum=1.0)
