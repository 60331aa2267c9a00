"""Adam with row-wise ("lazy") updates for sparse gradients of embedding tables.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR'15), Algorithm 1,
in the form of its section 2 (bias correction folded into the step size):

  m_t = b1 m_{t-1} + (1 - b1) g_t
  v_t = b2 v_{t-1} + (1 - b2) g_t^2
  alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t)
  theta_t = theta_{t-1} - alpha_t m_t / (sqrt(v_t) + eps)

The lazy variant (tensorflow-addons `LazyAdam`) applies these equations only to
the rows present in a `tf.IndexedSlices` gradient, with `t` the global step
(`iterations + 1`); rows absent from the batch keep their value, first moment
and second moment unchanged. The cost of one step therefore depends on the batch,
not on the vocabulary. Dense gradients follow `keras.optimizers.Adam` exactly.
"""

import tensorflow as tf

from dcg_tf._keras import keras


def deduplicate(gradient):
  """Sums the rows of an `IndexedSlices` gradient that share an index.

  Returns (unique indices [U], summed values [U, ...]). `scatter_update` with
  repeated indices keeps an arbitrary one of them, so this must come first.
  """
  indices, positions = tf.unique(gradient.indices)                     # [U], [N]
  values = tf.math.unsorted_segment_sum(
      gradient.values, positions, tf.shape(indices)[0])               # [U, ...]
  return indices, values


def check_no_weight_decay(kwargs, name):
  if kwargs.get("weight_decay") is not None:
    raise ValueError(
        "%s does not support weight_decay=%r: keras decays every row of every "
        "table at each step (O(vocabulary)); add an L2 term on the gathered rows "
        "to the loss instead" % (name, kwargs["weight_decay"]))


@keras.utils.register_keras_serializable(package="dcg_tf")
class LazyAdam(keras.optimizers.Adam):
  """Adam whose sparse updates read and write only the rows in the batch.

  For an `IndexedSlices` gradient (from `tf.gather` / `keras.layers.Embedding`),
  the duplicated indices are summed, the rows of the variable and of the slots
  `m`, `v` (and `vhat` with `amsgrad`) are gathered, Adam is applied to them, and
  they are written back with `scatter_update`. For a dense gradient the update is
  the parent's, unchanged. Bias correction uses the global step, as in
  tensorflow-addons' `LazyAdam`, so a row touched for the first time at step `t`
  gets `alpha_t`, not `alpha_1`.

  Lazy and dense Adam agree on every row touched at every step so far (e.g. on
  the first step, where dense Adam's untouched rows have `m = v = 0` and do not
  move); they differ afterwards, where dense Adam keeps moving absent rows with
  their decaying momentum.

  Args:
    learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
    beta_1: decay of the first moment.
    beta_2: decay of the second moment.
    epsilon: added to `sqrt(v)` in the denominator.
    adaptive_epsilon: scale epsilon by `sqrt(1 - b2^t)` as the parent does.
    amsgrad: use the maximum of past second moments (Reddi et al., ICLR'18).
    **kwargs: the base optimizer's arguments (`clipnorm`, `clipvalue`,
      `global_clipnorm`, `use_ema`, `jit_compile`, `name`). `weight_decay` is not
      supported: the parent decays every row of every table each step, which is
      the O(vocabulary) cost this class exists to avoid.

  Example:
    >>> table = tf.Variable(tf.zeros([1_000_000, 64]))
    >>> opt = LazyAdam(learning_rate=1e-3)
    >>> with tf.GradientTape() as tape:
    ...   loss = tf.reduce_sum(tf.gather(table, [3, 7, 3]))
    >>> opt.apply_gradients([(tape.gradient(loss, table), table)])  # rows 3, 7
  """

  def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
               adaptive_epsilon=False, amsgrad=False, name="LazyAdam", **kwargs):
    check_no_weight_decay(kwargs, name)
    super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                     epsilon=epsilon, adaptive_epsilon=adaptive_epsilon,
                     amsgrad=amsgrad, name=name, **kwargs)

  def update_step(self, gradient, variable):
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    lr = tf.cast(self.learning_rate, dtype)
    local_step = tf.cast(self.iterations + 1, dtype)  # global step t
    beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), local_step)
    beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), local_step)
    alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    if self.adaptive_epsilon:
      epsilon_hat = self.epsilon * tf.sqrt(1 - beta_2_power)
    else:
      epsilon_hat = self.epsilon

    index = self._index_dict[self._var_key(variable)]
    m = self._momentums[index]
    v = self._velocities[index]
    indices, grad = deduplicate(gradient)                      # [U], [U, ...]
    m_rows = tf.gather(m, indices)                             # [U, ...]
    v_rows = tf.gather(v, indices)                             # [U, ...]
    # Same expressions as the parent's dense branch, restricted to the rows.
    m_rows = m_rows + (grad - m_rows) * (1 - self.beta_1)
    v_rows = v_rows + (tf.square(grad) - v_rows) * (1 - self.beta_2)
    m.scatter_update(tf.IndexedSlices(m_rows, indices))
    v.scatter_update(tf.IndexedSlices(v_rows, indices))
    if self.amsgrad:
      v_hat = self._velocity_hats[index]
      v_rows = tf.maximum(tf.gather(v_hat, indices), v_rows)  # [U, ...]
      v_hat.scatter_update(tf.IndexedSlices(v_rows, indices))
    var_rows = tf.gather(variable, indices)                    # [U, ...]
    var_rows = var_rows - (m_rows * alpha) / (tf.sqrt(v_rows) + epsilon_hat)
    variable.scatter_update(tf.IndexedSlices(var_rows, indices))

  def _deduplicate_sparse_grad(self, grads):
    # update_step sums duplicates itself (`deduplicate`); skip keras' second pass.
    return grads

  def get_config(self):
    config = super().get_config()
    config["adaptive_epsilon"] = self.adaptive_epsilon
    return config
