"""Evaluation protocols: full-catalog ranking and 100 sampled negatives.

- `full`: every user is ranked against the whole catalog (exact top-K through
  `TopKSearcher.search`), excluding the items the user interacted with before
  the evaluated targets by default (training items and the evaluation
  history). A user's own targets are never excluded, the same rule as the
  sampled protocols, where the targets are always ranked.
- `popular100`: the targets ranked against 100 negatives drawn with
  probability proportional to their training count (BERT4Rec, CIKM'19, section
  4.1; CLRec Table 8).
- `uniform100`: the same with 100 uniformly drawn negatives (PCL-AISL Table 1).

Negatives are distinct per user and never an item the user interacted with or a
target. They are drawn ONCE with a fixed seed and saved as
`candidates_<split>_<protocol>.npy` (int64 [U, 1 + 100]: column 0 the user
index, then the negatives) with a JSON sidecar recording the protocol, split,
seed and dataset fingerprint; every model evaluated later reuses the file, so
all models are scored on the same candidates.

Ties (sampled protocols): pessimistic. A negative scoring exactly the same as a
target is ranked before it, so constant scores give no credit. In `full`, equal
scores keep the order Faiss returns them in (exact float ties are rare for
trained embeddings).
"""

import hashlib
import json
import os

import numpy as np

from dcg_tf.errors import InputError

PROTOCOLS = ("full", "popular100", "uniform100")
SAMPLED_PROTOCOLS = {"popular100": ("popularity", 100),
                     "uniform100": ("uniform", 100)}
DEFAULT_SEED = 20210815   # CLRec's KDD'21 date; any fixed value works.


def check_protocol(protocol):
  if protocol not in PROTOCOLS:
    raise ValueError("unknown protocol %r; choose one of %s"
                     % (protocol, ", ".join(PROTOCOLS)))


# === full ===


def full_ranking(searcher, queries, targets, depth, exclude=None, query_mask=None):
  """Ranked items int64 [U, depth] over the whole catalog.

  Args:
    searcher: a `TopKSearcher` over the item embeddings.
    queries: float32 [U, D] or [U, K, D] user vectors.
    targets: int [U, M] 0-padded targets; removed from `exclude` per user.
    depth: how many items to rank (the largest K of the metrics).
    exclude: optional list of U arrays of items to drop (interacted items).
    query_mask: bool [U, K] for multi-interest queries.
  """
  if exclude is not None:
    targets = np.asarray(targets)
    exclude = [np.setdiff1d(np.asarray(e, np.int64), t[t > 0])
               for e, t in zip(exclude, targets)]
  _, items = searcher.search(queries, depth, exclude=exclude, query_mask=query_mask)
  return items


# === popular100 / uniform100 ===


def sampled_ranking(searcher, queries, targets, negatives, query_mask=None):
  """Targets and negatives ranked by score: int64 [U, M + n], ties pessimistic.

  Args:
    searcher: a `TopKSearcher`.
    queries: float32 [U, D] or [U, K, D].
    targets: int [U, M] 0-padded targets (padding scores -inf, ranked last).
    negatives: int [U, n] sampled negatives (`sample_negatives`).
    query_mask: bool [U, K] for multi-interest queries.
  """
  targets = np.asarray(targets, np.int64)
  candidates = np.concatenate([targets, np.asarray(negatives, np.int64)], axis=1)
  scores = searcher.score_candidates(queries, candidates, query_mask=query_mask)
  is_target = np.zeros(candidates.shape, dtype=bool)                  # [U, M+n]
  is_target[:, :targets.shape[1]] = True
  # lexsort: last key is primary. Score descending, then negatives before
  # targets on equal scores (pessimistic ties).
  order = np.lexsort((is_target, -scores), axis=-1)                    # [U, M+n]
  return np.take_along_axis(candidates, order, axis=1)


def sample_negatives(interacted, num_items, num_negatives, sampling, seed,
                     item_count=None):
  """Distinct negatives per user avoiding the user's items: int64 [U, n].

  Args:
    interacted: list of U int arrays: items the user may not get as negatives
      (training items, evaluation history, targets).
    num_items: N; items are 1..N.
    num_negatives: n per user (100).
    sampling: "uniform" or "popularity" (probability proportional to
      `item_count`, the training count; items never seen in training are
      never drawn).
    seed: NumPy seed; the draw is a deterministic function of the inputs.
    item_count: int [N+1] training counts, required for "popularity".
  """
  if sampling == "uniform":
    weights = np.ones(num_items, np.float64)
  elif sampling == "popularity":
    if item_count is None:
      raise ValueError("popularity sampling needs item_count")
    weights = np.asarray(item_count, np.float64)[1:]
  else:
    raise ValueError("sampling must be 'uniform' or 'popularity', got %r" % sampling)
  if weights.size != num_items:
    raise ValueError("item_count has %d rows, expected N+1 = %d"
                     % (weights.size + 1, num_items + 1))
  num_users = len(interacted)
  interacted = [np.unique(np.asarray(x, np.int64)) for x in interacted]
  available = weights > 0                                              # [N]
  for u, items in enumerate(interacted):
    items = items[(items >= 1) & (items <= num_items)]
    free = int(available.sum()) - int(available[items - 1].sum())
    if free < num_negatives:
      raise InputError("user row %d: only %d items can be sampled as negatives "
                       "(%s sampling), %d needed: the catalog is too small for "
                       "this protocol; use --protocol=full" % (u, free, sampling,
                                                              num_negatives))
  cdf = np.cumsum(weights / weights.sum())
  cdf[-1] = 1.0
  stride = num_items + 1
  counts = np.array([x.size for x in interacted], np.int64)
  excl_keys = (np.repeat(np.arange(num_users, dtype=np.int64), counts) * stride
               + (np.concatenate(interacted) if num_users else np.zeros(0, np.int64)))
  rng = np.random.default_rng(seed)
  negatives = np.zeros((num_users, num_negatives), np.int64)
  todo = np.arange(num_users)
  draws = 2 * num_negatives
  while todo.size:
    # Inverse-CDF draws for all pending users at once: items 1..N.
    sample = np.searchsorted(cdf, rng.random((todo.size, draws)), side="right") + 1
    sample = np.minimum(sample, num_items)                             # [T, S]
    bad = np.isin(todo[:, None] * stride + sample, excl_keys)
    # Repeats within a row: keep the earliest occurrence.
    by_item = np.argsort(sample, axis=1, kind="stable")
    sorted_items = np.take_along_axis(sample, by_item, axis=1)
    repeat_sorted = np.zeros(sample.shape, dtype=bool)
    repeat_sorted[:, 1:] = sorted_items[:, 1:] == sorted_items[:, :-1]
    repeat = np.zeros_like(repeat_sorted)
    np.put_along_axis(repeat, by_item, repeat_sorted, axis=1)
    valid = ~bad & ~repeat
    done = valid.sum(axis=1) >= num_negatives                          # [T]
    # First n valid draws in draw order.
    first_valid = np.argsort(~valid[done], axis=1, kind="stable")[:, :num_negatives]
    negatives[todo[done]] = np.take_along_axis(sample[done], first_valid, axis=1)
    todo = todo[~done]
    draws *= 2
  return negatives


# === Saved candidates ===


def candidates_path(folder, split, protocol):
  return os.path.join(folder, "candidates_%s_%s.npy" % (split, protocol))


def users_digest(users):
  return hashlib.sha256(np.ascontiguousarray(users, np.int64).tobytes()).hexdigest()


def load_or_sample_negatives(folder, split, protocol, users, interacted, num_items,
                             item_count, fingerprint, seed=None):
  """Negatives of `protocol` for `users`, loaded if saved before, else drawn and saved.

  Args:
    folder: where `candidates_<split>_<protocol>.npy` and its `.json` live.
    split: "valid" or "test".
    protocol: "popular100" or "uniform100".
    users: int [U] user indices in evaluation order.
    interacted: list of U arrays of items that are not negatives for the user.
    num_items: N.
    item_count: int [N+1] training counts.
    fingerprint: the dataset fingerprint recorded in (and checked against) the
      sidecar, so candidates of another dataset are never reused.
    seed: the draw's seed (default `DEFAULT_SEED`); a saved file with another
      seed is an error rather than silently replaced.

  Returns:
    int64 [U, 100] negatives, row u for users[u].
  """
  sampling, num_negatives = SAMPLED_PROTOCOLS[protocol]
  seed = DEFAULT_SEED if seed is None else int(seed)
  users = np.asarray(users, np.int64)
  path = candidates_path(folder, split, protocol)
  sidecar_path = path[:-len(".npy")] + ".json"
  expected = {"protocol": protocol, "split": split, "sampling": sampling,
              "num_negatives": num_negatives, "seed": seed,
              "dataset_fingerprint": fingerprint, "num_users": int(users.size),
              "users_sha256": users_digest(users)}
  if os.path.exists(path):
    if not os.path.exists(sidecar_path):
      raise ValueError("%s has no sidecar %s; delete it to redraw" % (path, sidecar_path))
    with open(sidecar_path) as f:
      saved = json.load(f)
    for key, value in expected.items():
      if saved.get(key) != value:
        raise ValueError("%s was drawn with %s=%r but this evaluation has %r; use "
                         "another --candidates_dir or delete the file to redraw"
                         % (path, key, saved.get(key), value))
    table = np.load(path, allow_pickle=False)
    if (table.ndim != 2 or table.shape != (users.size, 1 + num_negatives)
        or not np.array_equal(table[:, 0], users)):
      raise ValueError("%s: column 0 does not list the evaluated users in order "
                       "(shape %s)" % (path, table.shape))
    return table[:, 1:]
  negatives = sample_negatives(interacted, num_items, num_negatives, sampling, seed,
                               item_count=item_count)
  os.makedirs(folder, exist_ok=True)
  table = np.concatenate([users[:, None], negatives], axis=1)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    np.save(f, table, allow_pickle=False)
  with open(sidecar_path + ".tmp", "w") as f:
    json.dump(expected, f, indent=2, sort_keys=True)
  os.replace(sidecar_path + ".tmp", sidecar_path)
  os.replace(tmp, path)
  return negatives
