"""ItemEmbedding: NumPy reference for "sum" and "concat", padding, validation."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from tests.layer_test_util import run_layer_test

FEATURES = [{"name": "category", "kind": "single", "vocab_size": 3},
            {"name": "attribute", "kind": "multi", "vocab_size": 4, "max_len": 2}]


def _catalog():
  return {"category": np.array([0, 2, 1, 3, 3], np.int32),
          "attribute": np.array([[0, 0], [1, 4], [2, 0], [0, 0], [3, 3]], np.int32),
          "item_count": np.array([0, 5, 1, 1, 2], np.int64)}  # unused: not listed


def _numpy_parts(layer, ids):
  catalog = _catalog()
  id_table = layer.id_embedding.embeddings.numpy()
  cat_table = layer.feature_embeddings[0].embeddings.numpy()
  att_table = layer.feature_embeddings[1].embeddings.numpy()
  e_id = id_table[ids] * (ids > 0)[..., None]
  cat = catalog["category"][ids]
  e_cat = cat_table[cat] * (cat > 0)[..., None]
  att = catalog["attribute"][ids]
  valid = att > 0
  e_att = (att_table[att] * valid[..., None]).sum(-2) / np.maximum(
      valid.sum(-1), 1)[..., None]
  return e_id, e_cat, e_att


def test_sum_is_id_plus_feature_embeddings():
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), combine="sum")
  ids = np.array([[1, 2], [4, 0]])
  got = layer(tf.constant(ids)).numpy()
  e_id, e_cat, e_att = _numpy_parts(layer, ids)
  expected = (e_id + e_cat + e_att) * (ids > 0)[..., None]
  np.testing.assert_allclose(got, expected, atol=1e-6)
  np.testing.assert_array_equal(got[1, 1], np.zeros(5))  # padding item


def test_concat_is_projection_of_concatenation():
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), combine="concat")
  ids = np.array([3, 1, 0, 7])  # 7 is unknown
  got = layer(tf.constant(ids)).numpy()
  e_id, e_cat, e_att = _numpy_parts(layer, np.where(ids <= 4, ids, 0))
  kernel, bias = [w.numpy() for w in layer.projection.weights]
  expected = np.concatenate([e_id, e_cat, e_att], -1) @ kernel + bias
  np.testing.assert_allclose(got[:2], expected[:2], atol=1e-5)
  # Padding and unknown items embed to zeros, not to the projection's bias.
  np.testing.assert_array_equal(got[2:], np.zeros((2, 5)))
  # Item 3 has no attributes: its attribute part is zero (mean over nothing).
  np.testing.assert_array_equal(e_att[0], np.zeros(5))


def test_features_only_item_embedding_shares_by_category():
  # use_item_id=False with only the category: items 3 and 4 (category 3) agree.
  layer = ItemEmbedding(4, 5, FEATURES[:1], _catalog(), combine="sum",
                        use_item_id=False)
  got = layer(tf.constant([3, 4, 1])).numpy()
  np.testing.assert_allclose(got[0], got[1])
  assert not np.allclose(got[0], got[2])


def test_validation_names_the_problem():
  with pytest.raises(ValueError, match="lack.*'brand'"):
    ItemEmbedding(4, 5, [{"name": "brand", "kind": "single", "vocab_size": 2}],
                  _catalog())
  with pytest.raises(ValueError, match="features\\[0\\].*kind 'list'"):
    ItemEmbedding(4, 5, [{"name": "category", "kind": "list", "vocab_size": 3}],
                  _catalog())
  with pytest.raises(ValueError, match="'attribute' is 'single'"):
    ItemEmbedding(4, 5, [{"name": "attribute", "kind": "single", "vocab_size": 4}],
                  _catalog())
  with pytest.raises(ValueError, match="num_items \\+ 1 = 11"):
    ItemEmbedding(10, 5, FEATURES, _catalog())
  with pytest.raises(ValueError, match="need feature_arrays"):
    ItemEmbedding(4, 5, FEATURES)


@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_layer_contract(combine):
  layer = run_layer_test(
      ItemEmbedding,
      dict(num_items=4, dim=6, features=FEATURES, feature_arrays=_catalog(),
           combine=combine),
      tf.constant([[1, 2, 0], [4, 3, 3]], tf.int64), (2, 3, 6),
      sparse_weights=("embeddings",))
  # Only the listed features are kept (item_count is not), as specs, not arrays.
  assert layer.get_config()["feature_specs"] == {
      "attribute": {"shape": [5, 2], "dtype": "int32"},
      "category": {"shape": [5], "dtype": "int32"}}
