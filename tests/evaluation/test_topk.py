"""TopKSearcher against a brute-force NumPy ranking: plain, excluded, multi-interest."""

import faiss
import numpy as np
import pytest

from dcg_tf.evaluation.topk import TopKSearcher
from dcg_tf.evaluation.topk import as_queries


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
  index = faiss.IndexFlatIP(8)   # twice the rows: its scores prove it is the one used
  index.add(2 * item_emb)
  queries = rng.normal(size=(5, 8)).astype(np.float32)
  scores, items = TopKSearcher(item_emb, index=index).search(queries, k=5)
  ref_scores, ref_items = _brute_force(item_emb, queries, 5)
  np.testing.assert_array_equal(items, ref_items)
  np.testing.assert_allclose(scores, 2 * ref_scores, rtol=1e-5, atol=1e-5)
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


# === Multi-interest retrieval: ComiRec's merge against a plain NumPy loop ===


def _comirec_merge(item_emb, queries, mask, k, exclude=None, hits=None):
  """ComiRec's evaluation merge, written as a loop over (item, score) pairs.

  Every active vector j of query q contributes (score, item) for each item it
  can return (`hits[q][j]`, default the whole catalog); the pairs are sorted
  by score, the first (best) pair of each item kept, excluded items dropped,
  and the top k padded with (item 0, -inf).
  """
  num_q = queries.shape[0]
  scores = np.full((num_q, k), -np.inf, np.float32)
  items = np.zeros((num_q, k), np.int64)
  for q in range(num_q):
    pairs = []
    for j in np.nonzero(mask[q])[0]:
      rows = range(item_emb.shape[0]) if hits is None else hits[q][j]
      pairs += [(float(queries[q, j] @ item_emb[r]), r + 1) for r in rows]
    pairs.sort(key=lambda pair: -pair[0])
    kept, seen = [], set(() if exclude is None else exclude[q])
    for score, item in pairs:
      if item not in seen:
        seen.add(item)
        kept.append((score, item))
    for c, (score, item) in enumerate(kept[:k]):
      scores[q, c], items[q, c] = score, item
  return scores, items


@pytest.fixture
def interests():
  """12 users x 4 interests over 50 items, with the cases the merge must handle."""
  rng = np.random.default_rng(11)
  item_emb = rng.normal(size=(50, 6)).astype(np.float32)
  queries = rng.normal(size=(12, 4, 6)).astype(np.float32)
  mask = rng.random((12, 4)) < 0.5
  mask[0] = [False, False, True, False]        # one active vector, not slot 0
  mask[1] = True                               # all active
  mask[2] = [True, True, False, False]
  queries[2, 1] = queries[2, 0]                # the same vector twice: same hits
  mask[3] = [True, True, True, False]
  queries[3, 1] = 3 * queries[3, 0]            # same items, the larger score wins
  mask[mask.sum(1) == 0, 0] = True
  # Inactive vectors point straight at item 8: it tops a list only if an
  # inactive vector were searched.
  queries[~mask] = 100 * item_emb[7]
  exclude = [rng.choice(np.arange(1, 51), size=rng.integers(0, 8), replace=False)
             for _ in range(12)]
  return item_emb, queries, mask, exclude


class _CountingIndex:
  """A Faiss index that records how many query rows it was asked to search."""

  def __init__(self, index):
    self.index, self.d, self.ntotal, self.rows = index, index.d, index.ntotal, 0

  def search(self, queries, k):
    self.rows += queries.shape[0]
    return self.index.search(queries, k)


@pytest.mark.parametrize("k", [5, 30, 60])   # 60 > N: padded with (0, -inf)
def test_multi_interest_search_equals_comirec_merge(interests, k):
  item_emb, queries, mask, exclude = interests
  flat = faiss.IndexFlatIP(6)
  flat.add(item_emb)
  counting = _CountingIndex(flat)
  searcher = TopKSearcher(item_emb, index=counting)
  for excl in (None, exclude):
    scores, items = searcher.search(queries, k, exclude=excl, query_mask=mask)
    ref_scores, ref_items = _comirec_merge(item_emb, queries, mask, k, excl)
    np.testing.assert_array_equal(items, ref_items)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    for row in items:                           # each item at most once
      assert len(set(row[row > 0])) == np.count_nonzero(row)
  # Only active vectors reach the index (no exclusion: one pass, no retry).
  counting.rows = 0
  _, items = searcher.search(queries, k, query_mask=mask)
  assert counting.rows == mask.sum()
  # The user with one active vector ranks exactly as that vector alone.
  _, single = searcher.search(queries[0, 2][None], k)
  np.testing.assert_array_equal(items[0], single[0])


def test_multi_interest_search_through_an_ivf_index(interests):
  item_emb, queries, mask, exclude = interests
  quantizer = faiss.IndexFlatIP(6)
  index = faiss.IndexIVFFlat(quantizer, 6, 5, faiss.METRIC_INNER_PRODUCT)
  index.cp.seed = 3
  index.train(item_emb)
  index.add(item_emb)
  # Every cell probed: IVF is exact, so the merge equals the full reference.
  index.nprobe = 5
  scores, items = TopKSearcher(item_emb, index=index).search(
      queries, 20, exclude=exclude, query_mask=mask)
  ref_scores, ref_items = _comirec_merge(item_emb, queries, mask, 20, exclude)
  np.testing.assert_array_equal(items, ref_items)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
  # One cell probed: a vector returns only the items of its nearest cell,
  # often fewer than k; the merge takes the union over active vectors.
  index.nprobe = 1
  _, item_cell = quantizer.search(item_emb, 1)                  # [N, 1]
  _, query_cell = quantizer.search(queries.reshape(-1, 6), 1)   # [Q*K, 1]
  query_cell = query_cell.reshape(12, 4)
  hits = [[np.nonzero(item_cell[:, 0] == query_cell[q, j])[0] for j in range(4)]
          for q in range(12)]
  assert min(len(h) for row in hits for h in row) < 20
  scores, items = TopKSearcher(item_emb, index=index).search(
      queries, 20, query_mask=mask)
  ref_scores, ref_items = _comirec_merge(item_emb, queries, mask, 20, hits=hits)
  np.testing.assert_array_equal(items, ref_items)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
  assert (items == 0).any()                    # short lists padded with item 0


def test_as_queries_reads_every_output_form():
  vectors = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
  mask = np.array([[1, 0, 1], [1, 1, 0]])
  for output in ((vectors, mask), {"embeddings": vectors, "mask": mask}):
    got_vectors, got_mask = as_queries(output)
    assert got_vectors.dtype == np.float32 and got_mask.dtype == bool
    np.testing.assert_array_equal(got_vectors, vectors)
    np.testing.assert_array_equal(got_mask, mask.astype(bool))
  for output in (vectors[:, 0], {"embedding": vectors[:, 0]}):
    got_vectors, got_mask = as_queries(output)
    np.testing.assert_array_equal(got_vectors, vectors[:, 0])
    assert got_mask is None
  with pytest.raises(ValueError, match=r"\(\[B, K, D\], \[B, K\]\)"):
    as_queries((vectors, mask[:, :2]))
  with pytest.raises(ValueError, match="3-tuple"):
    as_queries((vectors, mask, mask))
