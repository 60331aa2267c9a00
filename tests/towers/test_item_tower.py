"""ItemTower: NumPy forward pass, normalisation, attributes, layer contract,
the augmentation hook, and that no augmentation weight enters the tower."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.augmentations.element_dropout import ElementDropout
from dcg_tf.layers.augmentations.field_masking import FieldMasking
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from tests.layer_test_util import run_layer_test

CATALOG = {"category": np.array([0, 1, 2, 1, 2, 2], np.int32)}
FEATURES = [{"name": "category", "kind": "single", "vocab_size": 2}]


def _embedding(combine="concat"):
  return ItemEmbedding(5, 8, FEATURES, CATALOG, combine=combine)


@pytest.mark.parametrize("l2_normalize", [False, True])
def test_forward_matches_numpy(l2_normalize):
  # Seeded: an unlucky draw can leave a row with every ReLU dead (output 0).
  keras.utils.set_random_seed(0)
  tower = ItemTower(_embedding(), output_dim=4, hidden_units=[6],
                    activation="relu", l2_normalize=l2_normalize, dropout=0.5)
  ids = np.array([1, 5, 3])
  got = tower(tf.constant(ids)).numpy()  # training=False: dropout is off
  x = tower.item_embedding(tf.constant(ids)).numpy()
  w1, b1 = [w.numpy() for w in tower.head.hidden_layers[0].weights]
  w2, b2 = [w.numpy() for w in tower.head.output_layer.weights]
  expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
  if l2_normalize:
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert tower.embedding_dim == 4 and tower.normalized == l2_normalize


def test_plain_embedding_tower_is_the_item_embedding():
  embedding = _embedding("sum")
  tower = ItemTower(embedding)
  ids = tf.constant([2, 4])
  np.testing.assert_array_equal(tower(ids).numpy(), embedding(ids).numpy())
  assert tower.embedding_dim == 8 and not tower.normalized
  assert ItemTower(embedding, hidden_units=[3]).embedding_dim == 3


def test_dropout_only_in_training():
  tower = ItemTower(_embedding(), output_dim=4, hidden_units=[64], dropout=0.5)
  ids = tf.constant([1, 2, 3, 4])
  a, b = tower(ids).numpy(), tower(ids).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(tower(ids, training=True).numpy(), a)


def test_layer_contract():
  run_layer_test(
      ItemTower,
      dict(item_embedding=_embedding(), output_dim=4, hidden_units=[6],
           l2_normalize=True),
      tf.constant([1, 2, 5], tf.int64), (3, 4),
      sparse_weights=("item_id_embedding", "category_embedding"))


def test_restores_checkpoints_of_the_layout_before_projection_head(tmp_path):
  # Before ProjectionHead the tower held its Dense layers itself; the variables
  # of such checkpoints sit at `<tower>/hidden_layers/0/kernel`,
  # `<tower>/output_layer/kernel`, which the tower must still restore.
  class OldLayout(keras.layers.Layer):

    def __init__(self, item_embedding):
      super().__init__()
      self.item_embedding = item_embedding
      self.hidden_layers = [keras.layers.Dense(6, activation="relu")]
      self.dropout_layers = [keras.layers.Dropout(0.0)]
      self.output_layer = keras.layers.Dense(4)

    def call(self, ids):
      return self.output_layer(self.hidden_layers[0](self.item_embedding(ids)))

  ids = tf.constant([1, 2, 5])
  old = OldLayout(_embedding())
  expected = old(ids).numpy()
  path = tf.train.Checkpoint(tower=old).write(str(tmp_path / "ckpt"))
  tower = ItemTower(_embedding(), output_dim=4, hidden_units=[6])
  tower(ids)
  status = tf.train.Checkpoint(tower=tower).read(path)
  status.assert_consumed()
  status.assert_existing_objects_matched()
  np.testing.assert_allclose(tower(ids).numpy(), expected, atol=1e-6)


# A catalog with a multi-valued feature, for the augmentation hook.
AUG_CATALOG = {"category": np.array([0, 1, 2, 1, 2, 2], np.int32),
               "tag": np.array([[0, 0, 0], [1, 2, 3], [2, 0, 0], [3, 3, 1],
                                [1, 0, 0], [2, 3, 0]], np.int32)}
AUG_FEATURES = FEATURES + [{"name": "tag", "kind": "multi", "vocab_size": 3}]


def _augmented_tower():
  keras.utils.set_random_seed(0)
  embedding = ItemEmbedding(5, 4, AUG_FEATURES, AUG_CATALOG, combine="concat")
  # A linear head: no dead ReLU can zero a row or block a gradient.
  return ItemTower(embedding, output_dim=3, l2_normalize=True)


def _numpy_fields(embedding, ids, keep_tag):
  """[B, 3, 4] rows (id, category, tag) by NumPy gathers and masked means."""
  tables = [embedding.id_embedding.embeddings.numpy()] + [
      e.embeddings.numpy() for e in embedding.feature_embeddings]
  e_id = tables[0][ids]
  e_cat = tables[1][AUG_CATALOG["category"][ids]]
  tags = AUG_CATALOG["tag"][ids]                                    # [B, 3]
  valid = (tags > 0) & keep_tag
  e_tag = (tables[2][tags] * valid[..., None]).sum(1) / np.maximum(
      valid.sum(1), 1)[:, None]
  return np.stack([e_id, e_cat, e_tag], 1)


def _numpy_head(tower, x):
  kernel, bias = [w.numpy() for w in tower.head.output_layer.weights]
  y = x @ kernel + bias
  return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_augmented_view_masks_fields_and_drops_values():
  # SSL-CFM section 3.2: the category field masked by its default embedding in
  # rows 0 and 2, then tag values dropped before pooling.
  tower = _augmented_tower()
  tower(tf.constant([1]))
  masking = FieldMasking(num_fields=3, dim=4)
  ids = np.array([1, 3, 5])
  mask = np.array([[False, True, False], [False, False, False],
                   [False, True, False]])
  keep_tag = np.array([[True, False, True], [False, True, True],
                       [True, True, True]])
  got = tower(tf.constant(ids), value_mask={"tag": tf.constant(keep_tag)},
              field_transform=lambda f: masking(f, tf.constant(mask))).numpy()
  fields = _numpy_fields(tower.item_embedding, ids, keep_tag)
  fields = np.where(mask[..., None], masking.default_embeddings.numpy(), fields)
  kernel, bias = [w.numpy() for w in tower.item_embedding.projection.weights]
  x = fields.reshape(3, 12) @ kernel + bias       # concat of the rows, projected
  np.testing.assert_allclose(got, _numpy_head(tower, x), atol=1e-5)
  # With no augmentation the tower is unchanged.
  plain = _numpy_fields(tower.item_embedding, ids, np.ones((3, 3), bool))
  np.testing.assert_allclose(tower(tf.constant(ids)).numpy(),
                             _numpy_head(tower, plain.reshape(3, 12) @ kernel + bias),
                             atol=1e-5)


def test_gradient_reaches_the_default_embeddings_of_masked_fields():
  tower = _augmented_tower()
  masking = FieldMasking(num_fields=3, dim=4)
  mask = tf.constant([[False, True, False], [True, True, False]])
  with tf.GradientTape() as tape:
    out = tower(tf.constant([2, 4]), training=True,
                field_transform=lambda f: masking(f, mask))
    loss = tf.reduce_sum(out * tf.constant([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0]]))
  grad = tape.gradient(loss, masking.default_embeddings).numpy()   # [3, 4]
  # Fields 0 and 1 are masked somewhere, field 2 (tag) nowhere.
  assert np.all(np.abs(grad[:2]).sum(1) > 0)
  np.testing.assert_array_equal(grad[2], np.zeros(4))


def test_element_dropout_on_concat_fields_is_dropout_of_the_concatenation():
  # MicRec Eq. 2: Dropout(f_i^d), f_i^d the concatenation of the field rows.
  tower = _augmented_tower()
  embedding = tower.item_embedding
  ids = tf.constant([1, 2, 3, 4])
  seed = tf.constant([0, 42])
  got = embedding(ids, field_transform=lambda f: ElementDropout(0.5)(f, seed=seed))
  fields = embedding.field_embeddings(ids).numpy()                  # [4, 3, 4]
  kept = ElementDropout(0.5)(tf.ones([4, 3, 4]), seed=seed).numpy() > 0
  concatenation = (np.where(kept, 2.0 * fields, 0.0)).reshape(4, 12)
  kernel, bias = [w.numpy() for w in embedding.projection.weights]
  np.testing.assert_allclose(got.numpy(), concatenation @ kernel + bias, atol=1e-5)


def test_augmentation_weights_never_enter_the_tower(tmp_path):
  tower = _augmented_tower()
  masking = FieldMasking(num_fields=3, dim=4, name="ssl_field_masking")
  ids = tf.constant([1, 2, 5], tf.int64)
  # The very first call is an augmented one (what Keras records for saving).
  tower(ids, training=True, value_mask={"tag": tf.ones([3, 3], tf.bool)},
        field_transform=lambda f: masking(f, tf.constant([True, False, True])))
  expected = tower(ids).numpy()
  assert masking.weights and not any(
      "default_embeddings" in w.name for w in tower.weights)
  # Checkpoint of the tower alone.
  path = tf.train.Checkpoint(tower=tower).write(str(tmp_path / "ckpt"))
  assert not any("default" in n or "masking" in n
                 for n, _ in tf.train.list_variables(path))
  # Config round trip.
  clone = ItemTower.from_config(tower.get_config())
  clone(ids)
  assert len(clone.weights) == len(tower.weights)
  clone.set_weights(tower.get_weights())
  np.testing.assert_array_equal(clone(ids).numpy(), expected)
  # SavedModel with the plain serving call (dcg_tf/serving/export.py's).
  module = tf.Module()
  module.tower = tower
  module.serve = tf.function(
      lambda item: {"embedding": tower(item, training=False)},
      input_signature=[tf.TensorSpec([None], tf.int64, name="item")])
  tf.saved_model.save(module, str(tmp_path / "saved"),
                      signatures={"serving_default": module.serve})
  saved = [n for n, _ in
           tf.train.list_variables(str(tmp_path / "saved/variables/variables"))]
  assert saved and not any("default" in n or "masking" in n for n in saved)
  loaded = tf.saved_model.load(str(tmp_path / "saved"))
  served = loaded.signatures["serving_default"](item=ids)["embedding"].numpy()
  np.testing.assert_allclose(served, expected, atol=1e-6)
