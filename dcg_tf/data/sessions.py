"""Sessions and the global item co-occurrence matrix (MicRec section 3.5).

"Given a session s = {d_1, ..., d_n} of n sequentially clicked items, any two
items d_i, d_j in s have one co-occurrence relation. Next, we scan all
sessions in the train set to learn the co-occurrence matrix of all item
pairs." Section 4.1: a session is "a continuous consumption window of a user
in no more than one hour".

- Sessions from timestamps: preprocessing already splits every user's events
  into sessions, a gap of MORE than `session_gap` seconds (3600 by default)
  starting a new one (`dcg_tf.data.preprocess.sessions_of`; a gap of exactly
  3600 s stays in the session). The training records carry that index
  (`TrainSequences.sessions`).
- Data without timestamps (`manifest["has_time"]` False: the row order is the
  only time) has no sessions: each event co-occurs with the events at most
  `window - 1` positions after it in the user's sequence (a sliding window
  of `window` consecutive events, 10 by default), counted once per such pair
  of positions.
- Within a session, an unordered pair of distinct items counts once per
  session, however often either item repeats.

The matrix is kept sparse (`dcg_tf.data.item_pairs.ItemGraph`, symmetric,
counts as weights) and built in bounded memory. Pairs are enumerated by
offset between positions, one vectorised pass per offset over only the
positions that still have a partner that far away, in slices of at most
`chunk_pairs` pairs. Each unordered pair {a, b} is one key
`min * (N+1) + max`; a full chunk is sorted and counted, then merged into the
sorted running counts (a linear merge, no re-sort of what is counted). The
symmetric CSR is written from the unordered counts at the end. Memory: the
input, the distinct unordered pairs with their counts, one chunk, and the
final CSR; never all pair occurrences and never N x N
(benchmarks/cooccurrence_benchmark.py measures it).
"""

import numpy as np

from dcg_tf.data.item_pairs import ItemGraph

DEFAULT_WINDOW = 10


def cooccurrence(items, groups, num_items, window=None, chunk_pairs=1 << 23):
  """Symmetric co-occurrence counts of items in the same group: an `ItemGraph`.

  Args:
    items: int [E] item ids (1..N) in time order within each group.
    groups: int [E] a key per event, equal for the events of one session (or
      one user's sequence in window mode) and contiguous.
    num_items: N.
    window: None: every pair of distinct items of a group counts once per
      group (sessions). An int W: the pairs of positions less than W apart
      count, once per pair of positions (a sliding window of W events).
    chunk_pairs: merge into the counts after this many pairs.

  Returns:
    `ItemGraph` whose row a holds the items co-occurring with a, weighted by
    the number of co-occurrences.
  """
  items = np.asarray(items, np.int64)
  groups = np.asarray(groups, np.int64)
  if items.shape != groups.shape:
    raise ValueError("cooccurrence: items %s and groups %s differ in shape"
                     % (items.shape, groups.shape))
  if window is None:
    # One copy of each item per group, in first-occurrence order.
    _, first = np.unique(groups * (num_items + 1) + items, return_index=True)
    first.sort()
    items, groups = items[first], groups[first]
  elif int(window) < 2:
    raise ValueError("cooccurrence: window must be >= 2 (or None), got %r" % window)
  chunk_pairs = max(int(chunk_pairs), 1)
  keys = np.zeros(0, np.int64)     # sorted unordered keys min * (N+1) + max
  counts = np.zeros(0, np.int64)
  pending = []
  pending_size = 0
  alive = np.arange(items.size - 1)   # positions p with p + offset in range
  offset = 1
  while alive.size and (window is None or offset < int(window)):
    alive = alive[alive + offset < items.size]
    alive = alive[groups[alive + offset] == groups[alive]]
    for start in range(0, alive.size, chunk_pairs):
      part = alive[start:start + chunk_pairs]
      a, b = items[part], items[part + offset]
      distinct = a != b
      a, b = a[distinct], b[distinct]
      pending.append(np.minimum(a, b) * (num_items + 1) + np.maximum(a, b))
      pending_size += a.size
      if pending_size >= chunk_pairs:
        keys, counts = _merge(keys, counts, pending)
        pending, pending_size = [], 0
    offset += 1
  keys, counts = _merge(keys, counts, pending)
  del pending, alive
  lo, hi = np.divmod(keys, num_items + 1)                    # [K], lo < hi
  del keys
  return _symmetric_graph(lo, hi, counts, num_items)


def _merge(keys, counts, pending):
  """Adds the keys in `pending` (a list of arrays) to sorted (keys, counts)."""
  if not pending:
    return keys, counts
  new, new_counts = np.unique(np.concatenate(pending), return_counts=True)
  position = np.searchsorted(keys, new)                      # [U]
  found = position < keys.size
  found[found] = keys[position[found]] == new[found]
  counts[position[found]] += new_counts[found]   # positions distinct: new is
  fresh = ~found                                 # sorted and distinct
  return (np.insert(keys, position[fresh], new[fresh]),
          np.insert(counts, position[fresh], new_counts[fresh].astype(np.int64)))


def _symmetric_graph(lo, hi, counts, num_items):
  """The symmetric `ItemGraph` of the unordered pairs (lo, hi), lo < hi,
  sorted by (lo, hi), with their counts.

  Row r holds first its partners below r (the keys with hi = r, in order of
  lo), then those above (lo = r, in order of hi): sorted columns, written in
  place without sorting the 2 x nnz directed keys.
  """
  below = np.bincount(hi, minlength=num_items + 1)           # [N+1] partners < r
  above = np.bincount(lo, minlength=num_items + 1)           # [N+1] partners > r
  indptr = np.zeros(num_items + 2, np.int64)
  np.cumsum(below + above, out=indptr[1:])
  indices = np.empty(2 * lo.size, np.int64)
  weights = np.empty(2 * lo.size, np.int64)
  # lo is sorted (keys are): rank of each key within its lo group.
  position = indptr[lo] + below[lo] + (
      np.arange(lo.size) - np.searchsorted(lo, lo))          # [K]
  indices[position] = hi
  weights[position] = counts
  order = np.argsort(hi, kind="stable")                      # by hi, then lo
  hi_sorted = hi[order]
  position = indptr[hi_sorted] + (
      np.arange(lo.size) - np.searchsorted(hi_sorted, hi_sorted))
  indices[position] = lo[order]
  weights[position] = counts[order]
  return ItemGraph(indptr, indices, weights)


def training_cooccurrence(data, window=None):
  """The co-occurrence matrix of a dataset's training sequences.

  Args:
    data: a `ProcessedDataset`.
    window: with timestamps: None counts whole sessions (the paper), an int
      caps pairs to events less than `window` apart within a session. Without
      timestamps (`manifest["has_time"]` False) the sliding window of
      `window` events (default `DEFAULT_WINDOW`).

  Returns:
    an `ItemGraph` over the dataset's items.
  """
  seqs = data.train_sequences()
  row = np.repeat(np.arange(seqs.users.size), np.diff(seqs.offsets))
  if bool(data.manifest.get("has_time", True)):
    # (row, session) -> one key; sessions are 0-based within a row.
    groups = row * (int(seqs.sessions.max(initial=0)) + 1) + seqs.sessions
    return cooccurrence(seqs.items, groups, data.num_items, window=window)
  return cooccurrence(seqs.items, row, data.num_items,
                      window=window or DEFAULT_WINDOW)
