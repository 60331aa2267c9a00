"""The popularity knob s(u, i) + beta * log p(i) against a NumPy reference."""

import numpy as np
import pytest

from dcg_tf.evaluation import evaluator
from dcg_tf.evaluation import popularity_correction as pc
from dcg_tf.evaluation.topk import TopKSearcher

# Items 1..6; item 6 never clicked in training.
COUNTS = np.array([0, 9, 5, 3, 2, 1, 0])


def _log_p_reference():
  # Laplace alpha = 1: S = 20 clicks, N = 6 items -> p(i) = (c_i + 1) / 26.
  return np.log(np.array([10, 6, 4, 3, 2, 1]) / 26.0)


def _random(seed, num_users=7, dim=4):
  rng = np.random.default_rng(seed)
  items = rng.normal(size=(6, dim)).astype(np.float32)            # [N, D]
  users = rng.normal(size=(num_users, dim)).astype(np.float32)     # [U, D]
  return users, items


def test_log_popularity_is_laplace_smoothed_and_finite_for_unseen_items():
  np.testing.assert_allclose(pc.log_popularity(COUNTS), _log_p_reference(),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="smoothing must be > 0"):
    pc.log_popularity(COUNTS, smoothing=0.0)


def test_the_extra_coordinate_adds_beta_log_p_to_every_score():
  users, items = _random(0)
  beta = 0.3
  scores = (pc.with_beta_column(users, beta)
            @ pc.with_popularity_column(items, pc.log_popularity(COUNTS)).T)
  np.testing.assert_allclose(scores, users @ items.T + beta * _log_p_reference(),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beta", [-0.5, 0.2, 1.5])
def test_search_over_widened_vectors_ranks_by_corrected_scores(beta):
  users, items = _random(1)
  searcher = TopKSearcher(pc.with_popularity_column(items, pc.log_popularity(COUNTS)))
  scores, got = searcher.search(pc.with_beta_column(users, beta), k=4)
  reference = users.astype(np.float64) @ items.T + beta * _log_p_reference()  # [U, N]
  want = np.argsort(-reference, axis=1, kind="stable")[:, :4] + 1
  np.testing.assert_array_equal(got, want)
  np.testing.assert_allclose(scores, np.take_along_axis(reference, want - 1, 1),
                             rtol=1e-5, atol=1e-5)


def test_multi_interest_queries_get_beta_on_every_active_vector():
  rng = np.random.default_rng(2)
  items = rng.normal(size=(6, 3)).astype(np.float32)
  users = rng.normal(size=(5, 2, 3)).astype(np.float32)           # [U, K, D]
  mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]], bool)
  beta = 0.7
  searcher = TopKSearcher(pc.with_popularity_column(items, pc.log_popularity(COUNTS)))
  _, got = searcher.search(pc.with_beta_column(users, beta), k=3, query_mask=mask)
  # max over active k of (s_k + beta log p) = max_k s_k + beta log p.
  per_vector = np.einsum("ukd,nd->ukn", users, items)              # [U, K, N]
  best = np.where(mask[:, :, None], per_vector, -np.inf).max(axis=1)
  reference = best + beta * _log_p_reference()
  np.testing.assert_array_equal(
      got, np.argsort(-reference, axis=1, kind="stable")[:, :3] + 1)


def _metrics_reference(reference_scores, targets, exclude, k):
  """HR@k and coverage@k from dense scores [U, N] in NumPy."""
  scores = reference_scores.copy()
  for u, items in enumerate(exclude):
    scores[u, np.setdiff1d(items, targets[u]) - 1] = -np.inf
  order = np.argsort(-scores, axis=1, kind="stable") + 1           # [U, N]
  rank = np.array([np.nonzero(order[u] == targets[u, 0])[0][0]
                   for u in range(len(order))])
  return {"HR@%d" % k: float(np.mean(rank < k)),
          "coverage@%d" % k: len(np.unique(order[:, :k]))}


@pytest.mark.parametrize("protocol_beta", [0.0, 0.4, -0.4])
def test_evaluate_embeddings_matches_numpy_ranking(protocol_beta):
  users, items = _random(3, num_users=9)
  rng = np.random.default_rng(3)
  targets = rng.integers(1, 7, size=(9, 1))
  exclude = [rng.choice(np.arange(1, 7), size=2, replace=False) for _ in range(9)]
  got = evaluator.evaluate_embeddings(users, items, targets, COUNTS, ks=(1, 3),
                                      exclude=exclude,
                                      popularity_beta=protocol_beta)
  reference = users.astype(np.float64) @ items.T + protocol_beta * _log_p_reference()
  for k in (1, 3):
    want = _metrics_reference(reference, targets, exclude, k)
    assert got["HR@%d" % k] == pytest.approx(want["HR@%d" % k])
    assert got["coverage@%d" % k] == want["coverage@%d" % k]


def test_beta_zero_is_todays_ranking_bit_for_bit():
  users, items = _random(4, num_users=9)
  targets = np.arange(1, 10)[:, None] % 6 + 1
  plain = evaluator.evaluate_embeddings(users, items, targets, COUNTS, ks=(1, 3, 5))
  zero = evaluator.evaluate_embeddings(users, items, targets, COUNTS, ks=(1, 3, 5),
                                       popularity_beta=0.0)
  assert plain == zero
  # The widened vectors with beta = 0 rank the same items as the plain ones.
  _, plain_items = TopKSearcher(items).search(users, k=6)
  widened = TopKSearcher(pc.with_popularity_column(items, pc.log_popularity(COUNTS)))
  _, zero_items = widened.search(pc.with_beta_column(users, 0.0), k=6)
  np.testing.assert_array_equal(plain_items, zero_items)


def test_sampled_protocol_scores_candidates_with_the_correction():
  users, items = _random(5, num_users=4)
  targets = np.array([[1], [2], [6], [3]])
  negatives = np.array([[2, 3], [1, 6], [1, 2], [4, 5]])
  beta = 2.0
  got = evaluator.evaluate_embeddings(users, items, targets, COUNTS,
                                      protocol="popular100", ks=(1,),
                                      negatives=negatives, popularity_beta=beta)
  reference = users.astype(np.float64) @ items.T + beta * _log_p_reference()
  # HR@1: the target beats both negatives (ties count against it).
  hits = [reference[u, targets[u, 0] - 1] > reference[u, negatives[u] - 1].max()
          for u in range(4)]
  assert got["HR@1"] == pytest.approx(np.mean(hits))


def test_a_prebuilt_searcher_is_refused_with_a_beta():
  users, items = _random(6)
  with pytest.raises(ValueError, match="popularity_beta"):
    evaluator.evaluate_embeddings(users, TopKSearcher(items), np.ones((7, 1), int),
                                  COUNTS, popularity_beta=0.5)
