"""dcg_tf.evaluation.diagnostics against NumPy loops and hand values."""

import itertools
import types

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import pipeline
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.evaluation import diagnostics
from dcg_tf import configs
from dcg_tf.models import registry

configs.import_all()
from tests.data import fixtures
# The NumPy re-implementation of Eq. 5-9 of the tower's own tests.
from tests.towers import test_multi_clrec_user_tower as tower_test


def _cosine_loop(x):
  total, pairs = 0.0, 0
  for i, j in itertools.permutations(range(len(x)), 2):
    ni, nj = np.linalg.norm(x[i]), np.linalg.norm(x[j])
    total += 0.0 if ni == 0 or nj == 0 else float(x[i] @ x[j]) / (ni * nj)
    pairs += 1
  return total / pairs


def test_mean_pairwise_cosine_matches_double_loop():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(7, 5)) + 0.5
  assert diagnostics.mean_pairwise_cosine(x) == pytest.approx(_cosine_loop(x), abs=1e-12)
  x[2] = 0.0                                   # a zero row: cosine 0 with the rest
  assert diagnostics.mean_pairwise_cosine(x) == pytest.approx(_cosine_loop(x), abs=1e-12)


def test_collapsed_rows_have_cosine_one_and_rank_one():
  x = np.outer(np.arange(1, 6), [0.3, -1.0, 2.0])     # rank one, positive multiples
  assert diagnostics.mean_pairwise_cosine(x) == pytest.approx(1.0, abs=1e-12)
  assert diagnostics.effective_rank(x) == pytest.approx(1.0, abs=1e-9)
  assert diagnostics.mean_norm(x) == pytest.approx(
      3.0 * np.linalg.norm([0.3, -1.0, 2.0]), abs=1e-12)     # mean of 1..5 = 3


def test_effective_rank_hand_values():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
  for k in (1, 2, 4):
    x = 2.5 * q[:k]                            # k orthogonal rows of equal norm
    assert diagnostics.effective_rank(x) == pytest.approx(k, abs=1e-9)
  # Singular values 3 and 1: p = (3/4, 1/4), exp(H) = (4/3)^(3/4) 4^(1/4) = 4 / 3^(3/4).
  x = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  assert diagnostics.effective_rank(x) == pytest.approx(4 / 3 ** 0.75, abs=1e-9)
  assert diagnostics.effective_rank(np.zeros((3, 2))) == 0.0
  # Orthogonal rows: cosine 0.
  assert diagnostics.mean_pairwise_cosine(q[:4]) == pytest.approx(0.0, abs=1e-12)


def test_intention_histogram_and_summary():
  assert diagnostics.intention_histogram([2, 0, 2, 2, 3], 5) == [1, 0, 3, 1, 0]
  assert diagnostics.histogram_summary([1, 0, 3, 1, 0]) == {
      "occupied": 3, "largest": 2, "largest_share": 0.6, "total": 5}
  with pytest.raises(ValueError):
    diagnostics.intention_histogram([0, 5], 5)


def test_sample_item_ids_distinct_seeded():
  ids = diagnostics.sample_item_ids(100, 30, seed=4)
  assert ids.size == 30 and np.unique(ids).size == 30
  assert ids.min() >= 1 and ids.max() <= 100
  np.testing.assert_array_equal(ids, diagnostics.sample_item_ids(100, 30, seed=4))
  assert not np.array_equal(ids, diagnostics.sample_item_ids(100, 30, seed=5))
  np.testing.assert_array_equal(diagnostics.sample_item_ids(12, 2000),
                                np.arange(1, 13))          # S > N: every item


def test_item_embedding_report_reads_the_sampled_rows():
  table = np.random.default_rng(1).normal(size=(51, 4)).astype(np.float32)
  model = types.SimpleNamespace(
      item_tower=lambda ids, training=False: tf.gather(table, ids))
  got = diagnostics.item_embedding_report(model, 50, num_samples=10, seed=2)
  rows = table[diagnostics.sample_item_ids(50, 10, seed=2)]
  assert got["num_sampled"] == 10 and got["embedding_dim"] == 4
  assert got["mean_pairwise_cosine"] == pytest.approx(_cosine_loop(rows), abs=1e-6)
  assert got["effective_rank"] == pytest.approx(
      diagnostics.effective_rank(rows), abs=1e-9)
  assert got["mean_norm"] == pytest.approx(
      np.mean([np.linalg.norm(r) for r in rows]), abs=1e-6)


def test_item_and_selected_intentions_match_numpy():
  tower = tower_test._tower()                  # pylint: disable=protected-access
  # Eq. 7: argmax over the cosine of the category embedding and the prototypes.
  table = tower.category_embedding.embeddings.numpy().copy()
  table[0] = 0.0
  c = table[tower_test.CATEGORIES[1:]]
  mu = tower.routing.prototypes.numpy()
  expected_items = np.argmax(
      tower_test._unit(c) @ tower_test._unit(mu).T, axis=-1)  # pylint: disable=protected-access
  np.testing.assert_array_equal(diagnostics.item_intentions(tower, tower_test.N),
                                expected_items)
  # Eq. 9: h* of each user, over two batches, in order.
  first = tower_test._batch()                  # pylint: disable=protected-access
  second = dict(first, history=tf.reverse(first["history"], [0]),
                history_mask=tf.reverse(first["history_mask"], [0]),
                history_timestamp=tf.reverse(first["history_timestamp"], [0]))
  expected = np.concatenate([
      tower_test._numpy_interests(tower, b)["weights"].argmax(-1)  # pylint: disable=protected-access
      for b in (first, second)])
  got = diagnostics.selected_intentions(tower, [first, second])
  np.testing.assert_array_equal(got, expected)


def test_intention_report_on_a_dataset_with_max_users(tmp_path):
  data = ProcessedDataset.load(fixtures.write_tiny_dataset(
      str(tmp_path / "data"), num_users=30, num_items=20, seed=2))
  tf.random.set_seed(0)
  params = registry.resolve_params("multi_clrec", {
      "num_intentions": 3, "main_queue_size": 4, "secondary_queue_size": 4,
      "embedding_dim": 8, "importance_hidden_units": [4]})
  model = registry.build_model("multi_clrec", params, data)
  tower = diagnostics.interest_tower(model)
  assert tower is not None
  batches = list(pipeline.eval_dataset(data, "test", batch_size=30, max_len=6))
  tower(batches[0])                            # builds the weights
  full = diagnostics.intention_report(tower, data, "test", max_len=6, batch_size=7)
  assert full["num_users"] == 30 and sum(full["selected_intention"]) == 30
  assert sum(full["items_per_intention"]) == 20
  routed = np.bincount(np.argmax(np.asarray(tower.item_routing_logits(
      tf.range(1, 21, dtype=tf.int64))), -1), minlength=3)
  assert full["items_per_intention"] == routed.tolist()
  assert full["occupied_intentions"] == int(np.count_nonzero(routed))
  assert full["largest_intention_share"] == pytest.approx(routed.max() / 20)
  selected = np.concatenate([np.argmax(np.asarray(tower.interests(b)["weights"]), -1)
                             for b in batches])
  assert full["selected_intention"] == np.bincount(selected, minlength=3).tolist()
  # --max_users: the first users in file order, cut inside a batch.
  part = diagnostics.intention_report(tower, data, "test", max_len=6, batch_size=7,
                                      max_users=10)
  assert part["num_users"] == 10
  assert part["selected_intention"] == np.bincount(selected[:10], minlength=3).tolist()
  assert part["items_per_intention"] == full["items_per_intention"]

