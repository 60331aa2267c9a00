"""Metrics against hand-worked values (working in comments) and a loop reference."""

import math

import numpy as np
import pytest

from dcg_tf.evaluation import metrics

# Three users, four ranked items each.
RANKED = np.array([[5, 3, 9, 1],
                   [2, 4, 6, 8],
                   [7, 2, 3, 4]])
TARGETS = np.array([[3, 1],      # two targets: hits at ranks 2 and 4
                    [8, 0],      # one target: hit at rank 4
                    [7, 7]])     # a repeated target counts once: hit at rank 1


def test_ndcg_hand_worked():
  # User 0: DCG@4 = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606;
  #   IDCG@4 (2 targets) = 1/log2(2) + 1/log2(3) = 1.630930 -> 0.650921.
  #   NDCG@2: DCG = 0.630930, IDCG = 1.630930 -> 0.386853.
  # User 1: DCG@4 = 1/log2(5) = 0.430677, IDCG = 1 -> 0.430677; NDCG@2 = 0.
  # User 2: NDCG@k = 1 for every k (hit at rank 1, one distinct target).
  got = metrics.ranking_metrics(RANKED, TARGETS, ks=(1, 2, 4))
  assert got["NDCG@4"] == pytest.approx((0.650921 + 0.430677 + 1.0) / 3, abs=1e-6)
  assert got["NDCG@2"] == pytest.approx((0.386853 + 0.0 + 1.0) / 3, abs=1e-6)
  assert got["NDCG@1"] == pytest.approx(1 / 3)


def test_mrr_hr_recall_hand_worked():
  # First relevant ranks 2, 4, 1 -> MRR = (1/2 + 1/4 + 1) / 3 = 0.583333.
  # HR@1 = (0 + 0 + 1)/3; HR@2 = (1 + 0 + 1)/3; HR@4 = 1.
  # Recall@2 = (1/2 + 0 + 1)/3 = 0.5; Recall@4 = (2/2 + 1 + 1)/3 = 1.
  got = metrics.ranking_metrics(RANKED, TARGETS, ks=(1, 2, 4))
  assert got["MRR"] == pytest.approx(0.583333, abs=1e-6)
  assert got["HR@1"] == pytest.approx(1 / 3)
  assert got["HR@2"] == pytest.approx(2 / 3)
  assert got["HR@4"] == 1.0
  assert got["Recall@2"] == pytest.approx(0.5)
  assert got["Recall@4"] == 1.0


def test_mrr_is_zero_without_a_hit_and_padding_never_hits():
  # Ranked padding (item 0) must not match target padding (0).
  got = metrics.ranking_metrics([[4, 0, 0]], [[9, 0]], ks=(3,))
  assert got["MRR"] == 0.0 and got["HR@3"] == 0.0 and got["NDCG@3"] == 0.0


def _loop_reference(ranked, targets, k):
  """Plain-Python HR, Recall, NDCG at k and MRR, straight from the definitions."""
  hr, rec, ndcg, mrr = [], [], [], []
  for row, tgt in zip(ranked.tolist(), targets.tolist()):
    tset = {t for t in tgt if t > 0}
    hit_ranks = [i for i, item in enumerate(row) if item in tset]
    top = [i for i in hit_ranks if i < k]
    hr.append(1.0 if top else 0.0)
    rec.append(len(top) / len(tset))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(tset))))
    ndcg.append(sum(1 / math.log2(i + 2) for i in top) / idcg)
    mrr.append(1 / (hit_ranks[0] + 1) if hit_ranks else 0.0)
  return np.mean(hr), np.mean(rec), np.mean(ndcg), np.mean(mrr)


def test_multi_target_metrics_match_loop_reference():
  rng = np.random.default_rng(3)
  ranked = np.stack([rng.permutation(np.arange(1, 41))[:20] for _ in range(50)])
  targets = rng.integers(0, 41, size=(50, 6))
  targets[:, 0] = rng.integers(1, 41, size=50)       # every user has a target
  got = metrics.ranking_metrics(ranked, targets, ks=(5, 20))
  for k in (5, 20):
    hr, rec, ndcg, mrr = _loop_reference(ranked, targets, k)
    assert got["HR@%d" % k] == pytest.approx(hr)
    assert got["Recall@%d" % k] == pytest.approx(rec)
    assert got["NDCG@%d" % k] == pytest.approx(ndcg)
    assert got["MRR"] == pytest.approx(mrr)


def test_k_deeper_than_ranking_and_missing_targets_are_errors():
  with pytest.raises(ValueError, match="metric@5 needs at least 5"):
    metrics.ranking_metrics(RANKED, TARGETS, ks=(5,))
  with pytest.raises(ValueError, match="user row 1 has no target"):
    metrics.ranking_metrics(RANKED, [[3], [0], [7]], ks=(1,))


ITEM_COUNT = np.array([0, 10, 5, 1, 0, 3])   # items 1..5, row 0 = padding


def test_coverage_and_popularity_index_hand_worked():
  ranked = np.array([[1, 2], [3, 5], [1, 0]])
  # Distinct recommended items in the top 2: {1, 2, 3, 5} -> 4; top 1: {1, 3}.
  assert metrics.coverage_at_k(ranked, 2) == 4
  assert metrics.coverage_at_k(ranked, 1) == 2
  # E_A = mean count of the 5 real recommendations = (10+5+1+3+10)/5 = 5.8;
  # the best recommender of 2 items recommends items 1, 2: (10+5)/2 = 7.5.
  assert metrics.mean_popularity_at_k(ranked, ITEM_COUNT, 2) == pytest.approx(5.8)
  assert metrics.popularity_index_at_k(ranked, ITEM_COUNT, 2) == pytest.approx(5.8 / 7.5)
  # Relative to a given reference (e.g. a most-popular model scoring 8.0).
  assert metrics.popularity_index_at_k(ranked, ITEM_COUNT, 2,
                                       reference=8.0) == pytest.approx(5.8 / 8.0)


def test_head_tail_split_hand_worked():
  # 10 items, counts desc order: item 3 (9), item 7 (8), then the rest.
  # Head = ceil(0.2 * 10) = 2 items = {3, 7}.
  counts = np.array([0, 1, 2, 9, 1, 1, 1, 8, 1, 1, 1])
  head = metrics.head_item_mask(counts)
  assert np.flatnonzero(head).tolist() == [3, 7]
  ranked = np.array([[3, 1], [2, 4], [5, 6]])
  targets = np.array([[3, 2],     # head target 3 hit@1; tail target 2 missed
                      [7, 4],     # head 7 missed; tail 4 hit@2
                      [6, 0]])    # tail only: hit@2
  got = metrics.beyond_accuracy_metrics(ranked, targets, counts, ks=(1, 2))
  # Head users 0, 1: HR@2 = (1 + 0)/2. Tail users 0, 1, 2: HR@1 = 0, HR@2 = (0+1+1)/3.
  assert got["head_num_users"] == 2 and got["tail_num_users"] == 3
  assert got["head_HR@2"] == pytest.approx(0.5)
  assert got["head_HR@1"] == pytest.approx(0.5)
  assert got["tail_HR@1"] == 0.0
  assert got["tail_Recall@2"] == pytest.approx(2 / 3)
  assert got["coverage@2"] == 6


def test_map_hand_worked():
  # AP@K = sum_{i<K} P@(i+1) rel_i / min(|targets|, K).
  # User 0 (targets {3, 1}, hits at ranks 2 and 4):
  #   AP@4 = (P@2 + P@4) / 2 = (1/2 + 2/4) / 2 = 0.5;
  #   AP@2 = P@2 / min(2, 2) = 0.25; AP@1 = 0 / 1 = 0.
  # User 1 (target 8 at rank 4): AP@4 = P@4 / 1 = 1/4; AP@2 = AP@1 = 0.
  # User 2 (target 7 at rank 1): AP@K = 1 for every K.
  got = metrics.ranking_metrics(RANKED, TARGETS, ks=(1, 2, 4))
  assert got["MAP@4"] == pytest.approx((0.5 + 0.25 + 1.0) / 3)
  assert got["MAP@2"] == pytest.approx((0.25 + 0.0 + 1.0) / 3)
  assert got["MAP@1"] == pytest.approx(1 / 3)


def test_head_fraction_moves_items_from_head_to_tail():
  # 10 items; at head_fraction 0.1 the head is ceil(0.1 * 10) = 1 item: {3}.
  counts = np.array([0, 1, 2, 9, 1, 1, 1, 8, 1, 1, 1])
  ranked = np.array([[3, 1], [2, 7]])
  targets = np.array([[3, 0],     # head at 0.1 and 0.2: hit@1
                      [7, 0]])    # head at 0.2, tail at 0.1: hit@2
  at_20 = metrics.beyond_accuracy_metrics(ranked, targets, counts, ks=(1, 2))
  at_10 = metrics.beyond_accuracy_metrics(ranked, targets, counts, ks=(1, 2),
                                          head_fraction=0.1)
  assert (at_20["head_num_users"], at_20["tail_num_users"]) == (2, 0)
  assert (at_10["head_num_users"], at_10["tail_num_users"]) == (1, 1)
  assert at_10["tail_HR@1"] == 0.0 and at_10["tail_HR@2"] == 1.0
  assert at_10["head_fraction"] == 0.1
