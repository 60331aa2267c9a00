"""Protocols: negatives fixed by seed and reused, never interacted, NumPy ranks."""

import json

import numpy as np
import pytest

from dcg_tf.evaluation import protocols
from dcg_tf.evaluation.topk import TopKSearcher


def _interacted(rng, num_users, num_items):
  return [rng.choice(np.arange(1, num_items + 1), size=rng.integers(1, 30),
                     replace=False) for _ in range(num_users)]


def test_negatives_are_distinct_valid_and_fixed_by_seed():
  rng = np.random.default_rng(0)
  interacted = _interacted(rng, 40, 150)
  counts = np.concatenate([[0], rng.integers(1, 50, size=150)])
  for sampling in ("uniform", "popularity"):
    neg = protocols.sample_negatives(interacted, 150, 100, sampling, seed=5,
                                     item_count=counts)
    assert neg.shape == (40, 100)
    for row, seen in zip(neg, interacted):
      assert len(set(row.tolist())) == 100                     # distinct
      assert not set(row.tolist()) & set(seen.tolist())        # never interacted
      assert row.min() >= 1 and row.max() <= 150
    again = protocols.sample_negatives(interacted, 150, 100, sampling, seed=5,
                                       item_count=counts)
    np.testing.assert_array_equal(neg, again)
    other = protocols.sample_negatives(interacted, 150, 100, sampling, seed=6,
                                       item_count=counts)
    assert (neg != other).any()


def test_popularity_sampling_follows_training_counts():
  # Counts 1, 2, 3, 4, 0 -> probabilities .1, .2, .3, .4, 0 with one draw per user.
  counts = np.array([0, 1, 2, 3, 4, 0])
  neg = protocols.sample_negatives([[]] * 20000, 5, 1, "popularity", seed=1,
                                   item_count=counts)
  freq = np.bincount(neg[:, 0], minlength=6)[1:] / 20000.0
  # Binomial std at n=20000 is <= 0.0035; 0.015 is over 4 std.
  np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4, 0.0], atol=0.015)
  uniform = protocols.sample_negatives([[]] * 20000, 5, 1, "uniform", seed=1)
  np.testing.assert_allclose(np.bincount(uniform[:, 0], minlength=6)[1:] / 20000.0,
                             [0.2] * 5, atol=0.015)


def test_too_few_items_left_is_a_clear_error():
  with pytest.raises(ValueError, match="user row 1: only 2 items"):
    protocols.sample_negatives([[1], [1, 2, 3]], 5, 3, "uniform", seed=0)


def test_candidates_are_saved_once_and_reused(tmp_path):
  rng = np.random.default_rng(1)
  users = np.arange(1, 21)
  interacted = _interacted(rng, 20, 200)
  counts = np.concatenate([[0], rng.integers(1, 9, size=200)])
  args = dict(folder=str(tmp_path), split="test", protocol="popular100", users=users,
              num_items=200, item_count=counts, fingerprint="abc")
  first = protocols.load_or_sample_negatives(interacted=interacted, **args)
  path = tmp_path / "candidates_test_popular100.npy"
  table = np.load(path, allow_pickle=False)
  np.testing.assert_array_equal(table[:, 0], users)
  np.testing.assert_array_equal(table[:, 1:], first)
  sidecar = json.loads((tmp_path / "candidates_test_popular100.json").read_text())
  assert sidecar["seed"] == protocols.DEFAULT_SEED
  assert sidecar["protocol"] == "popular100" and sidecar["dataset_fingerprint"] == "abc"
  # A second evaluation (another model) loads the file instead of drawing again:
  # given other `interacted`, a fresh draw would differ, the loaded one cannot.
  second = protocols.load_or_sample_negatives(interacted=[[]] * 20, **args)
  np.testing.assert_array_equal(first, second)
  with pytest.raises(ValueError, match="dataset_fingerprint='abc'"):
    protocols.load_or_sample_negatives(interacted=interacted,
                                       **dict(args, fingerprint="other"))
  with pytest.raises(ValueError, match="seed="):
    protocols.load_or_sample_negatives(interacted=interacted, seed=3, **args)


def test_sampled_rank_matches_numpy_reference():
  rng = np.random.default_rng(2)
  item_emb = rng.normal(size=(300, 6)).astype(np.float32)
  queries = rng.normal(size=(50, 6)).astype(np.float32)
  targets = rng.integers(1, 301, size=(50, 1))
  negatives = protocols.sample_negatives([t for t in targets], 300, 100, "uniform",
                                         seed=0)
  ranked = protocols.sampled_ranking(TopKSearcher(item_emb), queries, targets,
                                     negatives)
  for u in range(50):
    target_score = queries[u] @ item_emb[targets[u, 0] - 1]
    neg_scores = item_emb[negatives[u] - 1] @ queries[u]
    expected_rank = int((neg_scores >= target_score).sum())   # 0-based
    assert np.flatnonzero(ranked[u] == targets[u, 0]).tolist() == [expected_rank]
    assert sorted(ranked[u].tolist()) == sorted([targets[u, 0]] + negatives[u].tolist())


def test_ties_are_pessimistic():
  # Every item has the same embedding: all scores tie, the target ranks last.
  item_emb = np.ones((120, 4), np.float32)
  negatives = np.arange(2, 102)[None, :]
  ranked = protocols.sampled_ranking(TopKSearcher(item_emb), np.ones((1, 4), np.float32),
                                     [[1]], negatives)
  assert ranked[0, -1] == 1


def test_full_ranking_excludes_earlier_items_but_keeps_targets():
  # Scores of items 1..5 for the query (1, 0) are 5, 4, 3, 2, 1.
  item_emb = np.array([[5, 0], [4, 0], [3, 0], [2, 0], [1, 0]], np.float32)
  ranked = protocols.full_ranking(TopKSearcher(item_emb), np.array([[1, 0]], np.float32),
                                  targets=[[2]], depth=3, exclude=[[1, 2, 4]])
  # Item 2 is a target, so only 1 and 4 are dropped: 2, 3, 5.
  np.testing.assert_array_equal(ranked, [[2, 3, 5]])
