"""ValueDropout: keep-masks keyed by the seed, drop rate, the masked mean it feeds."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.augmentations.value_dropout import ValueDropout
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding

FEATURES = [{"name": "attribute", "kind": "multi", "vocab_size": 6},
            {"name": "title_token", "kind": "multi", "vocab_size": 9}]


def _catalog(num_items=30):
  rng = np.random.default_rng(0)
  arrays = {"attribute": rng.integers(0, 7, size=(num_items + 1, 4)),
            "title_token": rng.integers(0, 10, size=(num_items + 1, 3))}
  for array in arrays.values():
    array[0] = 0
  return {name: array.astype(np.int32) for name, array in arrays.items()}


def test_masks_are_keyed_by_the_seed():
  drop = ValueDropout(0.5, {"attribute": 4, "title_token": 4})
  ids = tf.zeros([64], tf.int64)
  a = drop(ids, seed=tf.constant([3, 10]))
  b = drop(ids, seed=tf.constant([3, 10]))
  c = drop(ids, seed=tf.constant([3, 11]))
  assert a["attribute"].shape == (64, 4) and a["attribute"].dtype == tf.bool
  for name in a:
    np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
    assert not np.array_equal(a[name].numpy(), c[name].numpy())
  # Two features of the same length get independent draws.
  assert not np.array_equal(a["attribute"].numpy(), a["title_token"].numpy())
  # Inside tf.function (the traced train_step) the same seed draws the same.
  graph = tf.function(lambda s: drop(ids, seed=s))(tf.constant([3, 10]))
  np.testing.assert_array_equal(graph["attribute"].numpy(), a["attribute"].numpy())


def test_drop_rate():
  mask = ValueDropout(0.3, {"attribute": 10})(
      tf.zeros([50, 40], tf.int64), seed=tf.constant([0, 0]))["attribute"]
  assert mask.shape == (50, 40, 10)
  # 20,000 draws: the dropped fraction is 0.3 within 6 standard deviations
  # (sqrt(0.3 * 0.7 / 20000) = 0.0032).
  assert abs(1.0 - np.mean(mask.numpy()) - 0.3) < 0.02
  assert np.all(ValueDropout(0.0, {"attribute": 10})(
      tf.zeros([5], tf.int64), seed=tf.constant([0, 0]))["attribute"].numpy())


def test_pooling_with_dropped_values_is_the_numpy_masked_mean():
  catalog = _catalog()
  embedding = ItemEmbedding(30, 6, FEATURES, catalog, combine="sum")
  ids = np.arange(1, 31)
  keep = ValueDropout(0.4, embedding.multi_valued_lengths)(
      tf.constant(ids), seed=tf.constant([7, 2]))
  fields = embedding.field_embeddings(tf.constant(ids), value_mask=keep).numpy()
  for row, (name, table) in enumerate(
      zip(["attribute", "title_token"], embedding.feature_embeddings), start=1):
    values = catalog[name][ids]                                      # [30, L]
    valid = (values > 0) & keep[name].numpy()                        # [30, L]
    vectors = table.embeddings.numpy()[values] * valid[..., None]    # [30, L, 6]
    expected = vectors.sum(1) / np.maximum(valid.sum(1), 1)[:, None]
    np.testing.assert_allclose(fields[:, row], expected, atol=1e-6)


def test_validation_and_config():
  with pytest.raises(ValueError, match="rate must be in \\[0, 1\\)"):
    ValueDropout(1.0, {"attribute": 3})
  drop = ValueDropout(0.2, {"attribute": 3}, name="values")
  clone = ValueDropout.from_config(drop.get_config())
  ids, seed = tf.constant([[1, 2]]), tf.constant([1, 1])
  np.testing.assert_array_equal(clone(ids, seed=seed)["attribute"].numpy(),
                                drop(ids, seed=seed)["attribute"].numpy())
