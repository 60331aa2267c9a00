"""ElementDropout: reproducible from (seed, step), rate, rescaling, no weights."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.augmentations.element_dropout import ElementDropout


def test_reproducible_from_seed_and_step_and_different_for_another_step():
  drop = ElementDropout(0.5)
  x = tf.ones([8, 3, 16])
  run_seed = 5
  a = drop(x, seed=tf.constant([run_seed, 100])).numpy()
  b = drop(x, seed=tf.constant([run_seed, 100])).numpy()  # e.g. after a resume
  c = drop(x, seed=tf.constant([run_seed, 101])).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # In a traced step whose step counter is a variable, as in train_step.
  step = tf.Variable(100, dtype=tf.int64)
  traced = tf.function(
      lambda: drop(x, seed=tf.stack([tf.constant(run_seed, tf.int64), step])))
  np.testing.assert_array_equal(traced().numpy(), a)
  step.assign(101)
  np.testing.assert_array_equal(traced().numpy(), c)


def test_kept_elements_are_rescaled_and_the_rate_holds():
  x = np.full((100, 200), 3.0, np.float32)
  got = ElementDropout(0.5)(tf.constant(x), seed=tf.constant([0, 1])).numpy()
  # rate 0.5: a kept 3 becomes 3 / (1 - 0.5) = 6 exactly; a dropped one 0.
  assert set(np.unique(got)) == {0.0, 6.0}
  # 20,000 draws: dropped fraction 0.5 within 6 standard deviations (0.0035 each).
  assert abs(np.mean(got == 0.0) - 0.5) < 0.021
  plain = ElementDropout(0.25, rescale=False)(
      tf.constant(x), seed=tf.constant([0, 1])).numpy()
  assert set(np.unique(plain)) == {0.0, 3.0}
  assert abs(np.mean(plain == 0.0) - 0.25) < 0.02
  np.testing.assert_array_equal(
      ElementDropout(0.0)(tf.constant(x), seed=tf.constant([0, 1])).numpy(), x)


def test_validation_and_config():
  with pytest.raises(ValueError, match="rate must be in \\[0, 1\\)"):
    ElementDropout(-0.1)
  drop = ElementDropout(0.3, rescale=False, name="elements")
  clone = ElementDropout.from_config(drop.get_config())
  assert clone.rate == 0.3 and not clone.rescale and not clone.weights
  x, seed = tf.ones([4, 5]), tf.constant([2, 9])
  np.testing.assert_array_equal(clone(x, seed=seed).numpy(),
                                drop(x, seed=seed).numpy())
