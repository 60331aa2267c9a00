"""Prototype-based intention routing of Multi-CLRec (Eq. 7)."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.fan_out import fan_out


@keras.utils.register_keras_serializable(package="dcg_tf")
class IntentionRouting(keras.layers.Layer):
  """Routes category embeddings to H intention prototypes by cosine softmax.

  CLRec paper (Zhou et al., KDD'21), section 3.2, Eq. 7:
    p'_{h|t} = <mu_h, c_t> / (rho ||mu_h|| ||c_t||),
    p_{h|t} = softmax_h(p'_{h|t}),
  with trainable prototypes mu_h, h = 1..H, and rho = 0.07.

  Args:
    num_intentions: H, the number of prototypes (16 on public data, appendix A).
    temperature: rho in Eq. 7.
    prototype_initializer: initializer of the prototypes [H, d] ("random_normal"
      so that they spread over the sphere, appendix B.2).

  Call:
    categories: category embeddings c_t, float [..., d].
    Returns p_{h|t}, float [..., H].

  Example:
    >>> routing = IntentionRouting(num_intentions=16)
    >>> p = routing(tf.random.normal([4, 50, 32]))   # [4, 50, 16], rows sum to 1
  """

  def __init__(self, num_intentions=16, temperature=0.07,
               prototype_initializer="random_normal", **kwargs):
    super().__init__(**kwargs)
    if num_intentions < 1:
      raise ValueError("IntentionRouting: num_intentions must be >= 1, got %r"
                       % (num_intentions,))
    if temperature <= 0:
      raise ValueError("IntentionRouting: temperature must be > 0, got %r"
                       % (temperature,))
    self.num_intentions = int(num_intentions)
    self.temperature = float(temperature)
    self.prototype_initializer = keras.initializers.get(prototype_initializer)

  def build(self, input_shape):
    dim = int(input_shape[-1])
    self.prototypes = self.add_weight(
        name="prototypes", shape=(self.num_intentions, dim),
        initializer=self.prototype_initializer, trainable=True)   # mu [H, d]
    super().build(input_shape)

  def logits(self, categories):
    """p'_{h|t} of Eq. 7: cosine(mu_h, c_t) / rho, float [..., H]."""
    c = tf.math.l2_normalize(categories, axis=-1)                 # [..., d]
    # The model calls this on history and targets: fan_out ends each call's
    # gradient into mu with a reduction, so Grappler cannot merge them into
    # one AddN summed in run-time order (dcg_tf.layers.fan_out).
    (prototypes,) = fan_out(self.prototypes, 1)                   # [H, d]
    mu = tf.math.l2_normalize(prototypes, axis=-1)                # [H, d]
    return tf.einsum("...d,hd->...h", c, mu) / self.temperature   # [..., H]

  def call(self, categories):
    return tf.nn.softmax(self.logits(categories), axis=-1)        # [..., H]

  def get_config(self):
    config = super().get_config()
    config.update(
        num_intentions=self.num_intentions, temperature=self.temperature,
        prototype_initializer=keras.initializers.serialize(
            self.prototype_initializer))
    return config
