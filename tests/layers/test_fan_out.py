"""fan_out: identity copies whose gradients are summed in a fixed order."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.fan_out import fan_out


def _addn_input_counts(graph):
  return [len([i for i in op.inputs]) for op in graph.get_operations()
          if op.type == "AddN"]


def test_copies_are_x_and_the_gradient_is_the_sum_of_theirs():
  x = tf.Variable([1.0, 2.0])
  with tf.GradientTape() as tape:
    a, b, c = fan_out(x, 3)
    loss = tf.reduce_sum(2.0 * a) + tf.reduce_sum(b * b) + tf.reduce_sum(3.0 * c)
  # d/dx = 2 + 2x + 3 = [7, 9].
  np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [7.0, 9.0])
  for copy in (a, b, c):
    np.testing.assert_array_equal(copy.numpy(), x.numpy())


def test_a_copy_without_gradient_counts_as_zeros():
  x = tf.Variable([[1.0, -1.0]])
  with tf.GradientTape() as tape:
    a, _ = fan_out(x, 2)
    loss = tf.reduce_sum(4.0 * a)
  np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [[4.0, 4.0]])


def test_the_traced_gradient_has_no_addn_of_more_than_two_inputs():
  # Grappler's memory optimizer rewrites an AddN of more than two inputs into
  # AssignAdds in run-time order (dcg_tf.layers.fan_out): a tensor used three
  # times gets such an AddN from the tape, its fan_out copies do not.
  x = tf.Variable(tf.ones([4, 3]))

  def loss_fn(split):
    copies = fan_out(x, 3) if split else [x, x, x]
    return tf.reduce_sum(tf.stack([tf.reduce_sum(tf.sin(c) * k)
                                   for k, c in enumerate(copies, 1)]))

  for split in (False, True):
    @tf.function
    def grad(split=split):
      with tf.GradientTape() as tape:
        loss = loss_fn(split)
      return tape.gradient(loss, x)
    graph = grad.get_concrete_function().graph
    assert (max(_addn_input_counts(graph), default=0) > 2) == (not split)
    # cos(1) * (1 + 2 + 3) in every entry.
    np.testing.assert_allclose(grad().numpy(), np.full([4, 3], 6 * np.cos(1.0)),
                               rtol=1e-6)


def test_rejects_no_copies():
  with pytest.raises(ValueError, match="n must be >= 1"):
    fan_out(tf.ones([2]), 0)
