"""Adagrad with row-wise ("lazy") updates for sparse gradients of embedding tables.

Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (JMLR 2011), diagonal update (their Eq. 1 with
diag(G_t)), in the form keras implements:

  G_t = G_{t-1} + g_t^2
  theta_t = theta_{t-1} - lr g_t / sqrt(G_t + eps)

A row with zero gradient keeps G and theta exactly, so the row-wise update is
not an approximation: it equals dense Adagrad on every row, at every step.
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.optimizers.lazy_adam import check_no_weight_decay
from dcg_tf.optimizers.lazy_adam import deduplicate


@keras.utils.register_keras_serializable(package="dcg_tf")
class LazyAdagrad(keras.optimizers.Adagrad):
  """Adagrad whose sparse updates read and write only the rows in the batch.

  For an `IndexedSlices` gradient the duplicated indices are summed, the rows of
  the variable and of the accumulator are gathered, updated, and written back
  with `scatter_update`; dense gradients follow `keras.optimizers.Adagrad`.

  Args:
    learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
    initial_accumulator_value: starting value of G (must be >= 0).
    epsilon: added to G under the square root.
    **kwargs: the base optimizer's arguments (`clipnorm`, `clipvalue`,
      `global_clipnorm`, `use_ema`, `jit_compile`, `name`); `weight_decay` is not
      supported (it would touch every row each step).

  Example:
    >>> opt = LazyAdagrad(learning_rate=0.05)
    >>> opt.apply_gradients([(tape.gradient(loss, table), table)])
  """

  def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1,
               epsilon=1e-7, name="LazyAdagrad", **kwargs):
    check_no_weight_decay(kwargs, name)
    if initial_accumulator_value < 0:
      raise ValueError("%s: initial_accumulator_value must be >= 0, got %r"
                       % (name, initial_accumulator_value))
    super().__init__(learning_rate=learning_rate,
                     initial_accumulator_value=initial_accumulator_value,
                     epsilon=epsilon, name=name, **kwargs)

  def update_step(self, grad, variable):
    if not isinstance(grad, tf.IndexedSlices):
      return super().update_step(grad, variable)
    lr = tf.cast(self.learning_rate, variable.dtype)
    accumulator = self._accumulators[self._index_dict[self._var_key(variable)]]
    indices, values = deduplicate(grad)                          # [U], [U, ...]
    acc_rows = tf.gather(accumulator, indices) + values * values  # [U, ...]
    accumulator.scatter_update(tf.IndexedSlices(acc_rows, indices))
    var_rows = tf.gather(variable, indices)                       # [U, ...]
    var_rows = var_rows - lr * values / tf.sqrt(acc_rows + self.epsilon)
    variable.scatter_update(tf.IndexedSlices(var_rows, indices))

  def _deduplicate_sparse_grad(self, grads):
    # update_step sums duplicates itself (`deduplicate`); skip keras' second pass.
    return grads
