"""Item id -> embedding from the id and the item's catalog features.

Shared by the item tower and by user towers (for history items), so an item
has one representation whichever side it appears on.
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.feature_embedding import FeatureEmbedding
from dcg_tf.layers.embeddings.item_features import ItemFeatures

_COMBINES = ("concat", "sum")
_KINDS = ("single", "multi")


@keras.utils.register_keras_serializable(package="dcg_tf")
class ItemEmbedding(keras.layers.Layer):
  """Embeds item ids with their id embedding and feature embeddings.

  `ItemFeatures` turns ids into feature values inside the graph; one
  `FeatureEmbedding` per feature (plus one for the id) embeds them; the parts
  are combined by
  - "sum": `e(y) = e_id(y) + sum_f e_f(y)`, CLRec (Zhou et al., KDD'21)
    appendix B.1.1 (the item encoder g(y) is the sum of the base item-id
    embedding and the item features' embeddings); or
  - "concat": `e(y) = W [e_id(y); e_f1(y); ...] + b`, the two-tower baseline
    (features concatenated, then a linear projection to `dim`).

  Item 0 (padding) and unknown ids (outside `[0, num_items]`) embed to zeros,
  so padded history positions contribute nothing.

  Args:
    num_items: N, the number of real items (tables have N+1 rows).
    dim: output dimension D (also the dimension of every part).
    features: list of dicts `{"name", "kind": "single"|"multi", "vocab_size"}`
      as in `manifest.json["schema"]` (extra keys such as "max_len" are
      ignored; an optional "combiner": "mean"|"sum" pools multi-valued ones).
      `vocab_size` counts real values; the table gets one more row for 0.
    feature_arrays: dict name -> array [N+1] or [N+1, F] (the catalog); needed
      when `features` is non-empty. Only the listed features are kept.
    feature_specs: config form of the arrays (see `ItemFeatures`); used by
      `from_config` instead of `feature_arrays`.
    combine: "concat" or "sum".
    use_item_id: include the id embedding (False gives a features-only,
      cold-start item representation).
    initializer: Keras initializer of the embedding tables (default "normal",
      CLRec appendix B.2).

  Call:
    item_ids: int [...] -> float32 [..., D].

  Example:
    >>> emb = ItemEmbedding(
    ...     num_items=3, dim=8,
    ...     features=[{"name": "category", "kind": "single", "vocab_size": 2}],
    ...     feature_arrays={"category": np.array([0, 2, 1], np.int32)})
    >>> emb(tf.constant([[1, 2, 0]]))   # [1, 3, 8]; the padding row is zeros
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
    self.feature_embeddings = [
        FeatureEmbedding(int(f["vocab_size"]) + 1, self.dim,
                         combiner=f.get("combiner", "mean"),
                         multi_valued=f["kind"] == "multi",
                         initializer=initializer, name=f["name"] + "_embedding")
        for f in self.features]
    self.projection = None
    if self.combine == "concat":
      self.projection = keras.layers.Dense(self.dim, name="projection")

  def call(self, item_ids):
    item_ids = tf.cast(item_ids, tf.int64)
    parts = []
    if self.id_embedding is not None:
      parts.append(self.id_embedding(item_ids))                      # [..., D]
    if self.item_features is not None:
      values = self.item_features(item_ids)  # name -> [...] or [..., F]
      for f, embedding in zip(self.features, self.feature_embeddings):
        parts.append(embedding(values[f["name"]]))                   # [..., D]
    if self.combine == "sum":
      output = tf.add_n(parts)                                       # [..., D]
    else:
      output = self.projection(tf.concat(parts, axis=-1))           # [..., D]
    known = tf.logical_and(item_ids > 0, item_ids <= self.num_items)  # [...]
    return output * tf.cast(known, output.dtype)[..., None]          # [..., D]

  def get_config(self):
    config = super().get_config()
    specs = (self.item_features.feature_specs
             if self.item_features is not None else None)
    config.update(num_items=self.num_items, dim=self.dim,
                  features=[dict(f) for f in self.features],
                  feature_specs=_plain(specs), combine=self.combine,
                  use_item_id=self.use_item_id, initializer=self.initializer)
    return config


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
