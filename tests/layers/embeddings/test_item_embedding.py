"""ItemEmbedding: NumPy reference per combine, the two steps, padding, validation."""

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


def _numpy_parts(layer, ids, keep_attribute=None):
  """(e_id, e_cat, e_att) by NumPy gathers; `keep_attribute` drops values."""
  catalog = _catalog()
  id_table = layer.id_embedding.embeddings.numpy()
  cat_table = layer.feature_embeddings[0].embeddings.numpy()
  att_table = layer.feature_embeddings[1].embeddings.numpy()
  e_id = id_table[ids] * (ids > 0)[..., None]
  cat = catalog["category"][ids]
  e_cat = cat_table[cat] * (cat > 0)[..., None]
  att = catalog["attribute"][ids]
  valid = att > 0
  if keep_attribute is not None:
    valid = valid & keep_attribute
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


@pytest.mark.parametrize("combine", ["sum", "concat", "id_plus_concat"])
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


@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_field_embeddings_are_the_gathered_and_pooled_parts(combine):
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), combine=combine)
  ids = np.array([[1, 2, 0], [4, 3, 9]])  # 0 padding, 9 unknown
  fields = layer.field_embeddings(tf.constant(ids)).numpy()
  assert layer.field_names == ("item", "category", "attribute")
  assert layer.multi_valued_lengths == {"attribute": 2}
  assert fields.shape == (2, 3, 3, 5)
  e_id, e_cat, e_att = _numpy_parts(layer, np.where(ids <= 4, ids, 0))
  np.testing.assert_allclose(fields, np.stack([e_id, e_cat, e_att], -2), atol=1e-6)


def test_field_names_without_the_id():
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), use_item_id=False)
  assert layer.field_names == ("category", "attribute")
  assert layer.field_embeddings(tf.constant([1, 2])).shape == (2, 2, 5)


@pytest.mark.parametrize("combine", ["sum", "concat", "id_plus_concat"])
@pytest.mark.parametrize("use_item_id", [True, False])
def test_call_is_combine_of_field_embeddings_bit_for_bit(combine, use_item_id):
  layer = ItemEmbedding(4, 6, FEATURES, _catalog(), combine=combine,
                        use_item_id=use_item_id)
  ids = tf.constant([[1, 2, 3], [4, 4, 1]])  # known ids only
  got = layer(ids).numpy()
  two_steps = layer.combine_fields(layer.field_embeddings(ids)).numpy()
  np.testing.assert_array_equal(got, two_steps)
  # An identity transform goes through the same two steps.
  np.testing.assert_array_equal(
      layer(ids, field_transform=lambda fields: fields).numpy(), got)
  # Padding and unknown ids still embed to zeros, transform or not.
  for transform in (None, lambda fields: fields + 1.0):
    np.testing.assert_array_equal(
        layer(tf.constant([0, 9]), field_transform=transform).numpy(),
        np.zeros((2, 6)))


def test_value_mask_drops_values_before_the_mean():
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), combine="sum")
  ids = np.array([1, 4, 4, 2])  # attributes [1, 4], [3, 3], [3, 3], [2, 0]
  keep = np.array([[True, False], [False, True], [False, False], [True, True]])
  fields = layer.field_embeddings(
      tf.constant(ids), value_mask={"attribute": tf.constant(keep)}).numpy()
  e_id, e_cat, e_att = _numpy_parts(layer, ids, keep_attribute=keep)
  np.testing.assert_allclose(fields, np.stack([e_id, e_cat, e_att], -2), atol=1e-6)
  table = layer.feature_embeddings[1].embeddings.numpy()
  # Hand-worked rows: item 1 keeps attribute 1 only; item 4 keeps one of its
  # two 3s (mean of one 3 is row 3); all dropped is zero.
  np.testing.assert_allclose(fields[0, 2], table[1], atol=1e-6)
  np.testing.assert_allclose(fields[1, 2], table[3], atol=1e-6)
  np.testing.assert_array_equal(fields[2, 2], np.zeros(5))
  # The id and category rows do not depend on the value mask.
  plain = layer.field_embeddings(tf.constant(ids)).numpy()
  np.testing.assert_array_equal(fields[:, :2], plain[:, :2])
  with pytest.raises(ValueError, match="'category'.*multi-valued.*'attribute'"):
    layer.field_embeddings(tf.constant(ids),
                           value_mask={"category": tf.constant([True] * 4)})


def test_id_plus_concat_is_id_plus_concatenation_of_narrow_features():
  # CLRec B.1.1 read literally: D = 5 split among 2 features: widths 3 and 2.
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), combine="id_plus_concat")
  ids = np.array([1, 4, 2])
  got = layer(tf.constant(ids)).numpy()
  assert [e.dim for e in layer.feature_embeddings] == [3, 2]
  e_id, e_cat, e_att = _numpy_parts(layer, ids)
  assert e_cat.shape == (3, 3) and e_att.shape == (3, 2)
  np.testing.assert_allclose(got, e_id + np.concatenate([e_cat, e_att], -1),
                             atol=1e-6)
  fields = layer.field_embeddings(tf.constant(ids)).numpy()  # [3, 3, 5]
  np.testing.assert_array_equal(fields[:, 1, 3:], np.zeros((3, 2)))
  np.testing.assert_array_equal(fields[:, 2, :3], np.zeros((3, 3)))
  # A transform writing outside a field's slot does not leak into the others:
  # the category row set to all ones adds ones to columns 0-2 only.
  def ones_for_category(f):
    return tf.concat([f[:, :1], tf.ones_like(f[:, 1:2]), f[:, 2:]], axis=1)
  transformed = layer(tf.constant(ids), field_transform=ones_for_category).numpy()
  expected = e_id + np.concatenate([np.ones((3, 3)), e_att], -1)
  np.testing.assert_allclose(transformed, expected, atol=1e-6)
  with pytest.raises(ValueError, match="dim=1 among the 2 features"):
    ItemEmbedding(4, 1, FEATURES, _catalog(), combine="id_plus_concat")


def test_checkpoint_variable_paths_are_pinned(tmp_path):
  # Wave-1 checkpoints must keep restoring: these are the paths they hold.
  layer = ItemEmbedding(4, 5, FEATURES, _catalog(), combine="concat")
  layer(tf.constant([1, 2]))
  path = tf.train.Checkpoint(embedding=layer).write(str(tmp_path / "ckpt"))
  names = sorted(n for n, _ in tf.train.list_variables(path)
                 if n.startswith("embedding/"))
  assert names == [
      "embedding/feature_embeddings/0/embeddings/.ATTRIBUTES/VARIABLE_VALUE",
      "embedding/feature_embeddings/1/embeddings/.ATTRIBUTES/VARIABLE_VALUE",
      "embedding/id_embedding/embeddings/.ATTRIBUTES/VARIABLE_VALUE",
      "embedding/item_features/attribute/.ATTRIBUTES/VARIABLE_VALUE",
      "embedding/item_features/category/.ATTRIBUTES/VARIABLE_VALUE",
      "embedding/projection/bias/.ATTRIBUTES/VARIABLE_VALUE",
      "embedding/projection/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
