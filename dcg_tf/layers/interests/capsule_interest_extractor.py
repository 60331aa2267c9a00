"""Behaviour-to-interest dynamic routing: MIND and ComiRec-DR interest capsules."""

import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras

BILINEAR_MAPS = ("shared", "per_position")
ROUTING_INITS = ("random", "zeros")


def squash(s, epsilon=1e-9):
  """Capsule squash (Sabour et al., NeurIPS'17, Eq. 1; MIND Eq. 7).

  squash(s) = ||s||^2 / (1 + ||s||^2) * s / ||s||, over the last axis; the
  epsilon under the square root keeps an all-zero capsule at zero (as the
  ComiRec code, `cap_norm + 1e-9`).
  """
  norm2 = tf.reduce_sum(tf.square(s), axis=-1, keepdims=True)      # [..., 1]
  return norm2 / (1.0 + norm2) / tf.sqrt(norm2 + epsilon) * s


@keras.utils.register_keras_serializable(package="dcg_tf")
class CapsuleInterestExtractor(keras.layers.Layer):
  """K interest capsules from a behaviour sequence by dynamic routing.

  MIND (Li et al., CIKM'19), section 3.3 "Multi-Interest Extractor Layer"
  (behaviour-to-interest routing, Algorithm 1) and ComiRec-DR (Cen et al.,
  KDD'20, section 3.2). For behaviours e_i [B, L, d] and interests j = 1..K:

    u_hat_ij = S_ij e_i                                (the bilinear map)
    b_ij <- initial routing logits
    repeat `iterations` times:
      w_ij = softmax_j(b_ij)          (over interests; 0 at padding i)
      u_j  = squash(sum_i w_ij u_hat_ij)
      b_ij <- b_ij + <u_hat_ij, u_j>   (all but the last iteration)

  Two bilinear maps (`bilinear`):
    "shared" (MIND): one S [d, D] for every behaviour and interest
      (`Dense(D, use_bias=False)`), so u_hat_ij = u_hat_i; the routing logits
      must then start random, else every capsule is the same.
    "per_position" (ComiRec-DR): one W [L, K*D, d] per history position i
      and interest j (ComiRec code `bilinear_type=2`, random normal init);
      logits start at zero.
  Choices taken from the official ComiRec code (THUDM/ComiRec, src/model.py,
  `CapsuleNetwork`), which the paper leaves open:
    - the routing iterations use stop_gradient(u_hat) (`stop_grad = True`);
      only the last iteration's weighted sum carries gradient into S / W, so
      the routing coefficients w_ij carry none;
    - the padding positions get w_ij = 0 after the softmax over interests;
    - the "random" init: the ComiRec code draws a truncated normal (std 1)
      per call; here it is drawn ONCE at construction (`seed`) into a
      non-trainable weight `routing_init` [K, max_len], so that serving is
      deterministic and a resumed run computes the same capsules. Every
      user starts from the same (random) logits; the symmetry between
      capsules is broken as in MIND.

  Args:
    num_interests: K.
    max_len: L, the longest history the layer accepts (the width of the
      per-position W and of the random routing init).
    output_dim: D, the capsule width; None: the input width d.
    bilinear: "shared" (MIND) | "per_position" (ComiRec-DR).
    iterations: routing iterations (3 in MIND and ComiRec).
    routing_init: "random" | "zeros"; None: "random" for "shared",
      "zeros" for "per_position" (the ComiRec code).
    stop_gradient: stop the gradient through the routing iterations.
    seed: seed of the random routing init and of the weight initialisers.

  Call:
    items: float [B, L', d] behaviour embeddings, L' <= max_len.
    mask: bool [B, L'], True at valid positions.
    Returns capsules float [B, K, D]; a row without a valid position gets
    zero capsules.

  Example:
    >>> extractor = CapsuleInterestExtractor(num_interests=4, max_len=50)
    >>> capsules = extractor(item_embeddings, history_mask)   # [B, 4, d]
  """

  def __init__(self, num_interests, max_len, output_dim=None, bilinear="shared",
               iterations=3, routing_init=None, stop_gradient=True, seed=0,
               **kwargs):
    super().__init__(**kwargs)
    if bilinear not in BILINEAR_MAPS:
      raise ValueError("CapsuleInterestExtractor: bilinear must be one of %s, "
                       "got %r" % (BILINEAR_MAPS, bilinear))
    if routing_init is None:
      routing_init = "random" if bilinear == "shared" else "zeros"
    if routing_init not in ROUTING_INITS:
      raise ValueError("CapsuleInterestExtractor: routing_init must be one of "
                       "%s, got %r" % (ROUTING_INITS, routing_init))
    if int(num_interests) < 1 or int(iterations) < 1 or int(max_len) < 1:
      raise ValueError("CapsuleInterestExtractor: num_interests, max_len and "
                       "iterations must be >= 1, got %r, %r, %r"
                       % (num_interests, max_len, iterations))
    self.num_interests = int(num_interests)
    self.max_len = int(max_len)
    self.output_dim = None if output_dim is None else int(output_dim)
    self.bilinear = bilinear
    self.iterations = int(iterations)
    self.routing_init = routing_init
    self.stop_gradient = bool(stop_gradient)
    self.seed = int(seed)

  def build(self, input_shape):
    dim = int(input_shape[-1])
    out = self.output_dim or dim
    k = self.num_interests
    if self.bilinear == "shared":
      self.bilinear_map = self.add_weight(
          name="bilinear_map", shape=(dim, out),
          initializer=keras.initializers.GlorotUniform(seed=self.seed),
          trainable=True)                                          # S [d, D]
    else:
      self.bilinear_map = self.add_weight(
          name="bilinear_map", shape=(self.max_len, k * out, dim),
          initializer=keras.initializers.RandomNormal(seed=self.seed),
          trainable=True)                                          # W [L, K D, d]
    init = np.zeros([k, self.max_len], np.float32)
    if self.routing_init == "random":
      rng = np.random.default_rng(self.seed)
      init = rng.standard_normal([k, self.max_len])
      while np.any(np.abs(init) > 2.0):    # truncated normal, std 1
        bad = np.abs(init) > 2.0
        init[bad] = rng.standard_normal(int(bad.sum()))
      init = init.astype(np.float32)
    self.initial_logits = self.add_weight(
        name="routing_init", shape=(k, self.max_len),
        initializer=keras.initializers.Constant(init), trainable=False)  # [K, L]
    super().build(input_shape)

  def predictions(self, items):
    """u_hat: every behaviour's prediction of every capsule, float [B, K, L, D]."""
    k = self.num_interests
    length = tf.shape(items)[1]
    if self.bilinear == "shared":
      u_hat = tf.einsum("bld,de->ble", items, self.bilinear_map)  # [B, L, D]
      return tf.tile(u_hat[:, None], [1, k, 1, 1])                # [B, K, L, D]
    w = self.bilinear_map[:length]                                # [L, K D, d]
    u_hat = tf.einsum("led,bld->ble", w, items)                   # [B, L, K D]
    u_hat = tf.reshape(u_hat, [tf.shape(items)[0], length, k, -1])  # [B, L, K, D]
    return tf.transpose(u_hat, [0, 2, 1, 3])                      # [B, K, L, D]

  def call(self, items, mask):
    length = items.shape[1]
    if length is not None and length > self.max_len:
      raise ValueError("CapsuleInterestExtractor: the history has %d positions, "
                       "the layer was built for max_len=%d" % (length, self.max_len))
    mask = tf.cast(mask, items.dtype)                             # [B, L]
    u_hat = self.predictions(items)                               # [B, K, L, D]
    u_hat_iter = tf.stop_gradient(u_hat) if self.stop_gradient else u_hat
    logits = tf.broadcast_to(
        self.initial_logits[None, :, :tf.shape(items)[1]],
        tf.shape(u_hat)[:3])                                      # [B, K, L]
    for i in range(self.iterations):
      weights = tf.nn.softmax(logits, axis=1) * mask[:, None, :]  # [B, K, L]
      last = i == self.iterations - 1
      capsules = squash(tf.einsum("bkl,bkld->bkd", weights,
                                  u_hat if last else u_hat_iter))  # [B, K, D]
      if not last:
        logits += tf.einsum("bkld,bkd->bkl", u_hat_iter, capsules)  # [B, K, L]
    return capsules

  def get_config(self):
    config = super().get_config()
    config.update(num_interests=self.num_interests, max_len=self.max_len,
                  output_dim=self.output_dim, bilinear=self.bilinear,
                  iterations=self.iterations, routing_init=self.routing_init,
                  stop_gradient=self.stop_gradient, seed=self.seed)
    return config
