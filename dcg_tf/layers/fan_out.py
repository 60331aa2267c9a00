"""Copies of a tensor whose gradients are summed in a fixed order.

Why: when a tensor feeds more than two ops, the gradient tape sums their
gradients with one `AddN`. Inside a `tf.function`, Grappler's memory
optimizer may rewrite such an `AddN` (more than two inputs, a fully known
shape; which ones depends on its memory estimates) into a temporary variable
that `AssignAdd` ops update as each input becomes ready, so the order of the
float additions, and the last bits of the sum, depend on the run-time schedule:
two processes training the same model drift apart (Multi-CLRec, issue 10,
docs/results/clrec.md). Eager execution never rewrites, so it does not show.

`fan_out(x, n)` gives each consumer its own copy; the gradient of `x` is then
`reduce_sum(stack(g_1..g_n), 0)`, one reduction that neither the memory
optimizer nor the arithmetic optimizer (which merges trees of adds into one
`AddN`) rewrites. The forward values are `x` itself (bitwise). A leaf module, usable
by layers, towers and losses alike (tests/test_layout.py).
"""

import tensorflow as tf


def fan_out(x, n):
  """n identity copies of `x` with a deterministic gradient sum.

  Args:
    x: a float tensor.
    n: number of copies (>= 1).

  Returns:
    a list of n tensors equal to `x`; the gradient of `x` is the sum of the
    copies' gradients, added in the order of the list (a copy that receives
    no gradient counts as zeros).

  Example:
    >>> a, b, c = fan_out(z, 3)   # one copy per consumer of z
  """
  if n < 1:
    raise ValueError("fan_out: n must be >= 1, got %r" % (n,))

  @tf.custom_gradient
  def _copies(value):
    def grad(*upstream):
      upstream = [tf.zeros_like(value) if g is None else
                  tf.convert_to_tensor(g) for g in upstream]
      return tf.reduce_sum(tf.stack(upstream, axis=0), axis=0)
    return [tf.identity(value) for _ in range(n)], grad

  return _copies(x)
