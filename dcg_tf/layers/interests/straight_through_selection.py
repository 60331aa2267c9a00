"""Selection of the intention vector with a straight-through argmax (Eq. 9)."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.masking import mask_logits


@keras.utils.register_keras_serializable(package="dcg_tf")
class StraightThroughSelection(keras.layers.Layer):
  """Soft attention over intentions and its straight-through one-hot argmax.

  CLRec paper (Zhou et al., KDD'21), section 3.2, Eq. 9:
    m = MLP_4(sum_t p_t g(y_t)),
    w_h = softmax_h(<m, z_h> / (rho ||m|| ||z_h||)),
    h* = argmax_h w_h,
    tilde w_h = stop_gradient(I[h = h*] - w_h) + w_h    (straight-through [5]):
  the forward value of tilde w is one-hot at h*, its gradient is that of w.

  Candidates: an optional `candidates` mask restricts the softmax (and so
  h*) to the intentions marked True; the others get w_h = 0 and no gradient.
  The paper's Eq. 9 has no such mask (pass None). Eq. 9's selection exists
  because "it is possible to have sum_t p_{h|t} p_t -> 0 for some h": such an
  empty intention's vector z_h = MLP_3([~0; beta_h]) is the same for every
  user. `MultiCLRecUserTower(select_occupied_only=True)` passes the
  intentions that hold at least one of the user's clicks: with linear MLP_3
  and MLP_4 and no mask, the learned selection collapsed onto one empty
  intention for all users (a popularity vector: on S3-Rec Beauty every user
  selected the same empty intention, 53-108 distinct items served,
  HR@50 < 0.006).

  Args:
    output_dim: width D of m and of the intention vectors z_h.
    hidden_units: widths of MLP_4's hidden layers before Dense(output_dim).
    activation: activation of the hidden layers.
    temperature: rho.

  Call:
    pooled: sum_t p_t g(y_t), float [B, d].
    intentions: z_h, float [B, H, D].
    candidates: optional bool [B, H], True for the candidate intentions; a
      row with no candidate falls back to all H.
    Returns a dict: "weights" w [B, H], "straight_through" tilde w [B, H],
    "selected" h* int64 [B].

  Example:
    >>> select = StraightThroughSelection(output_dim=64)
    >>> out = select(pooled, z)      # out["straight_through"] is one-hot
  """

  def __init__(self, output_dim, hidden_units=(), activation="relu",
               temperature=0.07, **kwargs):
    super().__init__(**kwargs)
    if temperature <= 0:
      raise ValueError("StraightThroughSelection: temperature must be > 0, "
                       "got %r" % (temperature,))
    self.output_dim = int(output_dim)
    self.hidden_units = [int(u) for u in hidden_units]
    self.activation = activation
    self.temperature = float(temperature)
    self.hidden_layers = [keras.layers.Dense(u, activation=activation,
                                             name="hidden_%d" % i)
                          for i, u in enumerate(self.hidden_units)]
    self.query_layer = keras.layers.Dense(self.output_dim, name="query")

  def call(self, pooled, intentions, candidates=None):
    m = pooled
    for layer in self.hidden_layers:
      m = layer(m)                                                # [B, U]
    m = self.query_layer(m)                                       # [B, D]
    m = tf.math.l2_normalize(m, axis=-1)                          # [B, D]
    z = tf.math.l2_normalize(intentions, axis=-1)                 # [B, H, D]
    logits = tf.einsum("bd,bhd->bh", m, z) / self.temperature     # [B, H]
    if candidates is not None:
      candidates = tf.cast(candidates, tf.bool)
      candidates |= ~tf.reduce_any(candidates, axis=-1, keepdims=True)  # [B, H]
      logits = mask_logits(logits, candidates)                    # [B, H]
    weights = tf.nn.softmax(logits, axis=-1)                      # [B, H]
    selected = tf.argmax(weights, axis=-1)                        # [B]
    one_hot = tf.one_hot(selected, tf.shape(weights)[-1],
                         dtype=weights.dtype)                     # [B, H]
    straight_through = tf.stop_gradient(one_hot - weights) + weights
    return {"weights": weights, "straight_through": straight_through,
            "selected": selected}

  def get_config(self):
    config = super().get_config()
    config.update(output_dim=self.output_dim, hidden_units=self.hidden_units,
                  activation=self.activation, temperature=self.temperature)
    return config
