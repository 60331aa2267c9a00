"""TopKSearcher against a brute-force NumPy ranking: plain, excluded, multi-interest."""

import faiss
import numpy as np
import pytest

from dcg_tf.evaluation.topk import TopKSearcher


def _brute_force(item_emb, queries, k, exclude=None, query_mask=None, offset=1):
  """NumPy reference: all scores, max over valid interests, excluded -> -inf."""
  if queries.ndim == 2:
    scores = queries @ item_emb.T                                    # [Q, N]
  else:
    scores = np.einsum("qkd,nd->qkn", queries, item_emb)             # [Q, K, N]
    mask = np.ones(queries.shape[:2], bool) if query_mask is None else query_mask
    scores = np.where(mask[:, :, None], scores, -np.inf).max(axis=1)  # [Q, N]
  if exclude is not None:
    for q, items in enumerate(exclude):
      scores[q, np.asarray(items, np.int64) - offset] = -np.inf
  order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(scores, order, axis=1), order + offset


@pytest.fixture
def data():
  rng = np.random.default_rng(7)
  item_emb = rng.normal(size=(300, 8)).astype(np.float32)
  return rng, item_emb


def test_search_matches_brute_force(data):
  rng, item_emb = data
  queries = rng.normal(size=(20, 8)).astype(np.float32)
  scores, items = TopKSearcher(item_emb).search(queries, k=15)
  ref_scores, ref_items = _brute_force(item_emb, queries, 15)
  np.testing.assert_array_equal(items, ref_items)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
  assert items.dtype == np.int64 and scores.dtype == np.float32
  assert items.min() >= 1  # row 0 is item 1; item 0 (padding) never returned


def test_exclusion_is_exact_including_users_with_many_excluded_items(data):
  rng, item_emb = data
  queries = rng.normal(size=(30, 8)).astype(np.float32)
  # Most users exclude a few items; two exclude far more than the first-pass
  # margin, which forces the exact retry path.
  exclude = [rng.choice(np.arange(1, 301), size=3, replace=False) for _ in range(30)]
  exclude[4] = rng.choice(np.arange(1, 301), size=200, replace=False)
  # User 9 excludes exactly its own top 40 (the worst case for over-fetching).
  _, top40 = _brute_force(item_emb, queries[9:10], 40)
  exclude[9] = top40[0]
  scores, items = TopKSearcher(item_emb).search(queries, k=10, exclude=exclude)
  ref_scores, ref_items = _brute_force(item_emb, queries, 10, exclude=exclude)
  np.testing.assert_array_equal(items, ref_items)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
  for q in range(30):
    assert not set(items[q]) & set(exclude[q].tolist())


def test_multi_interest_merge_takes_max_over_valid_vectors(data):
  rng, item_emb = data
  queries = rng.normal(size=(25, 4, 8)).astype(np.float32)
  mask = rng.random((25, 4)) < 0.6
  mask[:, 0] = True
  exclude = [rng.choice(np.arange(1, 301), size=rng.integers(0, 30), replace=False)
             for _ in range(25)]
  scores, items = TopKSearcher(item_emb).search(queries, k=20, exclude=exclude,
                                                query_mask=mask)
  ref_scores, ref_items = _brute_force(item_emb, queries, 20, exclude, mask)
  np.testing.assert_array_equal(items, ref_items)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
  # No item twice in a user's list although several interests retrieve it.
  assert all(len(set(row)) == 20 for row in items)


def test_hand_built_two_interest_merge():
  # Items 1..4 = e1, e2, -e1, -e2 in 2-D. Interests (1, 0) and (0, 0.5):
  # max scores are item1: max(1, 0) = 1, item2: max(0, .5) = .5,
  # item3: max(-1, 0) = 0, item4: max(0, -.5) = 0 -> ranking 1, 2, then the tie.
  item_emb = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32)
  queries = np.array([[[1, 0], [0, 0.5]]], np.float32)
  scores, items = TopKSearcher(item_emb).search(queries, k=2)
  np.testing.assert_array_equal(items, [[1, 2]])
  np.testing.assert_allclose(scores, [[1.0, 0.5]])
  # Masking the second interest leaves item 2 at 0, tied with 4; item 1 first.
  scores, items = TopKSearcher(item_emb).search(
      queries, k=1, query_mask=np.array([[True, False]]))
  np.testing.assert_array_equal(items, [[1]])


def test_k_larger_than_remaining_catalog_pads_with_item_zero():
  item_emb = np.eye(3, dtype=np.float32)
  queries = np.array([[3, 2, 1]], np.float32)
  # Scores 3, 2, 1 for items 1, 2, 3; item 2 excluded; k=4 > 2 remaining.
  scores, items = TopKSearcher(item_emb).search(queries, k=4, exclude=[[2]])
  np.testing.assert_array_equal(items, [[1, 3, 0, 0]])
  np.testing.assert_array_equal(scores, [[3, 1, -np.inf, -np.inf]])


def test_given_faiss_index_is_used_and_checked(data):
  rng, item_emb = data
  index = faiss.IndexFlatL2(8)   # a different metric proves the index is the one used
  index.add(item_emb)
  queries = rng.normal(size=(5, 8)).astype(np.float32)
  _, items = TopKSearcher(item_emb, index=index).search(queries, k=5)
  dist = ((queries[:, None, :] - item_emb[None]) ** 2).sum(-1)       # [Q, N]
  np.testing.assert_array_equal(items, np.argsort(dist, axis=1)[:, :5] + 1)
  with pytest.raises(ValueError, match="index holds 300 rows"):
    TopKSearcher(item_emb[:10], index=index)


def test_score_candidates_matches_numpy(data):
  rng, item_emb = data
  queries = rng.normal(size=(6, 3, 8)).astype(np.float32)
  mask = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]] * 2, bool)
  cands = rng.integers(1, 301, size=(6, 11))
  cands[0, 3] = 0
  got = TopKSearcher(item_emb).score_candidates(queries, cands, query_mask=mask)
  for q in range(6):
    for c in range(11):
      if cands[q, c] == 0:
        assert got[q, c] == -np.inf
        continue
      expected = max(float(queries[q, j] @ item_emb[cands[q, c] - 1])
                     for j in range(3) if mask[q, j])
      np.testing.assert_allclose(got[q, c], expected, rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_clear_errors(data):
  _, item_emb = data
  searcher = TopKSearcher(item_emb)
  with pytest.raises(ValueError, match=r"queries must be \[Q, 8\]"):
    searcher.search(np.zeros((2, 5), np.float32), k=3)
  with pytest.raises(ValueError, match=r"candidate_items\[0, 1\] = 301"):
    searcher.score_candidates(np.zeros((1, 8), np.float32), [[1, 301]])
  with pytest.raises(ValueError, match="no valid interest"):
    searcher.search(np.zeros((1, 2, 8), np.float32), k=3,
                    query_mask=np.zeros((1, 2), bool))
  bad = item_emb.copy()
  bad[4, 2] = np.nan
  with pytest.raises(ValueError, match=r"row 4 \(item 5\)"):
    TopKSearcher(bad)
