"""MomentumEncoder: lazy catch-up vs a NumPy dense EMA, shared catalog, checkpoints.

The reference is MoCo's Eq. 2 applied to every weight at every step, in NumPy
(float64) on copies of the online weights; the key tower's output at a read is
compared with the same tower architecture carrying those reference weights.
"""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.optimizers import LazyAdam
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.training_state.momentum_encoder import (
    MomentumEncoder, _ordered_weights, updates_only_rows_in_gradient)

NUM_ITEMS = 20
CATEGORY = (np.arange(NUM_ITEMS + 1) * 7 % 5).astype(np.int32)   # values 0..4


def _tower(seed=0):
  tf.random.set_seed(seed)
  embedding = ItemEmbedding(
      num_items=NUM_ITEMS, dim=4, combine="sum",
      features=[{"name": "category", "kind": "single", "vocab_size": 4}],
      feature_arrays={"category": CATEGORY})
  return ItemTower(embedding, output_dim=3, hidden_units=[6], l2_normalize=True)


IDS = tf.constant([1, 2, 5], tf.int64)


def _reference_tower(online, values):
  """A copy of `online` whose weights are `values` (in `weight_pairs` order)."""
  tower = keras.layers.deserialize(keras.layers.serialize(online))
  tower(IDS)
  catalog = tower.item_embedding.item_features.tables["category"]
  catalog.assign(CATEGORY)
  weights = [w for w in _ordered_weights(tower) if w is not catalog]
  assert len(weights) == len(values)
  for w, v in zip(weights, values):
    w.assign(v.astype(w.dtype.as_numpy_dtype))
  return tower


def _ema(values, pairs, m):
  return [m * v + (1 - m) * o.numpy() if o.dtype.is_floating else o.numpy()
          for v, (o, _) in zip(values, pairs)]


def _schedule(steps, seed):
  """Random reads and sparse touches: repeats, long gaps, never-touched rows."""
  rng = np.random.default_rng(seed)
  never = {17, 18, 19, 20}            # never touched: only read, late
  pool = np.array([i for i in range(1, NUM_ITEMS + 1) if i not in never])
  plan = []
  for t in range(steps):
    touch = rng.choice(pool[:6] if t < steps // 2 else pool, size=4)  # repeats
    if t == steps - 3:
      touch = np.array([12, 12, 13, 1])   # 12, 13 first touched after a gap
    read = rng.choice(np.arange(1, NUM_ITEMS + 1), size=3)
    if t in (steps // 3, steps - 1):
      read = np.array([17, 19, 20])       # untouched rows, read after long gaps
    plan.append((read.astype(np.int64), touch.astype(np.int64),
                 rng.normal(size=(4, 3)).astype(np.float32)))
  return plan


def _train_step(online, keys, optimizer):
  @tf.function
  def step(read, touch, weights):
    out = keys(read)
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(online(touch) * weights)
    grads_and_vars = list(zip(tape.gradient(loss, online.trainable_weights),
                              online.trainable_weights))
    keys.catch_up(grads_and_vars, optimizer)
    optimizer.apply_gradients(grads_and_vars)
    keys.update()
    return out
  return step


def test_lazy_update_equals_dense_ema_at_every_read():
  online = _tower()
  online(IDS)
  m = 0.8
  keys = MomentumEncoder(online, momentum=m)
  optimizer = LazyAdam(0.05)
  step = _train_step(online, keys, optimizer)
  keys(IDS)                                   # builds the copy
  pairs = keys.weight_pairs()
  reference = [o.numpy().astype(np.float64) for o, _ in pairs]
  for read, touch, weights in _schedule(30, seed=0):
    out = step(read, touch, weights).numpy()
    expected = _reference_tower(online, reference)(read).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    reference = _ema(reference, pairs, m)     # the step's Eq. 2, every row
  # Reading every item catches up every row: whole tables equal the reference.
  keys(tf.range(NUM_ITEMS + 1, dtype=tf.int64))
  for (o, k), r in zip(pairs, reference):
    np.testing.assert_allclose(k.numpy(), r, rtol=1e-5, atol=1e-6, err_msg=k.name)


def test_lazy_update_touches_only_the_batch_rows():
  online = _tower()
  online(IDS)
  keys = MomentumEncoder(online, momentum=0.5)
  optimizer = LazyAdam(0.05)
  step = _train_step(online, keys, optimizer)
  step(IDS, tf.constant([3, 3, 4, 9], tf.int64), tf.ones([4, 3]))
  table = keys.key_tower.item_embedding.id_embedding.embeddings
  before = table.numpy().copy()
  step(tf.constant([3, 4, 9], tf.int64), tf.constant([4, 4, 4, 9], tf.int64),
       tf.ones([4, 3]))
  changed = np.flatnonzero(np.any(table.numpy() != before, axis=1))
  # Read 3, 4, 9 (caught up) and touched 4, 9 (one more step): nothing else.
  assert set(changed) <= {3, 4, 9} and {4, 9} <= set(changed)
  last = keys.last_steps[0].numpy()        # the id table comes first
  assert (last[[4, 9]] == 2).all() and last[3] == 1 and last[1] == 0


def test_dense_optimizer_falls_back_to_dense_ema():
  assert updates_only_rows_in_gradient(LazyAdam(0.1))
  assert updates_only_rows_in_gradient(keras.optimizers.SGD(0.1))
  assert not updates_only_rows_in_gradient(keras.optimizers.Adam(0.1))
  assert not updates_only_rows_in_gradient(keras.optimizers.SGD(0.1, momentum=0.9))
  online = _tower()
  online(IDS)
  m = 0.7
  keys = MomentumEncoder(online, momentum=m)
  optimizer = keras.optimizers.Adam(0.05)   # moves rows absent from the batch
  step = _train_step(online, keys, optimizer)
  keys(IDS)                                   # builds the copy
  pairs = keys.weight_pairs()
  reference = [o.numpy().astype(np.float64) for o, _ in pairs]
  for read, touch, weights in _schedule(6, seed=1):
    step(read, touch, weights)
    reference = _ema(reference, pairs, m)
    for (_, k), r in zip(pairs, reference):   # every row, without any read
      np.testing.assert_allclose(k.numpy(), r, rtol=1e-5, atol=1e-6)


def test_catalog_arrays_are_shared_not_copied():
  online = _tower()
  keys = MomentumEncoder(online, momentum=0.9)
  keys(IDS)
  online_features = online.item_embedding.item_features
  assert keys.key_tower.item_embedding.item_features is online_features
  catalog = online_features.tables["category"]
  assert not any(k is catalog for _, k in keys.weight_pairs())
  same_shape = [w for w in keys.weights
                if w.shape == catalog.shape and w.dtype == catalog.dtype]
  assert same_shape == [catalog]            # no second [N+1] catalog array
  np.testing.assert_array_equal(catalog.numpy(), CATEGORY)


def test_no_trainable_weights_and_no_gradient():
  online = _tower()
  keys = MomentumEncoder(online, momentum=0.99)
  keys(IDS)
  assert keys.trainable_weights == []
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([k for _, k in keys.weight_pairs()])
    out = tf.reduce_sum(keys(IDS))
  assert all(g is None for g in tape.gradient(out, online.trainable_weights))
  assert all(g is None for g in tape.gradient(
      out, [k for _, k in keys.weight_pairs()]))


def test_initial_copy_happens_once_inside_tf_function():
  online = _tower()
  online(IDS)
  keys = MomentumEncoder(online, momentum=0.5)
  call = tf.function(keys.__call__)
  first = call(IDS).numpy()
  np.testing.assert_allclose(first, online(IDS).numpy(), atol=1e-6)
  for v in online.trainable_weights:
    v.assign_add(tf.ones_like(v))
  before = [k.numpy().copy() for _, k in keys.weight_pairs()]
  call(IDS)     # must not copy the online weights again (no update since)
  for b, (_, k) in zip(before, keys.weight_pairs()):
    np.testing.assert_array_equal(b, k.numpy())


def test_checkpoint_round_trip_mid_sequence_continues_identically(tmp_path):
  plan = _schedule(16, seed=2)

  def make(seed):
    online = _tower(seed)
    online(IDS)
    keys = MomentumEncoder(online, momentum=0.8)
    optimizer = LazyAdam(0.05)
    return online, keys, optimizer, _train_step(online, keys, optimizer)

  online, keys, optimizer, step = make(0)
  for read, touch, weights in plan[:8]:
    step(read, touch, weights)
  checkpoint = tf.train.Checkpoint(online=online, keys=keys, optimizer=optimizer)
  path = checkpoint.save(str(tmp_path / "ckpt"))
  outputs = [step(*args).numpy() for args in plan[8:]]

  online2, keys2, optimizer2, step2 = make(5)
  keys2(IDS)
  optimizer2.build(online2.trainable_weights)
  tf.train.Checkpoint(online=online2, keys=keys2, optimizer=optimizer2).restore(
      path).assert_existing_objects_matched()
  assert int(keys2.step.numpy()) == 8
  for args, expected in zip(plan[8:], outputs):
    np.testing.assert_array_equal(step2(*args).numpy(), expected)
  for (_, a), (_, b) in zip(keys.weight_pairs(), keys2.weight_pairs()):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(keys.last_steps, keys2.last_steps):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_rejects_bad_momentum():
  with pytest.raises(ValueError, match="momentum must be in"):
    MomentumEncoder(_tower(), momentum=1.0)
