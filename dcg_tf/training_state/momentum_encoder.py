"""Momentum (MoCo) copy of a tower: a key encoder that follows the online one.

MoCo (He et al., CVPR'20), Eq. 2: theta_k <- m theta_k + (1 - m) theta_q.
CLRec (Zhou et al., KDD'21), Table 7 and appendix B.4: the cached queue may be
filled by a momentum key encoder, m in {0.9, 0.99, 0.999, 0.9999}.
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.nested_config import NestedLayerConfig


def _ordered_weights(layer):
  """Weights in creation order per sublayer, whatever the `trainable` flags.

  (`layer.weights` lists trainable weights first, and the key copy is frozen,
  so its order would differ from the online tower's.)
  """
  # pylint: disable=protected-access
  seen, ordered = set(), []
  for sublayer in layer._flatten_layers(include_self=True, recursive=True):
    for weight in sublayer._trainable_weights + sublayer._non_trainable_weights:
      if id(weight) not in seen:
        seen.add(id(weight))
        ordered.append(weight)
  return ordered


@keras.utils.register_keras_serializable(package="dcg_tf")
class MomentumEncoder(NestedLayerConfig, keras.layers.Layer):
  """A frozen copy of `online` whose weights track it by exponential averaging.

  The copy has no trainable weights and its outputs carry no gradient; only
  `update()` (called by the training model after the optimizer step, in
  `after_train_step`) changes it. Its weights and an `initialized` flag are
  checkpointed with the model that owns it. The online tower is referenced but
  not tracked, so its weights are neither duplicated in this layer's weights
  nor in checkpoints.

  On the first call the copy is built on the same inputs and set equal to the
  online tower (MoCo's initialisation); this happens once, also inside a
  `tf.function`, because it is guarded by the `initialized` variable.

  Args:
    online: the online tower (a Keras layer); the copy is
      `keras.layers.deserialize(keras.layers.serialize(online))` unless
      `key_factory` is given.
    momentum: m in [0, 1).
    key_factory: optional zero-argument callable returning a fresh tower of the
      same architecture as `online` (its weights must match `online.weights`
      one to one).

  Call args:
    inputs: whatever `online` takes.

  Returns:
    `stop_gradient(key_tower(inputs))`.

  Example:
    >>> keys = MomentumEncoder(item_tower, momentum=0.999)
    >>> k = keys(item_ids)          # [B, D], no gradient
    >>> keys.update()               # after the optimizer step
  """

  NESTED_LAYERS = ("online",)

  def __init__(self, online, momentum, key_factory=None, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= float(momentum) < 1.0:
      raise ValueError("MomentumEncoder: momentum must be in [0, 1), got %r"
                       % (momentum,))
    self.momentum = float(momentum)
    self.key_factory = key_factory
    # A closure is not tracked by Keras/tf.Module, so `online` stays out of
    # this layer's weights and checkpoint.
    self._online = lambda: online
    self.key_tower = (key_factory() if key_factory is not None
                      else keras.layers.deserialize(keras.layers.serialize(online)))
    self.key_tower.trainable = False
    self._towers_called = False
    self.initialized = self.add_weight(
        name="initialized", shape=(), dtype=tf.bool, initializer="zeros",
        trainable=False)

  @property
  def online(self):
    return self._online()

  def _pairs(self):
    online_weights = _ordered_weights(self.online)
    key_weights = _ordered_weights(self.key_tower)
    if len(online_weights) != len(key_weights):
      raise ValueError(
          "MomentumEncoder: the key copy has %d weights but the online tower %d"
          % (len(key_weights), len(online_weights)))
    for o, k in zip(online_weights, key_weights):
      if o.shape != k.shape or o.dtype != k.dtype:
        raise ValueError("MomentumEncoder: weight %s %s/%s does not match %s %s/%s"
                         % (k.name, k.shape, k.dtype.name, o.name, o.shape,
                            o.dtype.name))
    return list(zip(online_weights, key_weights))

  def _copy(self):
    ops = [k.assign(o) for o, k in self._pairs()]
    with tf.control_dependencies(ops):
      return self.initialized.assign(True)

  def _maybe_initialize(self):
    def copy():
      with tf.control_dependencies([self._copy()]):
        return tf.constant(True)
    return tf.cond(self.initialized, lambda: tf.constant(False), copy)

  def call(self, inputs, training=False):
    if not self._towers_called:
      # `built` is unreliable after deserialisation: one forward pass of each
      # tower (at the first call or trace) creates whatever weights it lacks.
      self.online(inputs)
      self.key_tower(inputs)
      self._towers_called = True
    with tf.control_dependencies([self._maybe_initialize()]):
      keys = self.key_tower(inputs, training=False)
    return tf.nest.map_structure(tf.stop_gradient, keys)

  def update(self):
    """theta_k <- m theta_k + (1 - m) theta_q; other weights are copied.

    Only trainable float weights are averaged; non-trainable ones (catalog
    arrays, statistics) are copied. Returns the assigned values.
    """
    ops = []
    for o, k in self._pairs():
      if o.dtype.is_floating and o.trainable:
        ops.append(k.assign(self.momentum * k + (1.0 - self.momentum) * o))
      else:
        ops.append(k.assign(o))
    return ops

  def get_config(self):
    config = super().get_config()
    config.update(self.nested_layer_config(),
                  momentum=self.momentum)
    return config
