"""SavedModel round trip of the towers, loaded where dcg_tf is never imported.

The serving wrappers below are test-only: experiments/export.py builds the real
ones (with string lookups) on the same pattern.
"""

import numpy as np
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower
from tests.layer_test_util import savedmodel_outputs_in_fresh_process

NUM_ITEMS = 30
FEATURES = [{"name": "category", "kind": "single", "vocab_size": 4},
            {"name": "title_token", "kind": "multi", "vocab_size": 9, "max_len": 3}]


def _catalog(rng):
  title = rng.integers(0, 10, size=(NUM_ITEMS + 1, 3)).astype(np.int32)
  title[0] = 0
  category = rng.integers(1, 5, size=NUM_ITEMS + 1).astype(np.int32)
  category[0] = 0
  return {"category": category, "title_token": title}


class _ItemServing(tf.Module):

  def __init__(self, tower):
    super().__init__()
    self.tower = tower

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="item")])
  def serve(self, item):
    return {"embedding": self.tower(item, training=False)}


class _UserServing(tf.Module):

  def __init__(self, tower):
    super().__init__()
    self.tower = tower

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int64, name="history"),
      tf.TensorSpec([None, None], tf.bool, name="history_mask")])
  def serve(self, history, history_mask):
    batch = {"history": history, "history_mask": history_mask}
    return {"embedding": self.tower(batch, training=False)}


def test_towers_round_trip_through_savedmodel_without_dcg_tf(tmp_path):
  rng = np.random.default_rng(0)
  embedding = ItemEmbedding(NUM_ITEMS, 16, FEATURES, _catalog(rng), combine="concat")
  towers = {
      "item": (_ItemServing(ItemTower(embedding, output_dim=8, hidden_units=[16],
                                      l2_normalize=True, dropout=0.3)),
               {"item": np.array([1, 7, 30, 0, 99], np.int64)}),
  }
  history = np.array([[3, 5, 9, 0, 0, 0], [30, 0, 0, 0, 0, 0], [2, 2, 4, 8, 16, 1]],
                     np.int64)
  user_inputs = {"history": history, "history_mask": history > 0}
  towers["mean_pooling"] = (
      _UserServing(MeanPoolingUserTower(embedding, output_dim=8, hidden_units=[16],
                                        l2_normalize=True, dropout=0.3)),
      user_inputs)
  towers["self_attention"] = (
      _UserServing(SelfAttentionUserTower(embedding, max_len=6, num_blocks=2,
                                          num_heads=2, dropout=0.3, output_dim=8)),
      user_inputs)
  exports, expected = [], []
  for name, (module, inputs) in towers.items():
    expected.append(module.serve(**{k: tf.constant(v) for k, v in inputs.items()})
                    ["embedding"].numpy())
    directory = tmp_path / name
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    exports.append((directory, inputs, tmp_path / (name + ".npy")))
  loaded = savedmodel_outputs_in_fresh_process(exports)
  for name, want, got in zip(towers, expected, loaded):
    assert got.shape == want.shape, name
    assert np.max(np.abs(got - want)) < 1e-5, name
  # The item tower is cosine: real items get unit rows; padding (0) and the
  # unknown id 99 both embed to zero before the MLP, so they get the same row.
  np.testing.assert_allclose(np.linalg.norm(loaded[0][:3], axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(loaded[0][3], loaded[0][4], atol=1e-6)
