"""LazyAdam against a NumPy reference of Adam (Kingma & Ba, Algorithm 1) and keras Adam."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.optimizers import LazyAdam
from dcg_tf.optimizers import get_optimizer

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7


def _sparse_grad(table, indices, weights):
  """Gradient of sum(gather(table, indices) * weights): IndexedSlices with duplicates."""
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.gather(table, indices) * weights)
  grad = tape.gradient(loss, table)
  assert isinstance(grad, tf.IndexedSlices)
  return grad


def _numpy_lazy_adam(state, step, indices, weights, amsgrad=False):
  """Adam on the rows in `indices` only, t = global step; float64 reference."""
  var, m, v, vhat = (state[k].copy() for k in ("var", "m", "v", "vhat"))
  grad = {}
  for i, w in zip(indices, weights):  # duplicated indices are summed
    grad[i] = grad.get(i, 0.0) + w.astype(np.float64)
  alpha = LR * np.sqrt(1 - B2 ** step) / (1 - B1 ** step)
  for i, g in grad.items():
    m[i] = B1 * m[i] + (1 - B1) * g
    v[i] = B2 * v[i] + (1 - B2) * g * g
    vhat[i] = np.maximum(vhat[i], v[i])
    denom = np.sqrt(vhat[i] if amsgrad else v[i]) + EPS
    var[i] = var[i] - alpha * m[i] / denom
  return dict(var=var, m=m, v=v, vhat=vhat)


def _slots(opt, amsgrad):
  out = dict(m=opt._momentums[0].numpy(), v=opt._velocities[0].numpy())
  if amsgrad:
    out["vhat"] = opt._velocity_hats[0].numpy()
  return out


@pytest.mark.parametrize("amsgrad", [False, True])
def test_sparse_steps_match_numpy_and_absent_rows_are_untouched(amsgrad):
  rng = np.random.default_rng(0)
  init = rng.normal(size=(8, 3)).astype(np.float32)
  table = tf.Variable(init)
  opt = LazyAdam(learning_rate=LR, amsgrad=amsgrad)
  state = dict(var=init.astype(np.float64), m=np.zeros((8, 3)), v=np.zeros((8, 3)),
               vhat=np.zeros((8, 3)))
  # Rows 6 and 7 are never touched; row 5 only at step 3; duplicates at every step.
  batches = [[0, 1, 1, 2], [2, 3, 0, 0], [5, 1, 4, 5]]
  for step, indices in enumerate(batches, start=1):
    weights = rng.normal(size=(len(indices), 3)).astype(np.float32)
    before = dict(var=table.numpy(), **(_slots(opt, amsgrad) if step > 1 else {}))
    opt.apply_gradients([(_sparse_grad(table, indices, weights), table)])
    state = _numpy_lazy_adam(state, step, indices, weights, amsgrad)
    after = dict(var=table.numpy(), **_slots(opt, amsgrad))
    for name, value in after.items():
      np.testing.assert_allclose(value, state[name], rtol=2e-5, atol=1e-6,
                                 err_msg="%s at step %d" % (name, step))
      absent = sorted(set(range(8)) - set(indices))
      if name in before:  # bit-for-bit: absent rows are neither read nor written
        np.testing.assert_array_equal(value[absent], before[name][absent])
  np.testing.assert_array_equal(table.numpy()[6:], init[6:])
  assert int(opt.iterations.numpy()) == 3


def test_bias_correction_uses_the_global_step():
  # Row 1 is first touched at step 2 with gradient g = 1 (coordinate-wise).
  # m = 0.1, v = 0.001, alpha_2 = lr sqrt(1 - 0.999^2) / (1 - 0.9^2)
  #   = 0.1 * sqrt(0.001999) / 0.19, so the row moves by
  # alpha_2 * 0.1 / sqrt(0.001) = 0.1 * 0.1 * 1.413860 / 0.19 = 0.0744137
  # (1 - 0.999^2 in float32 is off by ~3e-5 relative, hence rtol 1e-4).
  # With a per-row step (t = 1) it would move by exactly lr = 0.1.
  table = tf.Variable(tf.zeros([3, 2]))
  opt = LazyAdam(learning_rate=LR)
  ones = np.ones((1, 2), np.float32)
  opt.apply_gradients([(_sparse_grad(table, [0], ones), table)])
  np.testing.assert_allclose(table.numpy()[0], [-0.1, -0.1], rtol=1e-5)  # lr sign(g)
  opt.apply_gradients([(_sparse_grad(table, [1], ones), table)])
  np.testing.assert_allclose(table.numpy()[1], [-0.0744137, -0.0744137], rtol=1e-4)


def test_first_step_equals_dense_adam_on_every_row():
  # At t = 1 dense Adam's untouched rows have m = v = 0 and a zero gradient, so
  # they move by 0 / (0 + eps) = 0: lazy and dense agree on the whole table.
  rng = np.random.default_rng(1)
  init = rng.normal(size=(6, 4)).astype(np.float32)
  lazy_table, dense_table = tf.Variable(init), tf.Variable(init)
  lazy, dense = LazyAdam(LR), keras.optimizers.Adam(LR)
  grad = _sparse_grad(lazy_table, [4, 1, 4], rng.normal(size=(3, 4)).astype(np.float32))
  lazy.apply_gradients([(grad, lazy_table)])
  dense.apply_gradients([(tf.convert_to_tensor(grad), dense_table)])
  np.testing.assert_allclose(lazy_table.numpy(), dense_table.numpy(), rtol=1e-6)
  np.testing.assert_allclose(lazy._momentums[0].numpy(), dense._momentums[0].numpy(),
                             rtol=1e-6)
  np.testing.assert_allclose(lazy._velocities[0].numpy(), dense._velocities[0].numpy(),
                             rtol=1e-6)


def test_rows_touched_at_every_step_agree_with_dense_adam_absent_rows_do_not():
  rng = np.random.default_rng(2)
  init = rng.normal(size=(5, 3)).astype(np.float32)
  lazy_table, dense_table = tf.Variable(init), tf.Variable(init)
  lazy, dense = LazyAdam(LR), keras.optimizers.Adam(LR)
  # Rows 0, 1 in every step; row 2 only in step 1; rows 3, 4 never.
  for indices in ([0, 1, 2, 1], [1, 0], [0, 0, 1]):
    weights = rng.normal(size=(len(indices), 3)).astype(np.float32)
    lazy.apply_gradients([(_sparse_grad(lazy_table, indices, weights), lazy_table)])
    dense.apply_gradients(
        [(tf.convert_to_tensor(_sparse_grad(dense_table, indices, weights)), dense_table)])
  np.testing.assert_allclose(lazy_table.numpy()[:2], dense_table.numpy()[:2], rtol=1e-5)
  np.testing.assert_array_equal(lazy_table.numpy()[3:], dense_table.numpy()[3:])
  # Dense Adam keeps moving row 2 with its momentum after step 1; lazy Adam does not.
  after_step1 = init[2] - LR * np.sign(lazy._momentums[0].numpy()[2])
  np.testing.assert_allclose(lazy_table.numpy()[2], after_step1, rtol=1e-5)
  assert np.all(np.abs(dense_table.numpy()[2] - after_step1) > 1e-3)


def test_duplicate_indices_are_summed():
  values = np.array([[1.0, -2.0], [0.5, 3.0], [4.0, 1.0]], np.float32)
  dup, summed = tf.Variable(tf.ones([4, 2])), tf.Variable(tf.ones([4, 2]))
  opt_dup, opt_summed = LazyAdam(LR), LazyAdam(LR)
  opt_dup.build([dup])
  opt_summed.build([summed])
  # Call update_step directly so that keras' own deduplication in apply_gradients
  # is bypassed: [2, 2, 0] with rows a, b, c must equal [2, 0] with a + b, c.
  opt_dup.update_step(tf.IndexedSlices(tf.constant(values), tf.constant([2, 2, 0]),
                                       tf.constant([4, 2])), dup)
  opt_summed.update_step(
      tf.IndexedSlices(tf.constant([values[0] + values[1], values[2]]),
                       tf.constant([2, 0]), tf.constant([4, 2])), summed)
  np.testing.assert_array_equal(dup.numpy(), summed.numpy())
  np.testing.assert_array_equal(opt_dup._velocities[0].numpy(),
                                opt_summed._velocities[0].numpy())
  # Gradient on row 2 is (1.5, 1.0): the first step moves it by lr sign(g).
  np.testing.assert_allclose(dup.numpy()[2], [0.9, 0.9], rtol=1e-5)


def test_dense_variables_follow_keras_adam_exactly():
  rng = np.random.default_rng(3)
  init = rng.normal(size=(4, 3)).astype(np.float32)
  a, b = tf.Variable(init), tf.Variable(init)
  lazy, dense = LazyAdam(LR, amsgrad=True), keras.optimizers.Adam(LR, amsgrad=True)
  for _ in range(3):
    grad = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    lazy.apply_gradients([(grad, a)])
    dense.apply_gradients([(grad, b)])
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(lazy._velocity_hats[0].numpy(),
                                dense._velocity_hats[0].numpy())


def _embedding_model():
  model = keras.Sequential([keras.layers.Embedding(10, 4), keras.layers.Dense(1)])
  model.build((None, 3))
  return model


def _train(model, opt, steps, jit=False):
  @tf.function(jit_compile=False)
  def step(ids, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((tf.reduce_sum(model(ids), axis=[1, 2]) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))

  opt.build(model.trainable_variables)
  opt.jit_compile = jit  # forces the XLA update path (GPU default) even on CPU
  rng = np.random.default_rng(4)
  for _ in range(steps):
    step(tf.constant(rng.integers(0, 6, size=(5, 3))), tf.constant(rng.normal(size=5),
                                                                   tf.float32))


@pytest.mark.parametrize("jit", [False, True])
def test_tf_function_with_embedding_and_dense_layers(jit):
  keras.utils.set_random_seed(0)
  model, reference = _embedding_model(), _embedding_model()
  reference.set_weights(model.get_weights())
  init_table = model.get_weights()[0]
  _train(model, LazyAdam(LR), steps=3, jit=jit)
  _train(reference, LazyAdam(LR), steps=3, jit=False)
  table = model.get_weights()[0]
  # Ids 6..9 never occur: their rows are bit-for-bit the initial ones.
  np.testing.assert_array_equal(table[6:], init_table[6:])
  assert not np.allclose(table[:6], init_table[:6])
  for got, want in zip(model.get_weights(), reference.get_weights()):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_checkpoint_round_trip_restores_slots(tmp_path):
  model = _embedding_model()
  opt = LazyAdam(LR)
  _train(model, opt, steps=2)
  path = tf.train.Checkpoint(model=model, optimizer=opt).save(str(tmp_path / "ckpt"))
  restored_model, restored_opt = _embedding_model(), LazyAdam(LR)
  restored_opt.build(restored_model.trainable_variables)
  tf.train.Checkpoint(model=restored_model, optimizer=restored_opt).restore(
      path).assert_consumed()
  assert int(restored_opt.iterations.numpy()) == 2
  for got, want in zip(restored_opt.variables, opt.variables):
    np.testing.assert_array_equal(got.numpy(), want.numpy())
  assert np.any(restored_opt._momentums[0].numpy() != 0)
  # One more identical step from both gives identical weights.
  _train(model, opt, steps=1)
  _train(restored_model, restored_opt, steps=1)
  for got, want in zip(restored_model.get_weights(), model.get_weights()):
    np.testing.assert_array_equal(got, want)


def test_config_round_trip_and_factory():
  opt = LazyAdam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6,
                 adaptive_epsilon=True, amsgrad=True, clipvalue=2.0)
  clone = LazyAdam.from_config(opt.get_config())
  assert clone.get_config() == opt.get_config()
  assert (clone.beta_1, clone.beta_2, clone.epsilon, clone.amsgrad,
          clone.adaptive_epsilon, clone.clipvalue) == (0.8, 0.99, 1e-6, True, True, 2.0)
  restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
  assert isinstance(restored, LazyAdam)
  assert np.isclose(float(restored.learning_rate), 0.01)

  made = get_optimizer("lazy_adam", 0.05, beta_1=0.5)
  assert isinstance(made, LazyAdam) and made.beta_1 == 0.5
  assert type(get_optimizer("adam", 0.1)) is keras.optimizers.Adam
  assert type(get_optimizer("sgd", 0.1)) is keras.optimizers.SGD
  with pytest.raises(ValueError, match="unknown optimizer 'adamw'.*lazy_adam"):
    get_optimizer("adamw", 0.1)
  with pytest.raises(ValueError, match="weight_decay"):
    LazyAdam(0.1, weight_decay=1e-4)
