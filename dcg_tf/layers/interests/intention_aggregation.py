"""Intention vectors of Multi-CLRec with shared bias vectors (Eq. 8)."""

import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class IntentionAggregation(keras.layers.Layer):
  """z_h = MLP_3([z'_h; beta_h]), z'_h = sum_t p_{h|t} p_t g(y_t).

  CLRec paper (Zhou et al., KDD'21), section 3.2, Eq. 8. The bias vectors
  beta_h in R^d (d = the item-embedding width) are trainable and shared by all
  users; MLP_3 is shared by all intentions.

  Args:
    num_intentions: H.
    output_dim: width of z_h (the user/item embedding width).
    hidden_units: widths of MLP_3's hidden layers before Dense(output_dim).
    activation: activation of the hidden layers.
    bias_initializer: initializer of beta [H, d].

  Call:
    items: g(y_t), float [B, L, d].
    importance: p_t, float [B, L] (zero at padding).
    routing: p_{h|t}, float [B, L, H].
    Returns z, float [B, H, output_dim].

  Example:
    >>> aggregation = IntentionAggregation(num_intentions=16, output_dim=64)
    >>> z = aggregation(g, p_t, p_ht)           # [B, 16, 64]
  """

  def __init__(self, num_intentions=16, output_dim=64, hidden_units=(),
               activation="relu", bias_initializer="random_normal", **kwargs):
    super().__init__(**kwargs)
    self.num_intentions = int(num_intentions)
    self.output_dim = int(output_dim)
    self.hidden_units = [int(u) for u in hidden_units]
    self.activation = activation
    self.bias_initializer = keras.initializers.get(bias_initializer)
    self.hidden_layers = [keras.layers.Dense(u, activation=activation,
                                             name="hidden_%d" % i)
                          for i, u in enumerate(self.hidden_units)]
    self.output_layer = keras.layers.Dense(self.output_dim, name="output")

  def build(self, items_shape):
    # Keras 2 passes the shape of the first call argument only: g(y_t).
    dim = int(items_shape[-1])
    self.intention_bias = self.add_weight(
        name="intention_bias", shape=(self.num_intentions, dim),
        initializer=self.bias_initializer, trainable=True)        # beta [H, d]
    super().build(items_shape)

  def call(self, items, importance, routing):
    if routing.shape[-1] is not None and routing.shape[-1] != self.num_intentions:
      raise ValueError("IntentionAggregation: routing has %d intentions, the "
                       "layer was built for %d" % (routing.shape[-1],
                                                   self.num_intentions))
    # z'_h = sum_t p_{h|t} p_t g(y_t)
    pooled = tf.einsum("blh,bl,bld->bhd", routing, importance, items)  # [B, H, d]
    bias = tf.broadcast_to(self.intention_bias[None],
                           tf.shape(pooled))                      # [B, H, d]
    h = tf.concat([pooled, bias], axis=-1)                        # [B, H, 2d]
    for layer in self.hidden_layers:
      h = layer(h)                                                # [B, H, U]
    return self.output_layer(h)                                   # [B, H, D]

  def get_config(self):
    config = super().get_config()
    config.update(
        num_intentions=self.num_intentions, output_dim=self.output_dim,
        hidden_units=self.hidden_units, activation=self.activation,
        bias_initializer=keras.initializers.serialize(self.bias_initializer))
    return config
