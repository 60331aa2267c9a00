"""Top-K search over item embeddings: the one code path of evaluation and serving.

Issue 3 ("Evaluation and retrieval share one top-K code path"): the evaluator's
`full` protocol and `dcg_tf.Retriever` both call `TopKSearcher.search`, and the
sampled protocols (`popular100`, `uniform100`) call
`TopKSearcher.score_candidates`.

Scores are inner products. Towers whose `normalized` flag is set (cosine models,
e.g. CLRec Eq. 3) return L2-normalised embeddings, so the inner product of a
query and an item is their cosine similarity and the same inner-product index
serves both kinds of models.

Multi-interest users (Multi-CLRec section 3.2, ComiRec; the contract of
`dcg_tf.towers.multi_interest`) query with K vectors and a mask; an item's
score is the max over the user's ACTIVE vectors, and only those are searched.
A single vector is the case K = 1 of the same code. Searching each vector for
its top (k + |excluded|) and merging is exact: if an item is in
the merged top-k with its max reached at interest j, every item above it in
interest j's list also scores at least as high after the merge, so at most
(k - 1) + |excluded| items precede it there.
"""

import faiss
import numpy as np

from dcg_tf.errors import InputError

_NEG_INF = np.float32(-np.inf)


def as_queries(output):
  """A user tower's output as `(vectors, mask)`, the queries of `TopKSearcher`.

  The one reading of both output forms of the multi-interest contract
  (`dcg_tf.towers.multi_interest`), for evaluation and `dcg_tf.Retriever`.

  Args:
    output: [B, D]; or `(vectors [B, K, D], mask [B, K])`; or a serving
      signature's dict, `{"embedding": [B, D]}` or `{"embeddings": [B, K, D],
      "mask": [B, K]}` (`dcg_tf.serving.export`).

  Returns:
    (vectors float32 [B, D] and None) or (vectors float32 [B, K, D], mask bool
    [B, K]).
  """
  if isinstance(output, dict):
    output = (output["embedding"] if "embedding" in output
              else (output["embeddings"], output["mask"]))
  if isinstance(output, (tuple, list)):
    if len(output) != 2:
      raise ValueError("a user tower returns [B, D] or ([B, K, D], [B, K]), got a "
                       "%d-tuple" % len(output))
    vectors, mask = (np.asarray(x) for x in output)
    if vectors.ndim != 3 or mask.shape != vectors.shape[:2]:
      raise ValueError("a multi-interest user tower returns ([B, K, D], [B, K]), "
                       "got shapes %s and %s" % (vectors.shape, mask.shape))
    return vectors.astype(np.float32), mask.astype(bool)
  vectors = np.asarray(output)
  if vectors.ndim != 2:
    raise ValueError("a user tower returns [B, D] or ([B, K, D], [B, K]), got "
                     "shape %s" % (vectors.shape,))
  return vectors.astype(np.float32), None


def _best_first(scores, items):
  """Rows of (scores, items) [Q, C] sorted by descending score, ties stable."""
  order = np.argsort(-scores, axis=1, kind="stable")
  return (np.take_along_axis(scores, order, axis=1),
          np.take_along_axis(items, order, axis=1))


class TopKSearcher:
  """Exact (or index-backed) top-K over an item embedding table.

  Row `r` of `item_embeddings` is item index `r + item_offset`; with the default
  offset 1, rows are items 1..N and item 0 (padding / unknown, docs/design.md)
  is never returned. When fewer than `k` items can be returned (k larger than
  the catalog minus the excluded items, or an approximate index returning
  fewer hits), the trailing entries are item 0 with score -inf.

  Args:
    item_embeddings: float32 [N, D]; row r is item r + item_offset.
    index: optional Faiss index already holding the same N rows in the same
      order (labels are row numbers) and scoring by inner product (higher is
      better), e.g. IVF or HNSW built by serving. Default: an exact
      `faiss.IndexFlatIP` built here.
    item_offset: item index of row 0 (default 1).

  Example:
    >>> searcher = TopKSearcher(item_emb)                  # item_emb [N, D]
    >>> scores, items = searcher.search(user_emb, k=10,    # user_emb [Q, D]
    ...                                 exclude=train_items_per_query)
  """

  def __init__(self, item_embeddings, index=None, item_offset=1):
    item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
    if item_embeddings.ndim != 2 or item_embeddings.shape[0] == 0:
      raise ValueError("TopKSearcher: item_embeddings must be a non-empty [N, D] "
                       "array, got shape %s" % (item_embeddings.shape,))
    if not np.isfinite(item_embeddings).all():
      bad = np.argwhere(~np.isfinite(item_embeddings))[0]
      raise ValueError("TopKSearcher: item_embeddings has a non-finite value at "
                       "row %d (item %d)" % (bad[0], bad[0] + item_offset))
    self.item_embeddings = item_embeddings
    self.item_offset = int(item_offset)
    if index is None:
      index = faiss.IndexFlatIP(item_embeddings.shape[1])
      index.add(item_embeddings)
    if index.d != item_embeddings.shape[1]:
      raise ValueError("TopKSearcher: index dimension %d != embedding dimension %d"
                       % (index.d, item_embeddings.shape[1]))
    if index.ntotal != item_embeddings.shape[0]:
      raise ValueError("TopKSearcher: index holds %d rows but item_embeddings has %d"
                       % (index.ntotal, item_embeddings.shape[0]))
    self.index = index

  @property
  def num_items(self):
    return self.item_embeddings.shape[0]

  @property
  def dimension(self):
    return self.item_embeddings.shape[1]

  # === Full search ===

  def search(self, queries, k, exclude=None, query_mask=None):
    """Top-k items per query, best first.

    A multi-interest query searches the index once per ACTIVE vector (mask
    True) and merges the hits by maximum score, each item once (ComiRec's
    protocol); inactive vectors are never searched. A [Q, D] query is the
    case K = 1 of the same path.

    Args:
      queries: float32 [Q, D], or multi-interest [Q, K, D].
      k: number of items to return per query.
      exclude: optional sequence of Q arrays of item indices to drop (e.g. each
        user's training items); exact, not approximate: the search over-fetches
        and retries the queries that lost too many hits to exclusion.
      query_mask: bool [Q, K] for multi-interest queries (True = active
        vector; default all active). Every query needs an active vector.

    Returns:
      (scores float32 [Q, k], items int64 [Q, k]).
    """
    queries, query_mask = self._check_queries(queries, query_mask)
    if queries.ndim == 2:
      queries = queries[:, None, :]                                    # [Q, 1, D]
      query_mask = np.ones(queries.shape[:2], dtype=bool)              # [Q, 1]
    num_queries = queries.shape[0]
    k = int(k)
    if k < 1:
      raise InputError("TopKSearcher.search: k must be >= 1, got %d" % k)
    if exclude is not None and len(exclude) != num_queries:
      raise ValueError("TopKSearcher.search: exclude has %d entries for %d queries"
                       % (len(exclude), num_queries))
    if exclude is None:
      exclude = [()] * num_queries
    exclude = [np.asarray(e, dtype=np.int64).reshape(-1) for e in exclude]
    num_excluded = np.array([e.size for e in exclude], dtype=np.int64)  # [Q]
    excl_keys = self._pair_keys(
        np.repeat(np.arange(num_queries, dtype=np.int64), num_excluded),
        np.concatenate(exclude) if num_queries else np.zeros(0, np.int64))
    # First pass: fetch k + (90th percentile of |excluded|); exact for every
    # query with at most that many exclusions, the rest are retried below.
    margin = int(np.percentile(num_excluded, 90)) if num_queries else 0
    fetch = min(self.num_items, k + margin)
    scores, items = self._search_merged(queries, query_mask, fetch, excl_keys,
                                        np.arange(num_queries))
    retry = np.nonzero((num_excluded > margin) & (fetch < self.num_items))[0]
    if retry.size:
      fetch_retry = min(self.num_items, k + int(num_excluded[retry].max()))
      scores_r, items_r = self._search_merged(queries[retry], query_mask[retry],
                                              fetch_retry, excl_keys, retry)
      scores[retry, :k] = scores_r[:, :k]
      items[retry, :k] = items_r[:, :k]
    return self._finalize(scores, items, k)

  def _search_merged(self, queries, query_mask, fetch, excl_keys, query_ids):
    """Fetches `fetch` per active vector, drops excluded, merges by max.

    Args:
      queries: float32 [Q, K, D]; query_mask: bool [Q, K].
      fetch: hits per vector; excl_keys: `_pair_keys` of the excluded pairs;
      query_ids: int [Q], the query numbers `excl_keys` refer to.

    Returns:
      (scores [Q, K * fetch], items [Q, K * fetch]) best first, each item at
      most once (with its best score); the rest is (item 0, -inf).
    """
    num_q, num_k, _ = queries.shape
    rows_q, rows_k = np.nonzero(query_mask)                            # [A] each
    scores = np.full((num_q, num_k, fetch), _NEG_INF, np.float32)      # [Q, K, F]
    items = np.zeros((num_q, num_k, fetch), np.int64)                  # [Q, K, F]
    if rows_q.size:
      scores[rows_q, rows_k], items[rows_q, rows_k] = self._faiss_search(
          queries[rows_q, rows_k], fetch)                              # [A, F]
    scores = scores.reshape(num_q, num_k * fetch)                      # [Q, K*F]
    items = items.reshape(num_q, num_k * fetch)                        # [Q, K*F]
    if excl_keys.size:
      keys = self._pair_keys(np.repeat(query_ids, items.shape[1]), items.reshape(-1))
      dropped = np.isin(keys, excl_keys).reshape(items.shape)
      scores = np.where(dropped, _NEG_INF, scores)
    scores, items = _best_first(scores, items)
    if num_k > 1:
      # The same item from several interests: keep its first (best) copy.
      by_item = np.argsort(items, axis=1, kind="stable")               # [Q, K*F]
      sorted_items = np.take_along_axis(items, by_item, axis=1)
      dup = np.zeros(items.shape, dtype=bool)
      dup[:, 1:] = sorted_items[:, 1:] == sorted_items[:, :-1]
      dup_in_place = np.zeros_like(dup)
      np.put_along_axis(dup_in_place, by_item, dup, axis=1)
      scores, items = _best_first(np.where(dup_in_place, _NEG_INF, scores), items)
    items = np.where(np.isneginf(scores), 0, items)
    return scores, items

  def _faiss_search(self, queries, fetch):
    """Faiss search; returns (scores [Q, F], items [Q, F]) with -1 -> item 0, -inf."""
    scores, labels = self.index.search(np.ascontiguousarray(queries), fetch)
    missing = labels < 0
    items = labels + self.item_offset
    if missing.any():
      items = np.where(missing, 0, items)
      scores = np.where(missing, _NEG_INF, scores)
    return scores.astype(np.float32, copy=False), items.astype(np.int64, copy=False)

  def _pair_keys(self, query_ids, items):
    """(query, item) pairs as one int64 key, for a vectorised set membership."""
    stride = self.num_items + self.item_offset + 1
    return query_ids.astype(np.int64) * stride + items

  @staticmethod
  def _finalize(scores, items, k):
    """Pads to k columns with (item 0, -inf) when fewer were fetched."""
    scores, items = scores[:, :k], items[:, :k]
    if scores.shape[1] < k:
      pad = k - scores.shape[1]
      scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=_NEG_INF)
      items = np.pad(items, ((0, 0), (0, pad)), constant_values=0)
    return np.ascontiguousarray(scores), np.ascontiguousarray(items)

  # === Candidate scoring (sampled protocols) ===

  def score_candidates(self, queries, candidate_items, query_mask=None):
    """Scores of given candidates per query: float32 [Q, C].

    Args:
      queries: float32 [Q, D] or multi-interest [Q, K, D] (max over valid vectors).
      candidate_items: int [Q, C] item indices; item 0 (padding) scores -inf.
      query_mask: bool [Q, K] for multi-interest queries.
    """
    queries, query_mask = self._check_queries(queries, query_mask)
    candidate_items = np.asarray(candidate_items)
    if candidate_items.ndim != 2 or candidate_items.shape[0] != queries.shape[0]:
      raise ValueError("TopKSearcher.score_candidates: candidate_items must be "
                       "[Q=%d, C], got shape %s"
                       % (queries.shape[0], candidate_items.shape))
    rows = candidate_items.astype(np.int64) - self.item_offset        # [Q, C]
    padding = candidate_items == 0
    bad = ~padding & ((rows < 0) | (rows >= self.num_items))
    if bad.any():
      q, c = np.argwhere(bad)[0]
      raise ValueError("TopKSearcher.score_candidates: candidate_items[%d, %d] = %d "
                       "is not an item index in [%d, %d]"
                       % (q, c, candidate_items[q, c], self.item_offset,
                          self.num_items + self.item_offset - 1))
    cand = self.item_embeddings[np.where(padding, 0, rows)]             # [Q, C, D]
    if queries.ndim == 3:
      scores = np.einsum("qkd,qcd->qkc", queries, cand)                # [Q, K, C]
      scores = np.where(query_mask[:, :, None], scores, _NEG_INF).max(axis=1)  # [Q, C]
    else:
      scores = np.einsum("qd,qcd->qc", queries, cand)                  # [Q, C]
    return np.where(padding, _NEG_INF, scores).astype(np.float32)

  # === Input checks ===

  def _check_queries(self, queries, query_mask):
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim not in (2, 3) or queries.shape[-1] != self.dimension:
      raise ValueError("TopKSearcher: queries must be [Q, %d] or [Q, K, %d], got "
                       "shape %s" % (self.dimension, self.dimension, queries.shape))
    if not np.isfinite(queries).all():
      raise ValueError("TopKSearcher: queries row %d has a non-finite value"
                       % np.argwhere(~np.isfinite(queries))[0][0])
    if queries.ndim == 2:
      if query_mask is not None:
        raise ValueError("TopKSearcher: query_mask is only for [Q, K, D] queries")
      return queries, None
    if query_mask is None:
      query_mask = np.ones(queries.shape[:2], dtype=bool)
    query_mask = np.asarray(query_mask, dtype=bool)
    if query_mask.shape != queries.shape[:2]:
      raise ValueError("TopKSearcher: query_mask shape %s != queries' [Q, K] %s"
                       % (query_mask.shape, queries.shape[:2]))
    if not query_mask.any(axis=1).all():
      raise ValueError("TopKSearcher: query %d has no valid interest vector"
                       % np.nonzero(~query_mask.any(axis=1))[0][0])
    return queries, query_mask
