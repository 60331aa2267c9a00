"""Multi-interest user tower: MIND, ComiRec-SA/DR, optionally with PCL-AISL's AISL."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.interests.label_aware_attention import LabelAwareAttention

_NESTED = ("item_encoder", "extractor", "interest_selection", "label_attention")


@keras.utils.register_keras_serializable(package="dcg_tf")
class MultiInterestUserTower(keras.layers.Layer):
  """K interest vectors from the click history, and which of them are active.

  history -> g(y_t) [B, L, D] (the item tower, `item_encoder`) -> an interest
  extractor [B, K, D] (`CapsuleInterestExtractor`: MIND / ComiRec-DR;
  `SelfAttentiveInterestExtractor`: ComiRec-SA) -> optionally a per-interest
  Dense(D, `projection_activation`) (the ReLU layer the ComiRec code puts
  after MIND's capsules, `relu_layer=True`) -> the active interests:
    - all K (ComiRec, and MIND as Table 1 of PCL-AISL runs it);
    - `dynamic_interests=True`: MIND's K'_u = max(1, min(K, floor(log2 n_u)))
      (MIND section 3.3, Eq. 8; n_u the valid history length);
    - `interest_selection` (an `AdaptiveInterestSelection`): PCL-AISL's
      K_u from f_a = log(1 + n_u), section 2.2. The history length is the
      activity feature available at training, evaluation and serving alike
      (the export's default signature sees only the history); it saturates
      at the history window (max_len).

  It implements the multi-interest contract (`dcg_tf.towers.multi_interest`):
  `call` returns `(vectors [B, K, D] l2-normalised, mask bool [B, K])`, the
  mask True on the active slots (the first K_u), at least one per row;
  `interests` gives the raw vectors and the training-time tensors;
  `select_for_target` is MIND's label-aware attention (`label_attention`).
  Nothing in it is training-only: the AISL layer is deterministic at serving
  (Eq. 4's argmax).

  Args:
    item_encoder: item ids int64 [...] -> [..., D] (the item tower).
    extractor: layer `(items [B, L, D], mask [B, L]) -> [B, K, D']`.
    max_interests: K (the extractor's number of interests).
    output_dim: D of the projection (None: no projection).
    projection_activation: activation of the projection.
    interest_selection: None or an `AdaptiveInterestSelection` over K.
    dynamic_interests: MIND's K'_u rule (excludes `interest_selection`).
    label_attention: the `LabelAwareAttention` of `select_for_target`
      (default: power 1, soft).

  Example:
    >>> tower = MultiInterestUserTower(item_tower, CapsuleInterestExtractor(4, 50), 4)
    >>> vectors, mask = tower({"history": h, "history_mask": m})   # [B, 4, D], [B, 4]
  """

  is_multi_interest = True
  normalized = True

  def __init__(self, item_encoder, extractor, max_interests, output_dim=None,
               projection_activation="relu", interest_selection=None,
               dynamic_interests=False, label_attention=None, **kwargs):
    super().__init__(**kwargs)
    if dynamic_interests and interest_selection is not None:
      raise ValueError("MultiInterestUserTower: dynamic_interests (MIND's "
                       "K'_u) and interest_selection (AISL) exclude each other")
    selection_k = getattr(interest_selection, "max_interests", max_interests)
    if selection_k != max_interests:
      raise ValueError("MultiInterestUserTower: interest_selection has K=%d, "
                       "the tower max_interests=%d" % (selection_k, max_interests))
    self.item_encoder = item_encoder
    self.extractor = extractor
    self.max_interests = int(max_interests)
    self.output_dim = None if output_dim is None else int(output_dim)
    self.projection_activation = projection_activation
    self.interest_selection = interest_selection
    self.dynamic_interests = bool(dynamic_interests)
    self.label_attention = label_attention or LabelAwareAttention(
        name="label_attention")
    self.projection = None
    if self.output_dim is not None:
      self.projection = keras.layers.Dense(
          self.output_dim, activation=projection_activation, name="projection")

  @property
  def interest_slots(self):
    """H = K: the interests `interests` returns."""
    return self.max_interests

  @property
  def embedding_dim(self):
    return self.output_dim or self.item_encoder.embedding_dim

  def activity_features(self, batch):
    """f_a of AISL (Eq. 2): log(1 + valid history length), float [B, 1]."""
    length = tf.reduce_sum(tf.cast(batch["history_mask"], tf.float32), axis=1)
    return tf.math.log1p(length)[:, None]                         # [B, 1]

  def interests(self, batch, training=False):
    """Returns a dict: "vectors" [B, K, D] (raw), "mask" bool [B, K] (active),
    "selection_mask" float [B, K] (AISL's straight-through s_u, Eq. 6; ones
    without AISL), "num_interests" int64 [B] (K_u), and with AISL
    "probabilities" [B, K] (Eq. 3) and "soft_mask" [B, K] (Eq. 5)."""
    history = tf.cast(batch["history"], tf.int64)                 # [B, L]
    mask = tf.cast(batch["history_mask"], tf.bool)                # [B, L]
    items = self.item_encoder(history, training=training)         # [B, L, D]
    vectors = self.extractor(items, mask)                         # [B, K, D']
    if self.projection is not None:
      vectors = self.projection(vectors)                          # [B, K, D]
    k = self.max_interests
    slots = tf.range(1, k + 1, dtype=tf.int64)[None, :]           # [1, K]
    out = {"vectors": vectors}
    if self.interest_selection is not None:
      selection = self.interest_selection(self.activity_features(batch))
      out.update(selection_mask=selection["mask"],
                 soft_mask=selection["soft_mask"],
                 probabilities=selection["probabilities"])
      num = selection["num_interests"]                            # [B]
    else:
      num = tf.fill(tf.shape(history)[:1], tf.constant(k, tf.int64))
      if self.dynamic_interests:
        length = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)  # [B]
        log2 = tf.floor(tf.math.log(tf.maximum(length, 1.0)) / tf.math.log(2.0))
        num = tf.clip_by_value(tf.cast(log2, tf.int64), 1, k)     # K'_u
      out["selection_mask"] = tf.ones_like(vectors[..., 0])       # [B, K]
    out["num_interests"] = num
    out["mask"] = slots <= num[:, None]                           # [B, K]
    return out

  def select_for_target(self, interests, target_embedding):
    """Label-aware attention over the active interests: weights [B, K]."""
    return self.label_attention(interests["vectors"], target_embedding,
                                interests["mask"])

  def call(self, batch, training=False):
    out = self.interests(batch, training=training)
    return tf.math.l2_normalize(out["vectors"], axis=-1), out["mask"]

  def get_config(self):
    config = super().get_config()
    config.update({name: (None if getattr(self, name) is None
                          else keras.layers.serialize(getattr(self, name)))
                   for name in _NESTED})
    config.update(max_interests=self.max_interests, output_dim=self.output_dim,
                  projection_activation=self.projection_activation,
                  dynamic_interests=self.dynamic_interests)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for name in _NESTED:
      if config.get(name) is not None:
        config[name] = keras.layers.deserialize(config[name])
    return cls(**config)
