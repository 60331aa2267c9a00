"""FieldMasking: NumPy reference, broadcasting, gradient to the defaults, contract."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.augmentations.field_masking import FieldMasking
from tests.layer_test_util import run_layer_test


def _fields(shape=(3, 3, 4)):
  return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def test_masked_fields_are_replaced_by_their_defaults():
  layer = FieldMasking(num_fields=3, dim=4)
  fields = _fields()
  mask = np.array([[False, True, False], [True, True, False], [False] * 3])
  got = layer(tf.constant(fields), tf.constant(mask)).numpy()
  defaults = layer.default_embeddings.numpy()                      # [3, 4]
  expected = np.where(mask[..., None], defaults[None], fields)    # [3, 3, 4]
  np.testing.assert_array_equal(got, expected)
  # One mask for the whole batch broadcasts: field 2 masked in every row.
  got = layer(tf.constant(fields), tf.constant([False, False, True])).numpy()
  np.testing.assert_array_equal(got[:, :2], fields[:, :2])
  np.testing.assert_array_equal(got[:, 2], np.tile(defaults[2], (3, 1)))


def test_gradient_reaches_the_defaults_of_masked_fields_only():
  layer = FieldMasking(num_fields=3, dim=4)
  fields = tf.constant(_fields())
  mask = np.array([[False, True, False], [True, True, False], [False] * 3])
  weights = np.random.default_rng(1).normal(size=(3, 3, 4)).astype(np.float32)
  layer(fields, tf.constant(mask))  # builds the defaults
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(fields)
    loss = tf.reduce_sum(layer(fields, tf.constant(mask)) * weights)
  grad = tape.gradient(loss, layer.default_embeddings).numpy()     # [3, 4]
  # d loss / d default_f = sum over the rows b where field f is masked of
  # weights[b, f]: field 0 masked in row 1, field 1 in rows 0 and 1, field 2
  # nowhere (its gradient is exactly zero).
  np.testing.assert_allclose(grad[0], weights[1, 0], atol=1e-6)
  np.testing.assert_allclose(grad[1], weights[0, 1] + weights[1, 1], atol=1e-6)
  np.testing.assert_array_equal(grad[2], np.zeros(4))
  # The masked fields themselves get no gradient, the others all of it.
  field_grad = tape.gradient(loss, fields).numpy()
  np.testing.assert_array_equal(field_grad, np.where(mask[..., None], 0, weights))


def test_wrong_number_of_fields_is_named():
  with pytest.raises(ValueError, match="fields have 2 rows.*num_fields=3"):
    FieldMasking(3, 4)(tf.zeros([1, 2, 4]), tf.constant([True, False]))


def test_layer_contract():
  run_layer_test(
      FieldMasking, dict(num_fields=3, dim=4),
      {"fields": tf.constant(_fields()),
       "mask": tf.constant([[True, False, False], [False, True, True],
                            [False, False, True]])},
      (3, 3, 4),
      call_fn=lambda layer, x, training=False: layer(x["fields"], x["mask"]))
