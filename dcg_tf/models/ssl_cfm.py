"""Two-tower with a self-supervised item task (SSL-CFM, Yao et al., CIKM'21)."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.data import pipeline
from dcg_tf.layers.augmentations.field_masking import FieldMasking
from dcg_tf.layers.augmentations.value_dropout import ValueDropout
from dcg_tf.losses.ssl_contrastive import ssl_contrastive
from dcg_tf.models.two_tower import TwoTowerModel

SSL_STREAM = "ssl_items"
_DISTRIBUTIONS = {"uniform": "uniform", "training": "popularity"}
# Salts folded into the step seed, one per random draw of a step.
_SALT_SSL_MASKS, _SALT_SSL_DROP_A, _SALT_SSL_DROP_B = 0, 1, 2
_SALT_FD_MASKS, _SALT_FD_DROP = 3, 4


class SSLCFMModel(TwoTowerModel):
  """In-batch softmax two-tower plus the SSL task on augmented item views.

  Section 3.3, Eq. 5: `L = L_main + alpha * L_self`.
  - L_main: the in-batch softmax of `TwoTowerModel` (Eq. 6 with
    `logq_correction=False`), user tower against item tower.
  - L_self: Eq. 3 (`dcg_tf.losses.ssl_contrastive`) on a separate batch of
    items, the auxiliary stream `"ssl_items"` drawn uniformly from the catalog
    ("Heterogeneous Sample Distributions"), or by training frequency with
    `ssl_item_distribution="training"` so that the paper's claim can be
    measured. Its two views y = h(x), y' = g(x) come from the two-stage
    augmentation of section 3.2, applied to the item embedding's field rows
    (`ItemEmbedding.field_names`, the id included; `item_combine="concat"`
    is the paper's input layer, the concatenated field embeddings):
      1. masking: `masking(seed) -> (mask_a, mask_b)` (CFM, RFM, RFM without
         complement; None: no masking) and `FieldMasking`, a learned default
         embedding per field, owned by this model;
      2. dropout: `ValueDropout(dropout_rate)` drops values of multi-valued
         fields, independently per view.
    z = H(y) is the item tower; z' = G(y') shares every embedding table with
    it and, with `ssl_private_layers = p > 0`, has its own copies of the top
    p layers of the tower's MLP (the output projection counts as one);
    p = 0 shares the whole tower (Figure 3).
  - Feature dropout (FD, section 4.3's baseline): `feature_dropout=True`
    feeds the main loss's positives through the first view's augmentation
    while training (no augmentation at evaluation); with `ssl_weight=0` it is
    FD alone.
  - Spread-out (SO): `masking=None`, `dropout_rate=0`, `ssl_private_layers=0`:
    both views are the plain tower, Eq. 3 is the spread-out loss.

  Every random draw is stateless, keyed by `[seed, optimizer.iterations]`
  folded with a per-draw salt, so the masks change every step and a resumed
  run redraws the same ones. Training-only weights (defaults, G's private
  layers) belong to this model; `item_tower` holds no reference to them.

  Args:
    user_tower, item_tower, log_item_probability, temperature,
      logq_correction, remove_accidental_hits, all_positions: as
      `TwoTowerModel` (the item tower must have an `item_embedding`).
    masking: a `CorrelatedFeatureMasking` / `RandomFeatureMasking` over the
      item embedding's fields, or None.
    dropout_rate: dr, the rate of value dropout (0: none; no effect when the
      item embedding has no multi-valued feature).
    ssl_weight: alpha of Eq. 5 (0: no SSL task and no auxiliary stream).
    ssl_temperature: tau of Eq. 3.
    ssl_item_distribution: "uniform" (the paper) or "training".
    ssl_batch_size: items per SSL batch; None: the trainer's batch size.
    ssl_private_layers: top MLP layers of G not shared with H.
    feature_dropout: augment the main task's positives while training (FD).
    seed: the model's seed, with the optimizer step the key of every draw.
  """

  def __init__(self, user_tower, item_tower, log_item_probability=None,
               masking=None, dropout_rate=0.0, ssl_weight=1.0,
               ssl_temperature=0.1, ssl_item_distribution="uniform",
               ssl_batch_size=None, ssl_private_layers=0, feature_dropout=False,
               seed=0, **kwargs):
    super().__init__(user_tower, item_tower, log_item_probability, **kwargs)
    if ssl_item_distribution not in _DISTRIBUTIONS:
      raise ValueError("ssl_item_distribution must be one of %s, got %r"
                       % (sorted(_DISTRIBUTIONS), ssl_item_distribution))
    if float(ssl_weight) < 0:
      raise ValueError("ssl_weight (alpha of Eq. 5) must be >= 0, got %r"
                       % ssl_weight)
    embedding = item_tower.item_embedding
    self.masking = masking
    self.dropout_rate = float(dropout_rate)
    self.ssl_weight = float(ssl_weight)
    self.ssl_temperature = float(ssl_temperature)
    self.ssl_item_distribution = ssl_item_distribution
    self.ssl_batch_size = None if ssl_batch_size is None else int(ssl_batch_size)
    self.ssl_private_layers = int(ssl_private_layers)
    self.feature_dropout = bool(feature_dropout)
    self.seed = int(seed)
    num_fields = len(embedding.field_names)
    if masking is not None and masking.num_fields != num_fields:
      raise ValueError("the masking covers %d fields but the item embedding has "
                       "%d (%s)" % (masking.num_fields, num_fields,
                                    ", ".join(embedding.field_names)))

    # === Training-only layers (never reachable from the towers) ===
    self.field_masking = None
    if masking is not None:
      self.field_masking = FieldMasking(num_fields, embedding.dim,
                                        name="field_masking")
      self.field_masking.build(None)   # exists before any restore
    self.value_dropout = None
    if self.dropout_rate > 0 and embedding.multi_valued_lengths:
      self.value_dropout = ValueDropout(self.dropout_rate,
                                        embedding.multi_valued_lengths,
                                        name="value_dropout")
    _, private = _split_head(item_tower.head, self.ssl_private_layers)
    self.second_encoder_layers = [
        keras.layers.Dense.from_config(
            dict(dense.get_config(), name="second_encoder_" + dense.name))
        for dense, _ in private]

  # === Inputs ===

  def auxiliary_streams(self, data, batch_size, seed, epoch):
    """`{"ssl_items": {"item": int64 [B']}}`, D_item of section 3.3."""
    if self.ssl_weight == 0:
      return {}
    return {SSL_STREAM: pipeline.item_dataset(
        data, self.ssl_batch_size or batch_size,
        sampling=_DISTRIBUTIONS[self.ssl_item_distribution], seed=seed,
        epoch=epoch)}

  def step_seed(self):
    """int64 [2]: `[seed, optimizer step]`, the key of this step's draws."""
    optimizer = getattr(self, "optimizer", None)
    step = (tf.constant(0, tf.int64) if optimizer is None
            else tf.cast(optimizer.iterations, tf.int64))
    return tf.stack([tf.constant(self.seed, tf.int64), step])         # [2]

  # === Augmentation (section 3.2) ===

  def view_masks(self, seed):
    """`(mask_a, mask_b)` bool [F+1] from `masking`, or `(None, None)`."""
    if self.masking is None:
      return None, None
    return self.masking(seed)

  def augmented_view(self, item_ids, mask, drop_seed, training=False,
                     second_encoder=False):
    """One view: fields in `mask` -> defaults, values dropped, then H (or G).

    Args:
      item_ids: int [B].
      mask: bool [F+1] or None (no masking).
      drop_seed: int [2], the key of the value dropout.
      training: passed to the tower's head.
      second_encoder: encode with G instead of H (the item tower).

    Returns:
      float32 [B, D].
    """
    value_mask = None
    if self.value_dropout is not None:
      value_mask = self.value_dropout(item_ids, seed=drop_seed)  # name -> [B, L]
    transform = None
    if mask is not None:
      transform = lambda fields: self.field_masking(fields, mask)  # [B, F+1, D]
    if second_encoder and self.second_encoder_layers:
      return self._second_encoder(item_ids, training, value_mask, transform)
    return self.item_tower(item_ids, training=training, value_mask=value_mask,
                           field_transform=transform)                  # [B, D]

  def _second_encoder(self, item_ids, training, value_mask, transform):
    """G: the shared embedding and bottom MLP layers, then G's own layers."""
    x = self.item_tower.item_embedding(item_ids, value_mask=value_mask,
                                       field_transform=transform)      # [B, D_e]
    # The tower's layers are looked up here, not stored, so this model keeps
    # no second path to them.
    shared, private = _split_head(self.item_tower.head, self.ssl_private_layers)
    own = [(dense, drop) for dense, (_, drop)
           in zip(self.second_encoder_layers, private)]
    for dense, drop in shared + own:
      x = dense(x)                                                     # [B, H]
      if drop is not None:
        x = drop(x, training=training)
    return x   # Eq. 3 normalises (cosine), so no l2 here.

  def ssl_views(self, item_ids, seed, training=False):
    """`(z [B, D], z' [B, D])`: the two views of Eq. 1-2 for `item_ids`."""
    mask_a, mask_b = self.view_masks(
        tf.random.experimental.stateless_fold_in(seed, _SALT_SSL_MASKS))
    z = self.augmented_view(
        item_ids, mask_a,
        tf.random.experimental.stateless_fold_in(seed, _SALT_SSL_DROP_A),
        training)
    z_prime = self.augmented_view(
        item_ids, mask_b,
        tf.random.experimental.stateless_fold_in(seed, _SALT_SSL_DROP_B),
        training, second_encoder=True)
    return z, z_prime

  # === Losses ===

  def encode_candidates(self, item_ids, training=False):
    if not (self.feature_dropout and training):
      return super().encode_candidates(item_ids, training)
    seed = self.step_seed()
    mask, _ = self.view_masks(
        tf.random.experimental.stateless_fold_in(seed, _SALT_FD_MASKS))
    return self.augmented_view(
        item_ids, mask,
        tf.random.experimental.stateless_fold_in(seed, _SALT_FD_DROP), training)

  def compute_loss(self, inputs, training=False):
    outputs = super().compute_loss(inputs, training=training)
    main = outputs["loss"]
    outputs["main_loss"] = main
    if self.ssl_weight == 0:
      return outputs
    if "aux" not in inputs or SSL_STREAM not in inputs["aux"]:
      raise ValueError("SSLCFMModel with ssl_weight=%g needs batch['aux'][%r] "
                       "(the trainer zips in auxiliary_streams())"
                       % (self.ssl_weight, SSL_STREAM))
    items = tf.cast(inputs["aux"][SSL_STREAM]["item"], tf.int64)       # [B']
    z, z_prime = self.ssl_views(items, self.step_seed(), training)     # [B', D]
    ssl = tf.reduce_mean(ssl_contrastive(
        z, z_prime, self.ssl_temperature,
        item_ids=items if self.remove_accidental_hits else None))
    outputs["ssl_loss"] = ssl
    outputs["loss"] = main + self.ssl_weight * ssl                     # Eq. 5
    return outputs


def _split_head(head, private):
  """The head's (dense, dropout) layers bottom-up: (shared, top `private`)."""
  layers = list(zip(head.hidden_layers, head.dropout_layers))
  if head.output_layer is not None:
    layers.append((head.output_layer, None))
  if not 0 <= private <= len(layers):
    raise ValueError("ssl_private_layers=%d but the item tower's MLP has %d "
                     "layer(s) (hidden_units plus the output projection)"
                     % (private, len(layers)))
  return layers[:len(layers) - private], layers[len(layers) - private:]
