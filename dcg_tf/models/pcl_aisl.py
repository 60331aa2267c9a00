"""PCL-AISL training model: Eq. 1 + alpha L_self (Eq. 11) + beta L_p (Eq. 12), Eq. 14."""

import tensorflow as tf

from dcg_tf.layers.augmentations.fixed_count_mask import FixedCountMask
from dcg_tf.losses.prototypical_contrastive import prototypical_contrastive
from dcg_tf.losses.ssl_contrastive import ssl_contrastive
from dcg_tf.models.multi_interest import MultiInterestModel
from dcg_tf.towers.encode_catalog import encode_catalog
from dcg_tf.training_state.momentum_encoder import MomentumEncoder
from dcg_tf.training_state.prototypes import PrototypeRefresh, Prototypes

# Salts folded into the step seed, one per random draw of a step.
_SALT_KEY_MASK, _SALT_NEGATIVE_PROTOTYPES = 0, 1
_SALT_CATALOG_MASK = 2


class PCLAISLModel(MultiInterestModel):
  """Multi-interest Eq. 1 plus the prototypical contrastive module (section 2.3).

  Per step, for the batch's target items x (the items users interacted with):
    e_x     = the item embedding layer's output (`item_tower.item_embedding`);
    e'_x    = FixedCountMask(e_x): `mask_ones` of its D_e elements kept;
    query_x = item_tower(x) = head(e_x)                             (Eq. 7)
    key_x   = stop_gradient(head'(e'_x))                            (Eq. 8-9)
    head'  <- alpha head' + (1 - alpha) head after each step         (Eq. 10)
  The query encoder G is the item tower after the embedding layer (its
  `ProjectionHead`), the key encoder G' a `MomentumEncoder` copy of it; the
  embedding tables are shared (Eq. 7-8 apply G and G' to embeddings).
    L_self (Eq. 11): InfoNCE of query_x against the B keys of the batch
      (the denominator of Eq. 11 runs over j in [B]; the J random items of
      the text are read as the other B - 1 items of the batch), cosine / T,
      a copy of x elsewhere in the batch removed (`ssl_contrastive`);
    L_p (Eq. 12): query_x against its prototype c_x and r other prototypes,
      each over its cluster's tau (Eq. 13); the prototypes are the k-means
      of head'(e'_x) over the catalog, refreshed at every epoch start
      (`PrototypeRefresh`); L_p is 0 before the first refresh.
    L = L_main + alpha L_self + beta L_p                            (Eq. 14)

  Every random draw is stateless, keyed by `[seed, optimizer step]` (the
  catalog's masks at a refresh by `[seed, epoch]`) folded with a salt; the
  prototypes, the key encoder and `refreshed_epoch` are checkpointed, so a
  resumed run equals an uninterrupted one. None of it is reachable from the
  towers.

  Args:
    user_tower, item_tower, proposal, num_negatives, temperature, reduction,
      seed: as `MultiInterestModel` (the item tower needs `item_embedding`
      and `head`).
    ssl_weight: alpha of Eq. 14 (0: no L_self).
    prototype_weight: beta of Eq. 14 (0: no L_p, no prototypes).
    ssl_temperature: T of Eq. 11.
    momentum: alpha of Eq. 10 (close to 1).
    mask_ones: ones of the random mask (<= the embedding width).
    num_prototypes: |C|.
    num_negative_prototypes: r (at most |C| - 1).
    kmeans_iterations: Faiss k-means iterations per refresh.
  """

  def __init__(self, user_tower, item_tower, proposal, ssl_weight=1.0,
               prototype_weight=1.0, ssl_temperature=0.1, momentum=0.999,
               mask_ones=32, num_prototypes=1000, num_negative_prototypes=100,
               kmeans_iterations=20, **kwargs):
    super().__init__(user_tower, item_tower, proposal, **kwargs)
    for name, value in (("ssl_weight", ssl_weight),
                        ("prototype_weight", prototype_weight)):
      if float(value) < 0:
        raise ValueError("PCLAISLModel: %s must be >= 0, got %r" % (name, value))
    self.ssl_weight = float(ssl_weight)
    self.prototype_weight = float(prototype_weight)
    self.ssl_temperature = float(ssl_temperature)
    self.momentum = float(momentum)
    self.mask_ones = int(mask_ones)
    self.num_prototypes = int(num_prototypes)
    self.num_negative_prototypes = int(num_negative_prototypes)
    self.kmeans_iterations = int(kmeans_iterations)
    if self.num_negative_prototypes > self.num_prototypes - 1:
      raise ValueError("PCLAISLModel: num_negative_prototypes=%d exceeds "
                       "num_prototypes - 1 = %d" % (self.num_negative_prototypes,
                                                    self.num_prototypes - 1))
    # === Training-only state (never reachable from the towers) ===
    self.refreshed_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                       name="refreshed_epoch")
    self.key_mask = FixedCountMask(self.mask_ones, name="key_mask")
    self.key_encoder = MomentumEncoder(item_tower.head, self.momentum,
                                       name="key_encoder")
    self.prototypes = None
    if self.prototype_weight > 0:
      self.prototypes = Prototypes(self.num_prototypes, item_tower.embedding_dim,
                                   self.sampler.size - 1, name="prototypes")

  # === Key encoder (Eq. 8-10) ===

  def step_seed(self):
    """int64 [2]: `[seed, optimizer step]`, the key of this step's draws."""
    optimizer = getattr(self, "optimizer", None)
    step = (tf.constant(0, tf.int64) if optimizer is None
            else tf.cast(optimizer.iterations, tf.int64))
    return tf.stack([tf.constant(self.seed, tf.int64), step])     # [2]

  def keys(self, item_ids, seed):
    """key_x = stop_gradient(G'(m_x e_x)), float [B, D] (Eq. 8-9)."""
    embedded = self.item_tower.item_embedding(item_ids)           # [B, D_e]
    return self.key_encoder(self.key_mask(embedded, seed))        # [B, D]

  def prototype_keys(self, seed, epoch):
    """The catalog's keys for k-means: float32 [N, D], row r = item r + 1."""
    mask_seed = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, epoch], tf.int64), _SALT_CATALOG_MASK)
    return encode_catalog(
        lambda ids, training=False: self.keys(ids, mask_seed),
        self.sampler.size - 1)

  def training_callbacks(self, data, seed):
    if self.prototypes is None:
      return []
    return [PrototypeRefresh(data, self.refreshed_epoch, seed,
                             iterations=self.kmeans_iterations)]

  def before_apply_gradients(self, grads_and_vars):
    self.key_encoder.catch_up(grads_and_vars, self.optimizer)

  def after_train_step(self):
    self.key_encoder.update()

  # === Losses (Eq. 11, 12, 14) ===

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    loss, user, query = self.main_loss(inputs, training)   # query: Eq. 7 [B, D]
    main = tf.reduce_mean(loss)
    target = tf.cast(inputs["target"], tf.int64)                  # [B]
    seed = self.step_seed()
    keys = self.keys(target, tf.random.experimental.stateless_fold_in(
        seed, _SALT_KEY_MASK))                                    # [B, D]
    ssl = tf.reduce_mean(ssl_contrastive(query, keys, self.ssl_temperature,
                                         item_ids=target))        # Eq. 11
    terms = [main, self.ssl_weight * ssl]
    outputs = {"main_loss": main, "ssl_loss": ssl,
               "num_interests": tf.reduce_mean(
                   tf.cast(user["num_interests"], tf.float32))}
    if self.prototypes is not None:
      clusters = self.prototypes.clusters_of(target)              # [B]
      negatives = self.prototypes.sample_negatives(
          clusters, self.num_negative_prototypes,
          tf.random.experimental.stateless_fold_in(
              seed, _SALT_NEGATIVE_PROTOTYPES))                   # [B, r]
      proto = tf.reduce_mean(prototypical_contrastive(
          query, self.prototypes.prototypes, self.prototypes.temperatures,
          clusters, negatives))                                   # Eq. 12
      proto = tf.where(self.refreshed_epoch >= 0, proto, 0.0)
      outputs["prototype_loss"] = proto
      terms.append(self.prototype_weight * proto)
    outputs["loss"] = tf.reduce_sum(tf.stack(terms))              # Eq. 14
    return outputs
