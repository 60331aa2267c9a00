"""Shared fixtures of the serving tests: a tiny dataset, towers and their exports.

The towers are the package's own (`dcg_tf.layers`), with random weights: the
tests check that export, index and retrieval reproduce whatever the towers
compute, so training them would only cost time. Exports are session-scoped
(one SavedModel write per tower kind for all serving tests).
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from dcg_tf.towers.multi_clrec_user_tower import MultiCLRecUserTower
from dcg_tf.training_state.queue import FIFOQueue
from dcg_tf.models.base import RetrievalModel
from dcg_tf.serving.export import export_towers
from tests.data import fixtures

MAX_LEN = 6
NUM_ITEMS = 40
NUM_USERS = 10


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
  directory = fixtures.write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"),
                                          num_users=NUM_USERS, num_items=NUM_ITEMS)
  return ProcessedDataset.load(directory)


def build_mean_towers(data, seed=0):
  """ItemTower + MeanPoolingUserTower sharing an ItemEmbedding (with features)."""
  keras.utils.set_random_seed(seed)
  embedding = ItemEmbedding(
      num_items=data.num_items, dim=8,
      features=[f for f in data.schema["item_features"]],
      feature_arrays=data.item_features)
  item_tower = ItemTower(embedding, output_dim=8, hidden_units=[16])
  user_tower = MeanPoolingUserTower(embedding, output_dim=8, hidden_units=[16])
  return user_tower, item_tower


def build_multi_interest_towers(data, seed=0):
  """ItemTower (l2-normalised) + MultiCLRecUserTower returning 2 interests."""
  keras.utils.set_random_seed(seed)
  embedding = ItemEmbedding(num_items=data.num_items, dim=8)
  item_tower = ItemTower(embedding, l2_normalize=True)
  category = data.item_features["category"].astype(np.int64)
  user_tower = MultiCLRecUserTower(
      embedding, category, num_categories=int(category.max()), output_dim=8,
      num_intentions=4, num_serving_interests=2, use_time_gap=True)
  return user_tower, item_tower


QUEUE_CAPACITY = 37  # distinctive shapes: [37, 8] must not appear in an export


class QueueModel(RetrievalModel):
  """A training model holding a training-only queue next to its towers."""

  def __init__(self, user_tower, item_tower, **kwargs):
    super().__init__(user_tower, item_tower, **kwargs)
    self.negatives = FIFOQueue(QUEUE_CAPACITY, entry_shape=(8,),
                               entry_dtype="float32")


@dataclasses.dataclass
class Exported:
  export_dir: str
  user_tower: object
  item_tower: object
  model: object = None


@pytest.fixture(scope="session")
def mean_export(tiny_data, tmp_path_factory):
  """The mean-pooling two-tower, exported from a model that holds a queue."""
  user_tower, item_tower = build_mean_towers(tiny_data)
  model = QueueModel(user_tower, item_tower)
  model.negatives.enqueue(item_tower(tf.constant([1, 2, 3], tf.int64)))
  export_dir = str(tmp_path_factory.mktemp("mean_export"))
  export_towers(model.user_tower, model.item_tower, tiny_data, export_dir,
                max_len=MAX_LEN)
  return Exported(export_dir, user_tower, item_tower, model)


@pytest.fixture(scope="session")
def multi_export(tiny_data, tmp_path_factory):
  """The multi-interest towers (2 serving interests, cosine), exported."""
  user_tower, item_tower = build_multi_interest_towers(tiny_data)
  export_dir = str(tmp_path_factory.mktemp("multi_export"))
  export_towers(user_tower, item_tower, tiny_data, export_dir, max_len=MAX_LEN)
  return Exported(export_dir, user_tower, item_tower)


def reference_batch(data, histories, max_len, timestamps=None, query_timestamps=None,
                    users=None):
  """The tower input for raw histories, built in plain Python.

  Independent of the exported graph: unknown ids and '' are dropped, the last
  `max_len` known items kept, left-aligned, 0-padded (docs/design.md batches).
  """
  index = {item: i + 1 for i, item in enumerate(data.vocab("item"))}
  user_index = {user: u + 1 for u, user in enumerate(data.vocab("user"))}
  rows, ts_rows = [], []
  for q, history in enumerate(histories):
    ts = timestamps[q] if timestamps is not None else [0] * len(history)
    kept = [(index[item], t) for item, t in zip(history, ts) if item in index]
    kept = kept[-max_len:]
    rows.append([i for i, _ in kept] + [0] * (max_len - len(kept)))
    ts_rows.append([t for _, t in kept] + [0] * (max_len - len(kept)))
  history = tf.constant(rows, tf.int64)
  num = len(histories)
  return {
      "history": history,
      "history_mask": history > 0,
      "history_timestamp": tf.constant(ts_rows, tf.int64),
      "target_timestamp": tf.constant(query_timestamps or [0] * num, tf.int64),
      "user": tf.constant([user_index.get(u, 0) for u in (users or [""] * num)],
                          tf.int64),
  }


@pytest.fixture(scope="session")
def make_reference_batch():
  """`reference_batch` as a fixture (test modules cannot import conftest)."""
  return reference_batch
