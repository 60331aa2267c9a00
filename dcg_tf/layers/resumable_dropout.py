"""Dropout whose masks a resumed run draws again: the checkpointed generator."""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class ResumableDropout(keras.layers.Layer):
  """Inverted dropout drawing its masks from TF's global `tf.random.Generator`.

  Keras `Dropout` draws with stateful TF1 random ops whose state lives in the
  op kernels: it is in no checkpoint, so a training run killed and resumed
  drops other units than the uninterrupted run did and ends with other
  weights. This layer draws `u ~ U[0, 1)` from
  `tf.random.get_global_generator()`, a `tf.random.Generator` whose state is a
  variable: `dcg_tf.training.trainer.Trainer` seeds it from the run's seed and
  saves and restores it with every checkpoint, so a resumed run continues the
  same stream of masks. Outputs are `x / (1 - rate)` where `u >= rate` and 0
  elsewhere (`tf.nn.dropout`; Srivastava et al., JMLR 2014, section 10, with
  the rescaling at training time). At `rate == 0` or with `training=False`
  it returns its input and draws nothing, so a model without dropout
  consumes no random numbers and has the same checkpoints as before; the
  layer holds no variables either way.

  The generator is read when the call is traced: a `tf.function` traced
  before `tf.random.set_global_generator` keeps drawing from the old one.

  Args:
    rate: probability of dropping an element, in [0, 1).

  Call:
    x: float tensor of any shape; training: drop only when True.
    Returns x's shape and dtype.

  Example:
    >>> tf.random.set_global_generator(tf.random.Generator.from_seed(0))
    >>> ResumableDropout(0.2)(tf.ones([2, 3]), training=True)  # entries 0 or 1.25
  """

  def __init__(self, rate, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= float(rate) < 1.0:
      raise ValueError("ResumableDropout %r: rate must be in [0, 1), got %r"
                       % (self.name, rate))
    self.rate = float(rate)

  def call(self, x, training=False):
    if training is None or training is False or self.rate == 0.0:
      return x

    def dropped():
      uniform = tf.random.get_global_generator().uniform(
          tf.shape(x), dtype=x.dtype)                                # x's shape
      return tf.where(uniform >= self.rate, x / (1.0 - self.rate),
                      tf.zeros_like(x))

    # `training` is a Python bool from the models, a tensor under Keras fit.
    return tf.__internal__.smart_cond.smart_cond(training, dropped, lambda: x)

  def get_config(self):
    config = super().get_config()
    config.update(rate=self.rate)
    return config
