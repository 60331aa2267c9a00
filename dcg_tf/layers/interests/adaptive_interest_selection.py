"""PCL-AISL's Adaptive Interest Selection Layer: how many interests a user gets."""

import tensorflow as tf

from dcg_tf._keras import keras

RELAXATIONS = ("softmax", "cumulative")


@keras.utils.register_keras_serializable(package="dcg_tf")
class AdaptiveInterestSelection(keras.layers.Layer):
  """K_u in 1..K from user activity; a multi-hot mask of the first K_u slots.

  PCL-AISL (Li et al., CIKM'22), section 2.2:
    h_0 = [f_b; f_a]  (demographic and activity features, concatenated)
    h_l = sigma(W_l^T h_{l-1} + b_l), l = 1..L,  h_L in R^K        (Eq. 2)
    p_u^k = softmax_k(h_L^k)                                       (Eq. 3)
    K_u = argmax_k p_u^k (k = 1..K),  s_u = multi_hot(K_u)         (Eq. 4)
    s_u = s_hat_u + stop_gradient(s_u - s_hat_u)                   (Eq. 6)
  s_u is 1 on the first K_u slots and 0 after; the straight-through form of
  Eq. 6 has s_u's value and s_hat_u's gradient (Bengio et al. 2013).

  s_hat_u, the relaxation of Eq. 5 (`relaxation`):
    "softmax": Eq. 5 as printed, a temperature softmax over the K logits,
      s_hat_u^k = softmax_k(h_L^k / T). (Eq. 5 prints (exp(h^k)/T) /
      sum_j (exp(h^j)/T), where T cancels; we read it as exp(h^k / T), the
      usual temperature softmax.) It relaxes a one-hot choice of K_u, not
      the multi-hot mask: its entries sum to 1 while s_u sums to K_u.
    "cumulative": s_hat_u^k = sum_{j >= k} softmax_j(h_L^j / T) =
      P(K_u >= k) under p, the probability that slot k is active; it is 1 at
      k = 1 and decreasing, the expectation of the multi-hot mask.

  The hidden layers (`hidden_units`, `activation`) are Eq. 2's first L - 1
  layers; the last layer is linear with K outputs (the logits h_L of Eq. 3).
  At serving time the layer is deterministic (the argmax of Eq. 4).

  Args:
    max_interests: K.
    hidden_units: widths of the hidden layers of Eq. 2.
    activation: sigma of the hidden layers.
    temperature: T of Eq. 5 (> 0).
    relaxation: "softmax" (Eq. 5) | "cumulative" (P(K_u >= k)).

  Call:
    features: float [B, F], h_0 (e.g. [log(1 + #interactions); one-hot
      demographics]).
    Returns a dict:
      "mask"          float [B, K]: Eq. 6, forward value the multi-hot s_u,
                      gradient that of s_hat_u;
      "soft_mask"     float [B, K]: s_hat_u (Eq. 5 or cumulative);
      "probabilities" float [B, K]: p_u (Eq. 3);
      "num_interests" int64 [B]: K_u in 1..K.

  Example:
    >>> select = AdaptiveInterestSelection(max_interests=4, hidden_units=[16])
    >>> out = select(tf.math.log1p(history_length)[:, None])
    >>> masked = interests * out["mask"][..., None]    # [B, K, D]
  """

  def __init__(self, max_interests, hidden_units=(32,), activation="relu",
               temperature=1.0, relaxation="softmax", **kwargs):
    super().__init__(**kwargs)
    if relaxation not in RELAXATIONS:
      raise ValueError("AdaptiveInterestSelection: relaxation must be one of "
                       "%s, got %r" % (RELAXATIONS, relaxation))
    if float(temperature) <= 0:
      raise ValueError("AdaptiveInterestSelection: temperature must be > 0, "
                       "got %r" % (temperature,))
    if int(max_interests) < 1:
      raise ValueError("AdaptiveInterestSelection: max_interests must be >= 1, "
                       "got %r" % (max_interests,))
    self.max_interests = int(max_interests)
    self.hidden_units = [int(u) for u in hidden_units]
    self.activation = activation
    self.temperature = float(temperature)
    self.relaxation = relaxation
    self.hidden_layers = [keras.layers.Dense(u, activation=activation,
                                             name="hidden_%d" % i)
                          for i, u in enumerate(self.hidden_units)]
    self.logit_layer = keras.layers.Dense(self.max_interests, name="logits")

  def logits(self, features):
    """h_L of Eq. 2: float [B, K]."""
    h = tf.convert_to_tensor(features, tf.float32)                # [B, F]
    for layer in self.hidden_layers:
      h = layer(h)                                                # [B, U]
    return self.logit_layer(h)                                    # [B, K]

  def call(self, features):
    logits = self.logits(features)                                # [B, K]
    probabilities = tf.nn.softmax(logits, axis=-1)                # Eq. 3
    soft = tf.nn.softmax(logits / self.temperature, axis=-1)      # Eq. 5
    if self.relaxation == "cumulative":
      soft = tf.math.cumsum(soft, axis=-1, reverse=True)          # P(K_u >= k)
    num_interests = tf.argmax(probabilities, axis=-1) + 1         # K_u [B]
    slots = tf.range(1, self.max_interests + 1, dtype=tf.int64)   # [K]
    hard = tf.cast(slots[None, :] <= num_interests[:, None],
                   soft.dtype)                                    # Eq. 4 [B, K]
    mask = soft + tf.stop_gradient(hard - soft)                   # Eq. 6
    return {"mask": mask, "soft_mask": soft, "probabilities": probabilities,
            "num_interests": num_interests}

  def get_config(self):
    config = super().get_config()
    config.update(max_interests=self.max_interests,
                  hidden_units=self.hidden_units, activation=self.activation,
                  temperature=self.temperature, relaxation=self.relaxation)
    return config
