"""Optimizers: row-wise (lazy) Adam/Adagrad for embedding tables, and a factory.

`get_optimizer` is the one place the trainer turns an optimizer name into an
object; layers and models never choose their optimizer.
"""

from dcg_tf._keras import keras
from dcg_tf.optimizers.lazy_adagrad import LazyAdagrad
from dcg_tf.optimizers.lazy_adam import LazyAdam

_OPTIMIZERS = {
    "lazy_adam": LazyAdam,
    "lazy_adagrad": LazyAdagrad,
    "adam": keras.optimizers.Adam,
    "adagrad": keras.optimizers.Adagrad,
    "sgd": keras.optimizers.SGD,
}


def get_optimizer(name, learning_rate, **kwargs):
  """Returns a new optimizer by name.

  Args:
    name: one of "lazy_adam", "lazy_adagrad" (row-wise updates for embedding
      tables, cost independent of the vocabulary), "adam", "adagrad", "sgd"
      (the tf_keras optimizers; "adam" updates every row of every table per step).
    learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`.
    **kwargs: passed to the optimizer (e.g. `beta_1`, `epsilon`, `clipnorm`).

  Raises:
    ValueError: for an unknown name.
  """
  if name not in _OPTIMIZERS:
    raise ValueError("unknown optimizer %r; choose one of: %s"
                     % (name, ", ".join(sorted(_OPTIMIZERS))))
  return _OPTIMIZERS[name](learning_rate=learning_rate, **kwargs)


__all__ = ["LazyAdam", "LazyAdagrad", "get_optimizer"]
