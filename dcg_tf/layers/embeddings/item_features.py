"""Item catalog arrays held in the graph: item id -> its feature values.

docs/design.md: item features are not carried in batches; towers gather them
from the catalog inside the graph, so training, evaluation and the exported
item tower share one code path. The arrays are non-trainable weights: they are
checkpointed and exported with the tower, while the layer config stays small
(names, shapes and dtypes only).
"""

import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras


@keras.utils.register_keras_serializable(package="dcg_tf")
class ItemFeatures(keras.layers.Layer):
  """Looks up catalog features of item ids.

  Row `i` of every array describes item `i`; row 0 is padding/unknown. Ids
  outside `[0, N]` (unknown items) read row 0.

  Args:
    feature_arrays: dict name -> integer array of shape [N+1] (single-valued)
      or [N+1, F] (multi-valued, 0-padded), e.g.
      `ProcessedDataset.item_features`. All arrays must have N+1 rows.
    feature_specs: the config form, dict name -> {"shape": [...], "dtype": str};
      used by `from_config`, which creates zero-filled weights that a checkpoint
      or `set_weights` then fills. Give `feature_arrays` or `feature_specs`.

  Call:
    item_ids: int [...] -> dict name -> [...] or [..., F] (dtype of the array),
    plus "item": the ids themselves (int64).

  Example:
    >>> features = ItemFeatures({"category": np.array([0, 2, 1], np.int32)})
    >>> features(tf.constant([1, 2]))   # {"category": [2, 1], "item": [1, 2]}
  """

  def __init__(self, feature_arrays=None, feature_specs=None, **kwargs):
    kwargs.setdefault("trainable", False)
    super().__init__(**kwargs)
    if (feature_arrays is None) == (feature_specs is None):
      raise ValueError("ItemFeatures %r: give exactly one of feature_arrays and "
                       "feature_specs" % self.name)
    if feature_arrays is not None:
      feature_specs = {name: _spec_of(name, array)
                       for name, array in feature_arrays.items()}
    # The arrays live on in the weights only: keeping the NumPy copies too would
    # double the catalog's memory.
    self.feature_arrays = None
    self.feature_specs = {
        name: {"shape": [int(d) for d in spec["shape"]],
               "dtype": tf.as_dtype(spec["dtype"]).name}
        for name, spec in sorted(feature_specs.items())}
    rows = {spec["shape"][0] for spec in self.feature_specs.values()}
    if len(rows) > 1:
      raise ValueError(
          "ItemFeatures %r: arrays disagree on the number of rows (N+1): %s"
          % (self.name, {n: s["shape"] for n, s in self.feature_specs.items()}))
    self.num_rows = rows.pop() if rows else 0
    if "item" in self.feature_specs:
      raise ValueError("ItemFeatures %r: 'item' is reserved for the ids" % self.name)
    self.tables = {}
    for name, spec in self.feature_specs.items():
      self.tables[name] = self.add_weight(
          name=name, shape=spec["shape"], dtype=spec["dtype"],
          initializer="zeros", trainable=False)
      if feature_arrays is not None:
        self.tables[name].assign(np.asarray(feature_arrays[name]))

  def call(self, item_ids):
    item_ids = tf.cast(item_ids, tf.int64)
    known = tf.logical_and(item_ids >= 0, item_ids < self.num_rows)   # [...]
    safe = tf.where(known, item_ids, tf.zeros_like(item_ids))         # [...]
    outputs = {name: tf.gather(table, safe)                           # [...] or [..., F]
               for name, table in self.tables.items()}
    outputs["item"] = item_ids
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(feature_specs={
        name: {"shape": list(spec["shape"]), "dtype": spec["dtype"]}
        for name, spec in self.feature_specs.items()})
    return config


def _spec_of(name, array):
  array = np.asarray(array)
  if array.ndim not in (1, 2):
    raise ValueError("ItemFeatures: feature %r must have shape [N+1] or [N+1, F], "
                     "got %s" % (name, array.shape))
  if not np.issubdtype(array.dtype, np.integer):
    raise ValueError("ItemFeatures: feature %r must hold integer indices, got "
                     "dtype %s" % (name, array.dtype))
  if array.size and array.min() < 0:
    raise ValueError("ItemFeatures: feature %r has negative values (min %d); "
                     "0 is padding/unknown" % (name, array.min()))
  return {"shape": list(array.shape), "dtype": array.dtype.name}
