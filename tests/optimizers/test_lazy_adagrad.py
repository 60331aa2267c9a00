"""LazyAdagrad against a NumPy reference of Adagrad (Duchi et al. 2011) and keras Adagrad."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.optimizers import LazyAdagrad
from dcg_tf.optimizers import get_optimizer

LR, G0, EPS = 0.5, 0.1, 1e-7


def _sparse_grad(table, indices, weights):
  """Gradient of sum(gather(table, indices) * weights): IndexedSlices with duplicates."""
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.gather(table, indices) * weights)
  grad = tape.gradient(loss, table)
  assert isinstance(grad, tf.IndexedSlices)
  return grad


def _numpy_adagrad(var, acc, indices, weights):
  """Adagrad on the rows in `indices` (duplicates summed); float64 reference."""
  var, acc = var.copy(), acc.copy()
  grad = {}
  for i, w in zip(indices, weights):
    grad[i] = grad.get(i, 0.0) + w.astype(np.float64)
  for i, g in grad.items():
    acc[i] += g * g
    var[i] -= LR * g / np.sqrt(acc[i] + EPS)
  return var, acc


def test_sparse_steps_match_numpy_and_absent_rows_are_untouched():
  rng = np.random.default_rng(0)
  init = rng.normal(size=(7, 3)).astype(np.float32)
  table = tf.Variable(init)
  opt = LazyAdagrad(learning_rate=LR, initial_accumulator_value=G0)
  opt.build([table])
  var, acc = init.astype(np.float64), np.full((7, 3), G0)
  for indices in ([0, 2, 2], [3, 0], [2, 4, 4, 4]):  # rows 1, 5, 6 never touched
    weights = rng.normal(size=(len(indices), 3)).astype(np.float32)
    before_var = table.numpy()
    before_acc = opt._accumulators[0].numpy()
    opt.apply_gradients([(_sparse_grad(table, indices, weights), table)])
    var, acc = _numpy_adagrad(var, acc, indices, weights)
    np.testing.assert_allclose(table.numpy(), var, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt._accumulators[0].numpy(), acc, rtol=1e-5)
    absent = sorted(set(range(7)) - set(indices))
    np.testing.assert_array_equal(table.numpy()[absent], before_var[absent])
    np.testing.assert_array_equal(opt._accumulators[0].numpy()[absent], before_acc[absent])
  np.testing.assert_array_equal(table.numpy()[[1, 5, 6]], init[[1, 5, 6]])


def test_hand_worked_first_step():
  # Row 1 gets g = 2 (from indices [1, 1] with weight 1 each: duplicates summed).
  # G = 0.1 + 4 = 4.1; theta = 0 - 0.5 * 2 / sqrt(4.1) = -0.4938648.
  table = tf.Variable(tf.zeros([3, 1]))
  opt = LazyAdagrad(learning_rate=LR, initial_accumulator_value=G0, epsilon=0.0)
  opt.apply_gradients([(_sparse_grad(table, [1, 1], np.ones((2, 1), np.float32)), table)])
  np.testing.assert_allclose(table.numpy()[:, 0], [0.0, -0.4938648, 0.0], rtol=1e-6)
  np.testing.assert_allclose(opt._accumulators[0].numpy()[:, 0], [0.1, 4.1, 0.1],
                             rtol=1e-6)


def test_equals_dense_adagrad_on_every_row_at_every_step():
  # A zero gradient leaves Adagrad's G and theta unchanged, so lazy and dense
  # Adagrad agree on the whole table at every step, not only on the first.
  rng = np.random.default_rng(1)
  init = rng.normal(size=(6, 4)).astype(np.float32)
  lazy_table, dense_table = tf.Variable(init), tf.Variable(init)
  lazy, dense = LazyAdagrad(LR), keras.optimizers.Adagrad(LR)
  for indices in ([0, 1, 1], [5], [1, 3, 0, 3]):
    weights = rng.normal(size=(len(indices), 4)).astype(np.float32)
    grad = _sparse_grad(lazy_table, indices, weights)
    lazy.apply_gradients([(grad, lazy_table)])
    dense.apply_gradients([(tf.convert_to_tensor(grad), dense_table)])
    np.testing.assert_allclose(lazy_table.numpy(), dense_table.numpy(), rtol=1e-6)
    np.testing.assert_allclose(lazy._accumulators[0].numpy(),
                               dense._accumulators[0].numpy(), rtol=1e-6)


def test_duplicate_indices_are_summed_in_update_step():
  values = np.array([[1.0, -2.0], [0.5, 3.0], [4.0, 1.0]], np.float32)
  dup, summed = tf.Variable(tf.ones([4, 2])), tf.Variable(tf.ones([4, 2]))
  opt_dup, opt_summed = LazyAdagrad(LR), LazyAdagrad(LR)
  opt_dup.build([dup])
  opt_summed.build([summed])
  # update_step directly, bypassing keras' deduplication in apply_gradients.
  opt_dup.update_step(tf.IndexedSlices(tf.constant(values), tf.constant([2, 2, 0]),
                                       tf.constant([4, 2])), dup)
  opt_summed.update_step(
      tf.IndexedSlices(tf.constant([values[0] + values[1], values[2]]),
                       tf.constant([2, 0]), tf.constant([4, 2])), summed)
  np.testing.assert_array_equal(dup.numpy(), summed.numpy())
  # Row 2: g = (1.5, 1.0), G = (0.1 + 2.25, 0.1 + 1.0) = (2.35, 1.1).
  np.testing.assert_allclose(opt_dup._accumulators[0].numpy()[2], [2.35, 1.1], rtol=1e-6)


def test_dense_variables_follow_keras_adagrad_exactly():
  rng = np.random.default_rng(2)
  init = rng.normal(size=(4, 3)).astype(np.float32)
  a, b = tf.Variable(init), tf.Variable(init)
  lazy, dense = LazyAdagrad(LR), keras.optimizers.Adagrad(LR)
  for _ in range(3):
    grad = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    lazy.apply_gradients([(grad, a)])
    dense.apply_gradients([(grad, b)])
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(lazy._accumulators[0].numpy(),
                                dense._accumulators[0].numpy())


def _embedding_model():
  model = keras.Sequential([keras.layers.Embedding(10, 4), keras.layers.Dense(1)])
  model.build((None, 3))
  return model


def _train(model, opt, steps, seed=0):
  @tf.function
  def step(ids, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((tf.reduce_sum(model(ids), axis=[1, 2]) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    step(tf.constant(rng.integers(0, 6, size=(5, 3))),
         tf.constant(rng.normal(size=5), tf.float32))


def test_tf_function_training_and_checkpoint_round_trip(tmp_path):
  model = _embedding_model()
  init_table = model.get_weights()[0]
  opt = LazyAdagrad(LR)
  _train(model, opt, steps=2)
  np.testing.assert_array_equal(model.get_weights()[0][6:], init_table[6:])  # ids 6..9 unseen
  path = tf.train.Checkpoint(model=model, optimizer=opt).save(str(tmp_path / "ckpt"))
  restored_model, restored_opt = _embedding_model(), LazyAdagrad(LR)
  restored_opt.build(restored_model.trainable_variables)
  tf.train.Checkpoint(model=restored_model, optimizer=restored_opt).restore(
      path).assert_consumed()
  for got, want in zip(restored_opt.variables, opt.variables):
    np.testing.assert_array_equal(got.numpy(), want.numpy())
  assert np.any(restored_opt._accumulators[0].numpy() != np.float32(0.1))
  _train(model, opt, steps=1, seed=1)
  _train(restored_model, restored_opt, steps=1, seed=1)
  for got, want in zip(restored_model.get_weights(), model.get_weights()):
    np.testing.assert_array_equal(got, want)


def test_config_round_trip_factory_and_errors():
  opt = LazyAdagrad(learning_rate=0.02, initial_accumulator_value=0.3, epsilon=1e-5)
  clone = LazyAdagrad.from_config(opt.get_config())
  assert clone.get_config() == opt.get_config()
  assert (clone.initial_accumulator_value, clone.epsilon) == (0.3, 1e-5)
  assert isinstance(keras.optimizers.deserialize(keras.optimizers.serialize(opt)),
                    LazyAdagrad)
  made = get_optimizer("lazy_adagrad", 0.1, initial_accumulator_value=0.0)
  assert isinstance(made, LazyAdagrad) and made.initial_accumulator_value == 0.0
  assert type(get_optimizer("adagrad", 0.1)) is keras.optimizers.Adagrad
  with pytest.raises(ValueError, match="initial_accumulator_value must be >= 0"):
    LazyAdagrad(0.1, initial_accumulator_value=-1.0)
  with pytest.raises(ValueError, match="weight_decay"):
    LazyAdagrad(0.1, weight_decay=1e-4)
