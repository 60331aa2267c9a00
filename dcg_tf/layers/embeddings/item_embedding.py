"""Item id -> embedding from the id and the item's catalog features.

Shared by the item tower and by user towers (for history items), so an item
has one representation whichever side it appears on. The embedding is built in
two steps that callers may also take one at a time: `field_embeddings` (one
vector per field: the id and each feature) and `combine_fields` (their
combination), so that an augmentation can act on single fields in between
(`dcg_tf.layers.augmentations`).
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.feature_embedding import FeatureEmbedding
from dcg_tf.layers.embeddings.item_features import ItemFeatures

_COMBINES = ("concat", "sum", "id_plus_concat")
_KINDS = ("single", "multi")
ID_FIELD = "item"  # the id's field name, as in `ItemFeatures`' output


@keras.utils.register_keras_serializable(package="dcg_tf")
class ItemEmbedding(keras.layers.Layer):
  """Embeds item ids with their id embedding and feature embeddings.

  `ItemFeatures` turns ids into feature values inside the graph; one
  `FeatureEmbedding` per feature (plus one for the id) embeds them into one
  vector per field, `fields = [e_id(y); e_f1(y); ...]` of shape `[..., F+1, D]`
  (`field_embeddings`). The fields are combined by (`combine_fields`)
  - "sum": `e(y) = e_id(y) + sum_f e_f(y)` with every part D wide. CLRec's
    encoders (`dcg_tf.configs.clrec`) use it for appendix B.1.1: the sum of
    the id embedding and full-width feature embeddings, a superset of the
    literal reading below (a D-wide feature table whose columns outside one
    slot are zero is the concatenated table);
  - "id_plus_concat": `e(y) = e_id(y) + [e_f1(y); e_f2(y); ...]`, CLRec
    (Zhou et al., KDD'21) appendix B.1.1 read literally ("the sum of ... a
    base item embedding corresponding to its ID number, the concatenation of
    the item features' embeddings"): feature f gets a width w_f, the widths
    sum to D (D // F each, the first D % F features one more), and its field
    row holds e_f(y) in its slot of columns, zeros elsewhere, so the sum of
    the rows is the id embedding plus the concatenation;
  - "concat": `e(y) = W [e_id(y); e_f1(y); ...] + b`, the two-tower baseline
    (full-width parts concatenated, then a linear projection to `dim`).

  Item 0 (padding) and unknown ids (outside `[0, num_items]`) embed to zeros,
  so padded history positions contribute nothing.

  Args:
    num_items: N, the number of real items (tables have N+1 rows).
    dim: output dimension D (also the width of every field row).
    features: list of dicts `{"name", "kind": "single"|"multi", "vocab_size"}`
      as in `manifest.json["schema"]` (extra keys such as "max_len" are
      ignored; an optional "combiner": "mean"|"sum" pools multi-valued ones).
      `vocab_size` counts real values; the table gets one more row for 0.
    feature_arrays: dict name -> array [N+1] or [N+1, F] (the catalog); needed
      when `features` is non-empty. Only the listed features are kept.
    feature_specs: config form of the arrays (see `ItemFeatures`); used by
      `from_config` instead of `feature_arrays`.
    combine: "concat", "sum" or "id_plus_concat".
    use_item_id: include the id embedding (False gives a features-only,
      cold-start item representation, and no id field).
    initializer: Keras initializer of the embedding tables (default "normal",
      CLRec appendix B.2).

  Call:
    item_ids: int [...] -> float32 [..., D], equal to
    `combine_fields(field_embeddings(item_ids, value_mask))` (with
    `field_transform` applied to the fields in between) on known ids, zeros
    on padding/unknown ids.
    value_mask: optional, see `field_embeddings`.
    field_transform: optional callable `[..., F+1, D] -> [..., F+1, D]`
      applied to the fields before they are combined (an augmentation).

  Attributes:
    field_names: the fields' names in their fixed order: "item" (the id;
      only when `use_item_id`), then the features in the order of `features`.
    multi_valued_lengths: dict name -> max_len of the multi-valued features.

  Example:
    >>> emb = ItemEmbedding(
    ...     num_items=3, dim=8,
    ...     features=[{"name": "category", "kind": "single", "vocab_size": 2}],
    ...     feature_arrays={"category": np.array([0, 2, 1], np.int32)})
    >>> emb(tf.constant([[1, 2, 0]]))   # [1, 3, 8]; the padding row is zeros
    >>> emb.field_names                 # ("item", "category")
    >>> fields = emb.field_embeddings(tf.constant([1, 2]))   # [2, 2, 8]
    >>> emb.combine_fields(fields)      # [2, 8], == emb(tf.constant([1, 2]))
  """

  def __init__(self, num_items, dim, features=(), feature_arrays=None,
               feature_specs=None, combine="concat", use_item_id=True,
               initializer="normal", **kwargs):
    super().__init__(**kwargs)
    if combine not in _COMBINES:
      raise ValueError("ItemEmbedding %r: combine must be one of %s, got %r"
                       % (self.name, _COMBINES, combine))
    self.num_items = int(num_items)
    self.dim = int(dim)
    self.features = [dict(f) for f in features]
    self.combine = combine
    self.use_item_id = bool(use_item_id)
    self.initializer = initializer
    names = [_check_feature(f, i) for i, f in enumerate(self.features)]
    if not names and not self.use_item_id:
      raise ValueError("ItemEmbedding %r: no features and use_item_id=False "
                       "leaves nothing to embed" % self.name)
    if combine == "id_plus_concat" and len(names) > self.dim:
      raise ValueError("ItemEmbedding %r: combine='id_plus_concat' splits dim=%d "
                       "among the %d features %s; give dim >= %d or fewer features"
                       % (self.name, self.dim, len(names), names, len(names)))
    if names and feature_arrays is not None:
      missing = [n for n in names if n not in feature_arrays]
      if missing:
        raise ValueError("ItemEmbedding %r: feature_arrays lack %s (have %s)"
                         % (self.name, missing, sorted(feature_arrays)))
      feature_arrays = {n: feature_arrays[n] for n in names}
    if names and feature_specs is not None:
      feature_specs = {n: feature_specs[n] for n in names}
    if names and feature_arrays is None and feature_specs is None:
      raise ValueError("ItemEmbedding %r: features %s need feature_arrays"
                       % (self.name, names))
    self.feature_arrays = None  # held by `item_features` as weights, not twice
    self.feature_specs = feature_specs

    # === Layers ===
    self.item_features = None
    if names:
      self.item_features = ItemFeatures(
          feature_arrays=feature_arrays,
          feature_specs=None if feature_arrays is not None else feature_specs,
          name="item_features")
      rows = self.item_features.num_rows
      if rows != self.num_items + 1:
        raise ValueError("ItemEmbedding %r: catalog arrays have %d rows, expected "
                         "num_items + 1 = %d" % (self.name, rows, self.num_items + 1))
      for f in self.features:
        shape = self.item_features.feature_specs[f["name"]]["shape"]
        if (len(shape) == 2) != (f["kind"] == "multi"):
          raise ValueError("ItemEmbedding %r: feature %r is %r but its array has "
                           "shape %s" % (self.name, f["name"], f["kind"], shape))
    self.id_embedding = None
    if self.use_item_id:
      self.id_embedding = FeatureEmbedding(self.num_items + 1, self.dim,
                                           initializer=initializer,
                                           name="item_id_embedding")
    widths = _feature_widths(self.dim, len(names), combine)
    self.feature_embeddings = [
        FeatureEmbedding(int(f["vocab_size"]) + 1, width,
                         combiner=f.get("combiner", "mean"),
                         multi_valued=f["kind"] == "multi",
                         initializer=initializer, name=f["name"] + "_embedding")
        for f, width in zip(self.features, widths)]
    self.projection = None
    if self.combine == "concat":
      self.projection = keras.layers.Dense(self.dim, name="projection")

  @property
  def field_names(self):
    """Names of the rows of `field_embeddings`, in order."""
    return (((ID_FIELD,) if self.use_item_id else ())
            + tuple(f["name"] for f in self.features))

  @property
  def multi_valued_lengths(self):
    """dict name -> max_len (values per item) of the multi-valued features."""
    if self.item_features is None:
      return {}
    specs = self.item_features.feature_specs
    return {f["name"]: int(specs[f["name"]]["shape"][1])
            for f in self.features if f["kind"] == "multi"}

  def field_embeddings(self, item_ids, value_mask=None):
    """One D-wide vector per field: `[..., F+1, D]`, rows in `field_names` order.

    Multi-valued features are pooled (mean or sum) over their valid values;
    under "id_plus_concat" a feature's row is zero outside its slot.

    Args:
      item_ids: int [...].
      value_mask: optional dict name -> bool [..., max_len] for multi-valued
        features: False drops that value before pooling (it counts as padding,
        so a mean averages the values kept; all dropped gives zeros). Features
        not in the dict keep all their values.

    Returns:
      float32 [..., F+1, D] (F+1 = `len(field_names)`).
    """
    return tf.stack(self._field_parts(item_ids, value_mask), axis=-2)  # [..., F+1, D]

  def combine_fields(self, fields):
    """Combines field rows `[..., F+1, D]` into `[..., D]` by `combine`.

    `call` is `combine_fields(field_embeddings(ids))` with the rows of
    padding/unknown ids set to zero afterwards ("concat" would otherwise give
    them the projection's bias).
    """
    return self._combine_parts(tf.unstack(fields, axis=-2))         # [..., D]

  def call(self, item_ids, value_mask=None, field_transform=None):
    item_ids = tf.cast(item_ids, tf.int64)
    parts = self._field_parts(item_ids, value_mask)
    if field_transform is not None:
      fields = field_transform(tf.stack(parts, axis=-2))           # [..., F+1, D]
      parts = tf.unstack(fields, axis=-2)
    output = self._combine_parts(parts)                            # [..., D]
    known = tf.logical_and(item_ids > 0, item_ids <= self.num_items)  # [...]
    return output * tf.cast(known, output.dtype)[..., None]          # [..., D]

  def _field_parts(self, item_ids, value_mask):
    """The field rows as a list of F+1 tensors [..., D]."""
    item_ids = tf.cast(item_ids, tf.int64)
    value_mask = dict(value_mask or {})
    unknown = sorted(set(value_mask) - set(self.multi_valued_lengths))
    if unknown:
      raise ValueError("ItemEmbedding %r: value_mask names %s, which are not "
                       "multi-valued features (those are %s)"
                       % (self.name, unknown, sorted(self.multi_valued_lengths)))
    parts = []
    if self.id_embedding is not None:
      parts.append(self.id_embedding(item_ids))                      # [..., D]
    if self.item_features is not None:
      values = self.item_features(item_ids)  # name -> [...] or [..., L_f]
      offset = 0
      for f, embedding in zip(self.features, self.feature_embeddings):
        feature = values[f["name"]]
        if f["name"] in value_mask:
          keep = value_mask[f["name"]]                               # [..., L_f]
          feature = tf.where(keep, feature, tf.zeros_like(feature))  # [..., L_f]
        part = embedding(feature)                                    # [..., w_f]
        if self.combine == "id_plus_concat":
          part = _place_in_slot(part, offset, self.dim)              # [..., D]
          offset += embedding.dim
        parts.append(part)                                           # [..., D]
    return parts

  def _combine_parts(self, parts):
    if self.combine == "concat":
      return self.projection(tf.concat(parts, axis=-1))             # [..., D]
    if self.combine == "id_plus_concat":
      # Rows keep only their slot, so a transform that wrote outside it (e.g.
      # a D-wide default embedding) cannot leak into another field's columns.
      slots = tf.constant(self._slot_mask())                         # [F+1, D]
      parts = [part * slots[i] for i, part in enumerate(parts)]      # [..., D]
    return tf.add_n(parts)                                           # [..., D]

  def _slot_mask(self):
    """float32 [F+1, D]: 1 on the columns each field's row may occupy."""
    rows = [[1.0] * self.dim] if self.use_item_id else []
    offset = 0
    for embedding in self.feature_embeddings:
      width = embedding.dim
      rows.append([0.0] * offset + [1.0] * width
                  + [0.0] * (self.dim - offset - width))
      offset += width
    return rows

  def get_config(self):
    config = super().get_config()
    specs = (self.item_features.feature_specs
             if self.item_features is not None else None)
    config.update(num_items=self.num_items, dim=self.dim,
                  features=[dict(f) for f in self.features],
                  feature_specs=_plain(specs), combine=self.combine,
                  use_item_id=self.use_item_id, initializer=self.initializer)
    return config


def _feature_widths(dim, num_features, combine):
  """Widths of the feature tables: D each, or D split among them (B.1.1)."""
  if combine != "id_plus_concat":
    return [dim] * num_features
  base, extra = divmod(dim, max(num_features, 1))
  return [base + (1 if i < extra else 0) for i in range(num_features)]


def _place_in_slot(part, offset, dim):
  """[..., w] -> [..., dim]: `part` at columns [offset, offset + w), zeros elsewhere."""
  width = part.shape[-1]
  rank = part.shape.rank
  paddings = [[0, 0]] * (rank - 1) + [[offset, dim - offset - width]]
  return tf.pad(part, paddings)                                      # [..., dim]


def _plain(specs):
  if specs is None:
    return None
  return {name: {"shape": list(spec["shape"]), "dtype": spec["dtype"]}
          for name, spec in specs.items()}


def _check_feature(feature, position):
  for key in ("name", "kind", "vocab_size"):
    if key not in feature:
      raise ValueError("ItemEmbedding: features[%d] lacks %r: %r"
                       % (position, key, feature))
  if feature["kind"] not in _KINDS:
    raise ValueError("ItemEmbedding: features[%d] (%r) has kind %r, expected one "
                     "of %s" % (position, feature["name"], feature["kind"], _KINDS))
  if feature.get("combiner", "mean") not in ("mean", "sum"):
    raise ValueError("ItemEmbedding: features[%d] (%r) has combiner %r"
                     % (position, feature["name"], feature["combiner"]))
  return feature["name"]
