"""ItemFeatures: lookups equal NumPy indexing, small config, weights checkpointed."""

import json

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.embeddings.item_features import ItemFeatures


def _catalog():
  # 4 real items (rows 1..4), row 0 = padding.
  return {
      "category": np.array([0, 2, 1, 2, 3], np.int32),
      "attribute": np.array([[0, 0], [1, 4], [2, 0], [0, 0], [3, 3]], np.int32),
  }


def test_lookup_matches_numpy_indexing_and_unknown_ids_read_row_zero():
  catalog = _catalog()
  layer = ItemFeatures(catalog)
  ids = np.array([[1, 4], [0, 9]])  # 9 is unknown -> row 0
  out = layer(tf.constant(ids, tf.int64))
  safe = np.where(ids <= 4, ids, 0)
  np.testing.assert_array_equal(out["category"].numpy(), catalog["category"][safe])
  np.testing.assert_array_equal(out["attribute"].numpy(), catalog["attribute"][safe])
  np.testing.assert_array_equal(out["item"].numpy(), ids)
  assert out["category"].dtype == tf.int32
  # Hand-worked: item 4 has category 3 and attributes [3, 3].
  assert out["category"].numpy()[0, 1] == 3
  np.testing.assert_array_equal(out["attribute"].numpy()[0, 1], [3, 3])


def test_arrays_are_non_trainable_weights_and_config_is_small(tmp_path):
  catalog = _catalog()
  layer = ItemFeatures(catalog)
  assert not layer.trainable_weights and len(layer.non_trainable_weights) == 2
  config = layer.get_config()
  text = json.dumps(config)
  assert config["feature_specs"] == {
      "attribute": {"shape": [5, 2], "dtype": "int32"},
      "category": {"shape": [5], "dtype": "int32"}}
  assert "feature_arrays" not in config and len(text) < 500
  # from_config gives zero tables that a checkpoint fills with the arrays.
  path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
  clone = ItemFeatures.from_config(json.loads(text))
  assert clone(tf.constant([1]))["category"].numpy()[0] == 0
  tf.train.Checkpoint(layer=clone).restore(path).assert_consumed()
  out = clone(tf.constant([1, 2, 3, 4], tf.int64))
  np.testing.assert_array_equal(out["category"].numpy(), catalog["category"][1:])
  np.testing.assert_array_equal(out["attribute"].numpy(), catalog["attribute"][1:])


def test_bad_catalogs_raise_naming_the_feature():
  with pytest.raises(ValueError, match="rows"):
    ItemFeatures({"a": np.zeros(5, np.int32), "b": np.zeros(4, np.int32)})
  with pytest.raises(ValueError, match="'price'.*integer"):
    ItemFeatures({"price": np.zeros(5, np.float32)})
  with pytest.raises(ValueError, match="'brand'.*negative"):
    ItemFeatures({"brand": np.array([0, -1], np.int64)})
  with pytest.raises(ValueError, match="'title'.*shape"):
    ItemFeatures({"title": np.zeros((2, 2, 2), np.int32)})


def test_graph_mode_lookup():
  layer = ItemFeatures(_catalog())
  fn = tf.function(lambda ids: layer(ids)["category"])
  np.testing.assert_array_equal(fn(tf.constant([3, 2], tf.int64)).numpy(), [2, 1])
