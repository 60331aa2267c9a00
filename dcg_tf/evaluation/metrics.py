"""Ranking and beyond-accuracy metrics on ranked item lists (pure NumPy).

Inputs everywhere:
  ranked: int [U, L] item indices, best first; item 0 is "no item" (padding)
    and never counts as a hit or as a recommended item.
  targets: int [U, M] held-out items per user, 0-padded; duplicates count once.

Accuracy (issue 3, "Evaluation"):
  HR@K      1 if any target is in the top K.
  Recall@K  |top K ∩ targets| / |targets| (multi-target, ComiRec's protocol;
            equals HR@K when each user has one target).
  NDCG@K    binary relevance: DCG@K = sum_{i<K, ranked[i] in targets} 1/log2(i+2),
            normalised by the ideal DCG = sum_{i<min(K, |targets|)} 1/log2(i+2).
  MAP@K     mean over users of the average precision at K (SSL-CFM, section
            4.2): AP@K = sum_{i<K} P@(i+1) * rel_i / min(|targets|, K), with
            P@n the share of targets in the top n; with one target at 1-based
            rank r <= K it is 1/r (0 beyond K).
  MRR       1/(1-based rank of the first relevant item) within the L computed
            positions, 0 when none is there.

Beyond accuracy (CLRec, KDD'21, Table 10 and appendix A):
  coverage@K      aggregate diversity: distinct items in all users' top K.
  popularity@K    popularity index E_A[p_data(y)] / max_A' E_A'[p_data(y)], with
                  p_data(y) the training count of item y and E_A the mean count of
                  the items A recommends (over users and top-K slots). The default
                  denominator is the largest value any recommender of K distinct
                  items can reach: the mean count of the K most popular items
                  (what the most-popular recommender without exclusion scores).
  head_/tail_HR@K, head_/tail_Recall@K
                  HR and Recall with targets restricted to head items (the top 20%
                  of items by training count, `head_fraction`; SSL-CFM's Table 4
                  uses 10%) or tail items (the rest), averaged over the users who
                  have at least one target in that group.
"""

import numpy as np

DEFAULT_KS = (1, 5, 10, 20, 50, 100, 200, 500)
HEAD_FRACTION = 0.2


# === Building blocks ===


def dedup_targets(targets):
  """targets [U, M] with repeated items and padding moved to 0; returns [U, M]."""
  targets = np.sort(np.asarray(targets, dtype=np.int64), axis=1)
  repeated = np.zeros(targets.shape, dtype=bool)
  repeated[:, 1:] = targets[:, 1:] == targets[:, :-1]
  return np.where(repeated, 0, targets)


def hit_matrix(ranked, targets):
  """bool [U, L]: ranked[u, i] is one of user u's (non-zero) targets."""
  ranked = np.asarray(ranked, dtype=np.int64)
  targets = np.asarray(targets, dtype=np.int64)
  if ranked.ndim != 2 or targets.ndim != 2 or ranked.shape[0] != targets.shape[0]:
    raise ValueError("ranked [U, L] and targets [U, M] must be 2-D with the same U, "
                     "got %s and %s" % (ranked.shape, targets.shape))
  targets = targets[:, (targets > 0).any(axis=0)]                     # drop empty columns
  # One comparison pass per target column: O(U * L * M) without a sort.
  hits = np.zeros(ranked.shape, dtype=bool)
  for column in targets.T:
    hits |= ranked == column[:, None]
  return hits & (ranked > 0)


def num_targets(targets):
  """int [U]: distinct non-zero targets per user."""
  return (dedup_targets(targets) > 0).sum(axis=1)


def _check_k(hits, k):
  if k > hits.shape[1]:
    raise ValueError("metric@%d needs at least %d ranked items per user, got %d"
                     % (k, k, hits.shape[1]))


def _discounts(length):
  return 1.0 / np.log2(np.arange(length) + 2.0)                       # [L]


# === Per-user accuracy metrics (inputs: hits [U, L], n_targets [U]) ===


def hit_rate_at_k(hits, k):
  _check_k(hits, k)
  return hits[:, :k].any(axis=1).astype(np.float64)                   # [U]


def recall_at_k(hits, n_targets, k):
  _check_k(hits, k)
  return hits[:, :k].sum(axis=1) / np.maximum(n_targets, 1)           # [U]


def ndcg_at_k(hits, n_targets, k):
  _check_k(hits, k)
  disc = _discounts(k)                                                 # [K]
  dcg = (hits[:, :k] * disc).sum(axis=1)                              # [U]
  ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])                 # [K+1]
  idcg = ideal_cum[np.minimum(n_targets, k)]                           # [U]
  return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0)


def average_precision_at_k(hits, n_targets, k):
  """AP@K per user: sum_{i<K} P@(i+1) rel_i / min(n_targets, K)."""
  _check_k(hits, k)
  top = hits[:, :k].astype(np.float64)                                 # [U, K]
  precision = np.cumsum(top, axis=1) / np.arange(1, k + 1)            # [U, K] P@n
  denominator = np.minimum(np.maximum(n_targets, 1), k)               # [U]
  return (precision * top).sum(axis=1) / denominator                   # [U]


def reciprocal_rank(hits):
  first = np.argmax(hits, axis=1)                                      # [U]
  return np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)


# === Aggregates ===


def ranking_metrics(ranked, targets, ks=DEFAULT_KS):
  """Mean HR@K, Recall@K, NDCG@K, MAP@K over users, and MRR; keys like "HR@10"."""
  targets = dedup_targets(targets)
  n_targets = (targets > 0).sum(axis=1)
  if (n_targets == 0).any():
    raise ValueError("user row %d has no target" % np.argmax(n_targets == 0))
  hits = hit_matrix(ranked, targets)
  results = {}
  for k in ks:
    results["HR@%d" % k] = float(hit_rate_at_k(hits, k).mean())
    results["Recall@%d" % k] = float(recall_at_k(hits, n_targets, k).mean())
    results["NDCG@%d" % k] = float(ndcg_at_k(hits, n_targets, k).mean())
    results["MAP@%d" % k] = float(average_precision_at_k(hits, n_targets, k).mean())
  results["MRR"] = float(reciprocal_rank(hits).mean())
  return results


def coverage_at_k(ranked, k):
  """Aggregate diversity: number of distinct items (not 0) in all users' top k."""
  top = np.asarray(ranked)[:, :k].ravel()
  return int(np.count_nonzero(np.bincount(top)[1:]))


def mean_popularity_at_k(ranked, item_count, k):
  """E_A[p_data(y)]: mean training count of the recommended items (top k)."""
  top = np.asarray(ranked)[:, :k]
  top = top[top > 0]
  return float(np.asarray(item_count, np.float64)[top].mean()) if top.size else 0.0


def max_mean_popularity(item_count, k):
  """max over recommenders of k distinct items: the mean of the k largest counts."""
  counts = np.sort(np.asarray(item_count, np.float64)[1:])[::-1]      # items 1..N
  return float(counts[:k].mean())


def popularity_index_at_k(ranked, item_count, k, reference=None):
  """CLRec appendix A: E_A[p_data(y)] / reference (default max_mean_popularity)."""
  if reference is None:
    reference = max_mean_popularity(item_count, k)
  if reference <= 0:
    raise ValueError("popularity index: the reference E[p_data] must be > 0 "
                     "(are all training counts zero?)")
  return mean_popularity_at_k(ranked, item_count, k) / reference


def head_item_mask(item_count, fraction=HEAD_FRACTION):
  """bool [N+1]: the top `fraction` of items 1..N by training count (ties: lower index).

  Item 0 is padding and never head. The head holds ceil(fraction * N) items.
  """
  item_count = np.asarray(item_count)
  num_items = item_count.size - 1
  num_head = int(np.ceil(fraction * num_items))
  order = np.lexsort((np.arange(num_items), -item_count[1:]))          # count desc
  mask = np.zeros(num_items + 1, dtype=bool)
  mask[order[:num_head] + 1] = True
  return mask


def group_metrics(ranked, targets, item_mask, ks, prefix, hits=None):
  """HR@K and Recall@K with targets restricted to items where `item_mask` is True.

  Averages over users with at least one target in the group; adds
  "<prefix>num_users". Users of neither group are simply not counted.
  `hits` (optional) is `hit_matrix(ranked, targets)`, to avoid recomputing it.
  """
  ranked = np.asarray(ranked)
  targets = dedup_targets(targets)
  targets = np.where(item_mask[targets], targets, 0)
  n_targets = (targets > 0).sum(axis=1)
  keep = n_targets > 0
  results = {"%snum_users" % prefix: int(keep.sum())}
  if hits is None:
    hits = hit_matrix(ranked, targets)
  else:
    # A hit on a full target list is a group hit iff the item is in the group.
    hits = hits & item_mask[ranked]
  hits = hits[keep]
  for k in ks:
    hr = hit_rate_at_k(hits, k)
    recall = recall_at_k(hits, n_targets[keep], k)
    results["%sHR@%d" % (prefix, k)] = float(hr.mean()) if keep.any() else 0.0
    results["%sRecall@%d" % (prefix, k)] = float(recall.mean()) if keep.any() else 0.0
  return results


def beyond_accuracy_metrics(ranked, targets, item_count, ks=DEFAULT_KS,
                            popularity_reference=None, head_fraction=HEAD_FRACTION):
  """coverage@K, popularity@K and head_/tail_ HR@K and Recall@K.

  Args:
    ranked: int [U, L] ranked items.
    targets: int [U, M] 0-padded targets.
    item_count: int [N+1] training interactions per item (row 0 = padding).
    ks: cut-offs.
    popularity_reference: optional dict k -> E_A'[p_data] of the reference
      recommender (e.g. a most-popular model's); default: max_mean_popularity.
    head_fraction: share of items (by training count) in the head.
  """
  results = {"head_fraction": float(head_fraction)}
  for k in ks:
    results["coverage@%d" % k] = coverage_at_k(ranked, k)
    reference = (popularity_reference or {}).get(k)
    results["popularity@%d" % k] = popularity_index_at_k(ranked, item_count, k,
                                                         reference)
  head = head_item_mask(item_count, head_fraction)
  tail = ~head
  tail[0] = False
  hits = hit_matrix(ranked, dedup_targets(targets))
  results.update(group_metrics(ranked, targets, head, ks, "head_", hits))
  results.update(group_metrics(ranked, targets, tail, ks, "tail_", hits))
  return results
