"""ResumableDropout: masks from the global generator, none drawn when off."""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.attention.resumable_multi_head_attention import ResumableMultiHeadAttention
from dcg_tf.layers.resumable_dropout import ResumableDropout
from dcg_tf._keras import keras


def test_masks_are_the_global_generators_uniforms():
  x = tf.reshape(tf.range(1.0, 13.0), [3, 4])
  tf.random.set_global_generator(tf.random.Generator.from_seed(7))
  got = ResumableDropout(0.25)(x, training=True).numpy()
  # Reference: the same uniforms from an independent generator with the same
  # seed; kept entries are scaled by 1 / (1 - 0.25) = 4/3.
  u = tf.random.Generator.from_seed(7).uniform([3, 4]).numpy()
  expected = np.where(u >= 0.25, x.numpy() * 4.0 / 3.0, 0.0)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert 0 < (got == 0).sum() < 12


def test_restoring_the_generator_state_repeats_the_mask():
  """What a resumed run relies on: the mask is a function of the state."""
  generator = tf.random.Generator.from_seed(3)
  tf.random.set_global_generator(generator)
  layer = ResumableDropout(0.5)
  step = tf.function(lambda x: layer(x, training=True))
  x = tf.ones([64])
  step(x)
  saved = generator.state.numpy()
  second = step(x).numpy()
  third = step(x).numpy()
  assert not np.array_equal(second, third)   # the stream moves on
  generator.state.assign(saved)
  np.testing.assert_array_equal(step(x).numpy(), second)


def test_no_draw_at_rate_zero_or_at_inference():
  generator = tf.random.Generator.from_seed(1)
  tf.random.set_global_generator(generator)
  before = generator.state.numpy()
  x = tf.ones([2, 3])
  np.testing.assert_array_equal(ResumableDropout(0.0)(x, training=True).numpy(), x)
  np.testing.assert_array_equal(ResumableDropout(0.5)(x, training=False).numpy(), x)
  np.testing.assert_array_equal(generator.state.numpy(), before)


def test_config_round_trip_and_rate_check():
  layer = ResumableDropout(0.3, name="drop")
  clone = ResumableDropout.from_config(layer.get_config())
  assert clone.rate == 0.3 and clone.name == "drop"
  try:
    ResumableDropout(1.0)
  except ValueError as e:
    assert "rate must be in [0, 1)" in str(e)
  else:
    raise AssertionError("rate 1.0 accepted")


def test_multi_head_attention_keeps_keras_weights_and_drops_resumably():
  keras.utils.set_random_seed(0)
  x = tf.random.stateless_normal([2, 5, 8], seed=[1, 2])
  ours = ResumableMultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
  theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5)
  ours(x, x)
  theirs(x, x)
  assert [w.name for w in ours.weights] == [
      w.name.replace("multi_head_attention", "resumable_multi_head_attention")
      for w in theirs.weights]
  theirs.set_weights(ours.get_weights())
  np.testing.assert_allclose(ours(x, x).numpy(), theirs(x, x).numpy(), atol=1e-6)
  generator = tf.random.Generator.from_seed(9)
  tf.random.set_global_generator(generator)
  saved = generator.state.numpy()
  first = ours(x, x, training=True).numpy()
  assert not np.array_equal(generator.state.numpy(), saved)  # it drew
  generator.state.assign(saved)
  np.testing.assert_array_equal(ours(x, x, training=True).numpy(), first)
