"""Positive and negative item pairs for MicRec's semantic and session tasks.

MicRec (Xie et al., Tencent) section 3.4 (semantic-level item CL, Eq. 4) and
section 3.5 (session-level item CL, Eq. 5): every anchor item d_i has a set of
positives P_i (items with similar titles, items sharing a taxonomy value,
items co-occurring with it in sessions) and negatives drawn outside that set.
Two relations cover them:

- `ItemGraph`: a weighted sparse item x item relation in CSR form (NumPy
  arrays, never a dense N x N array). Positives are drawn with probability
  proportional to the weights: co-occurrence counts for sessions
  (`dcg_tf.data.sessions.cooccurrence`), 1 for each of the top-k title
  neighbours (`title_neighbours`).
- `SharedValues`: items sharing at least one taxonomy value (category, genre,
  tag, attribute). Pairs of a large category would not fit a CSR, so the
  relation keeps the catalog values and an inverted index: a positive is one
  of the anchor's values drawn uniformly, then another item with that value
  drawn uniformly.

Negatives (`sample_negatives`) are uniform items that are neither the anchor
nor in its positive set ("randomly selected from all items that have not
co-occurred with d_i"); rows that cannot fill every slot after a few rounds of
redraws leave the rest masked.

Sampling runs in TensorFlow with stateless ops, so `pair_dataset` is an
auxiliary input stream (`dcg_tf.models.base.RetrievalModel.auxiliary_streams`)
that is a pure function of (seed, epoch): element k of epoch e is drawn with
the key folded from (seed, e, k, salt).

Title vectors: `title_tfidf` (TF-IDF of the catalog's title tokens, NumPy, no
download) or a user's `.npy` of title embeddings (`load_title_embeddings`);
`title_neighbours` finds the top-k cosine neighbours with Faiss.
"""

import numpy as np
import tensorflow as tf

from dcg_tf.errors import InputError

_NEGATIVE_ROUNDS = 4   # candidates drawn per negative slot before giving up


class ItemGraph:
  """A weighted item x item relation in CSR form over ids 0..N.

  Row a holds the positives of anchor a: `indices[indptr[a]:indptr[a+1]]`
  (sorted, distinct, never a itself) with positive `weights`.

  Args:
    indptr: int64 [N+2].
    indices: int64 [nnz], ids in 1..N, sorted within each row.
    weights: float64 or int64 [nnz] > 0 (e.g. co-occurrence counts).

  Example:
    >>> graph = ItemGraph.from_pairs(rows, cols, counts, num_items)
    >>> ids, ok = graph.sample_positives(anchors, 2, seed)   # [B, 2]
  """

  def __init__(self, indptr, indices, weights):
    self.indptr = np.asarray(indptr, np.int64)
    self.indices = np.asarray(indices, np.int64)
    self.weights = np.asarray(weights)
    self.num_items = int(self.indptr.size - 2)
    if self.indices.size != self.weights.size or self.indptr[-1] != self.indices.size:
      raise ValueError("ItemGraph: indptr ends at %d but there are %d indices and "
                       "%d weights" % (self.indptr[-1], self.indices.size,
                                       self.weights.size))
    self._tensors = None

  @classmethod
  def from_pairs(cls, rows, cols, weights, num_items):
    """CSR from (row, col, weight) triples; duplicates are summed, self-pairs dropped."""
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    weights = np.asarray(weights, np.float64)
    keep = (rows != cols) & (weights > 0)
    keys = rows[keep] * (num_items + 1) + cols[keep]
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=weights[keep], minlength=unique.size)
    return cls.from_keys(unique, summed, num_items)

  @classmethod
  def from_keys(cls, keys, weights, num_items):
    """CSR from sorted distinct keys `row * (N+1) + col` and their weights."""
    keys = np.asarray(keys, np.int64)
    rows, cols = np.divmod(keys, num_items + 1)
    indptr = np.zeros(num_items + 2, np.int64)
    np.add.at(indptr, rows + 1, 1)
    return cls(np.cumsum(indptr), cols, weights)

  @property
  def nnz(self):
    return int(self.indices.size)

  def row(self, anchor):
    """(ids, weights) of anchor's positives (NumPy)."""
    start, end = self.indptr[anchor], self.indptr[anchor + 1]
    return self.indices[start:end], self.weights[start:end]

  def keys(self):
    """Sorted int64 keys `row * (N+1) + col` of the nonzeros."""
    rows = np.repeat(np.arange(self.num_items + 1), np.diff(self.indptr))
    return rows * (self.num_items + 1) + self.indices

  def restrict(self, labels):
    """Only pairs whose two items have the same nonzero label (e.g. category).

    MicRec section 4.1: co-occurrences "between items having the same
    categories" are emphasised in positive sampling to reduce noise.

    Args:
      labels: int [N+1], one label per item (0: unknown, never matches).
    """
    labels = np.asarray(labels)
    rows = np.repeat(np.arange(self.num_items + 1), np.diff(self.indptr))
    keep = (labels[rows] == labels[self.indices]) & (labels[rows] > 0)
    return ItemGraph.from_keys(self.keys()[keep], self.weights[keep],
                               self.num_items)

  def _as_tensors(self):
    """The sampling tables as constants of the current graph (NumPy cached)."""
    if self._tensors is None:
      cumulative = np.cumsum(self.weights.astype(np.float64))          # [nnz]
      before = np.concatenate([[0.0], cumulative])[self.indptr]        # [N+2]
      self._tensors = {
          "indptr": self.indptr,
          "indices": np.concatenate([self.indices, [0]]),              # [nnz+1]
          "cumulative": cumulative,
          "before": before[:-1],                                       # [N+1]
          "total": np.diff(before),                                    # [N+1]
          "keys": np.concatenate(
              [self.keys(), [np.iinfo(np.int64).max]]),                # [nnz+1]
      }
    return {name: tf.constant(value) for name, value in self._tensors.items()}

  def sample_positives(self, anchors, num, seed):
    """`num` positives per anchor, drawn with probability ~ weight.

    Args:
      anchors: int64 [B].
      num: P, draws per anchor (with replacement).
      seed: int [2] stateless seed.

    Returns:
      (ids int64 [B, P], valid bool [B, P]); an anchor without positives
      gets ids 0 and valid False.
    """
    t = self._as_tensors()
    anchors = tf.cast(anchors, tf.int64)
    total = tf.gather(t["total"], anchors)                           # [B]
    uniform = tf.random.stateless_uniform(
        tf.stack([tf.size(anchors), num]), seed, dtype=tf.float64)   # [B, P]
    target = tf.gather(t["before"], anchors)[:, None] + uniform * total[:, None]
    position = tf.searchsorted(t["cumulative"][None, :],
                               tf.reshape(target, [1, -1]), side="right")
    position = tf.reshape(position, tf.shape(target))                # [B, P]
    last = tf.gather(t["indptr"], anchors + 1)[:, None] - 1          # [B, 1]
    position = tf.minimum(tf.cast(position, tf.int64), tf.maximum(last, 0))
    valid = tf.broadcast_to((total > 0)[:, None], tf.shape(target))  # [B, P]
    ids = tf.where(valid, tf.gather(t["indices"], position), 0)      # [B, P]
    return ids, valid

  def contains(self, anchors, candidates):
    """bool [B, K]: candidates[b, k] is a positive of anchors[b]."""
    t = self._as_tensors()
    anchors = tf.cast(anchors, tf.int64)
    candidates = tf.cast(candidates, tf.int64)
    query = anchors[:, None] * (self.num_items + 1) + candidates      # [B, K]
    position = tf.searchsorted(t["keys"][None, :], tf.reshape(query, [1, -1]))
    found = tf.gather(t["keys"], tf.reshape(position, tf.shape(query)))  # [B, K]
    return tf.equal(found, query)


class SharedValues:
  """Items sharing a taxonomy value: d_k is a positive of d_i when they have
  at least one value (category, genre, tag, ...) in common (MicRec section 3.4,
  "items having the same taxonomies as positive samples of each other").

  Args:
    values: int [N+1, F] values per item, 0 = none, left-packed (the nonzero
      values first), as `from_catalog` builds them.

  Example:
    >>> rel = SharedValues.from_catalog({"genre": genre, "tag": tag})
    >>> ids, ok = rel.sample_positives(anchors, 1, seed)
  """

  def __init__(self, values):
    self.values = np.asarray(values, np.int64)
    if self.values.ndim != 2:
      raise ValueError("SharedValues: values must be [N+1, F], got shape %s"
                       % (self.values.shape,))
    self.num_items = int(self.values.shape[0] - 1)
    items = np.repeat(np.arange(self.num_items + 1), self.values.shape[1])
    flat = self.values.reshape(-1)
    keep = flat > 0
    pairs = np.unique(flat[keep] * (self.num_items + 1) + items[keep])
    value, item = np.divmod(pairs, self.num_items + 1)   # sorted by value, item
    num_values = int(self.values.max()) + 1 if self.values.size else 1
    indptr = np.zeros(num_values + 1, np.int64)
    np.add.at(indptr, value + 1, 1)
    self.value_indptr = np.cumsum(indptr)
    self.value_items = item
    self.value_keys = pairs   # value * (N+1) + item, sorted
    self._tensors = None

  @classmethod
  def from_catalog(cls, fields):
    """Values of several catalog features, each its own value space.

    Args:
      fields: dict name -> int array [N+1] (single-valued) or [N+1, L]
        (multi-valued), 0 = none (`ProcessedDataset.item_features`).
    """
    columns, offset = [], 0
    for name in sorted(fields):
      array = np.asarray(fields[name], np.int64)
      if array.ndim == 1:
        array = array[:, None]
      if array.ndim != 2 or (columns and array.shape[0] != columns[0].shape[0]):
        raise InputError("taxonomy feature %r has shape %s; expected [N+1] or "
                         "[N+1, L] like the other catalog features"
                         % (name, array.shape))
      columns.append(np.where(array > 0, array + offset, 0))
      offset += int(array.max()) if array.size else 0
    if not columns:
      raise InputError("SharedValues needs at least one taxonomy feature")
    values = np.concatenate(columns, axis=1)
    # Left-pack: nonzero values first (stable), so slot < count is a value.
    order = np.argsort(values == 0, axis=1, kind="stable")
    return cls(np.take_along_axis(values, order, axis=1))

  def _as_tensors(self):
    """The sampling tables as constants of the current graph (NumPy cached)."""
    if self._tensors is None:
      self._tensors = {
          "values": self.values,                                     # [N+1, F]
          "count": (self.values > 0).sum(axis=1),                    # [N+1]
          "value_indptr": self.value_indptr,
          "value_items": np.concatenate([self.value_items, [0]]),
          "value_keys": self.value_keys,
      }
    return {name: tf.constant(value) for name, value in self._tensors.items()}

  def sample_positives(self, anchors, num, seed):
    """One of the anchor's values uniformly, then another item with it uniformly.

    Returns:
      (ids int64 [B, P], valid bool [B, P]); valid is False where the drawn
      value has no other item (or the anchor has no value).
    """
    t = self._as_tensors()
    anchors = tf.cast(anchors, tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    shape = tf.stack([tf.size(anchors), num])
    count = tf.gather(t["count"], anchors)                           # [B]
    u_value = tf.random.stateless_uniform(shape, seeds[0], dtype=tf.float64)
    slot = tf.cast(u_value * tf.cast(count, tf.float64)[:, None], tf.int64)
    slot = tf.minimum(slot, tf.maximum(count[:, None] - 1, 0))       # [B, P]
    value = tf.gather(tf.gather(t["values"], anchors), slot, batch_dims=1)  # [B, P]
    start = tf.gather(t["value_indptr"], value)                      # [B, P]
    size = tf.gather(t["value_indptr"], value + 1) - start           # [B, P]
    # Uniform over the size - 1 items other than the anchor: draw among them
    # and step over the anchor's own position (value_items are sorted).
    u_item = tf.random.stateless_uniform(shape, seeds[1], dtype=tf.float64)
    pick = tf.cast(u_item * tf.cast(tf.maximum(size - 1, 0), tf.float64), tf.int64)
    query = value * (self.num_items + 1) + anchors[:, None]          # [B, P]
    own = tf.reshape(tf.searchsorted(t["value_keys"][None, :],
                                     tf.reshape(query, [1, -1])),
                     tf.shape(value))                                # [B, P]
    own = tf.cast(own, tf.int64) - start     # the anchor's rank in the value
    pick = tf.where(pick >= own, pick + 1, pick)
    valid = (count[:, None] > 0) & (size > 1)                        # [B, P]
    ids = tf.where(valid, tf.gather(t["value_items"],
                                    tf.where(valid, start + pick, 0)), 0)
    return ids, valid

  def contains(self, anchors, candidates):
    """bool [B, K]: the candidate shares a value with the anchor."""
    t = self._as_tensors()
    mine = tf.gather(t["values"], tf.cast(anchors, tf.int64))        # [B, F]
    theirs = tf.gather(t["values"], tf.cast(candidates, tf.int64))   # [B, K, F]
    same = tf.equal(mine[:, None, :, None], theirs[:, :, None, :])   # [B, K, F, F]
    same = tf.logical_and(same, (mine > 0)[:, None, :, None])
    return tf.reduce_any(same, axis=[2, 3])                          # [B, K]


def sample_negatives(relation, anchors, num, seed, rounds=_NEGATIVE_ROUNDS):
  """`num` uniform items per anchor outside its positive set and not itself.

  Draws `num * rounds` candidates uniformly from 1..N and keeps the first
  `num` acceptable ones of each row in draw order.

  Returns:
    (ids int64 [B, K], valid bool [B, K]); slots left unfilled hold id 0 and
    valid False.
  """
  anchors = tf.cast(anchors, tf.int64)
  candidates = tf.random.stateless_uniform(
      tf.stack([tf.size(anchors), num * rounds]), seed, minval=1,
      maxval=relation.num_items + 1, dtype=tf.int64)                 # [B, K*R]
  ok = tf.logical_and(tf.not_equal(candidates, anchors[:, None]),
                      tf.logical_not(relation.contains(anchors, candidates)))
  order = tf.argsort(tf.cast(tf.logical_not(ok), tf.int32), axis=1,
                     stable=True)[:, :num]                           # [B, K]
  ids = tf.gather(candidates, order, batch_dims=1)                   # [B, K]
  valid = tf.gather(ok, order, batch_dims=1)                         # [B, K]
  return tf.where(valid, ids, 0), valid


def anchor_probabilities(item_count, sampling):
  """float64 [N+1] over anchors: "uniform" over 1..N or "popularity" by counts."""
  counts = np.asarray(item_count, np.float64).copy()
  if sampling == "uniform":
    counts[1:] = 1.0
  elif sampling != "popularity":
    raise InputError("anchor sampling must be uniform or popularity, got %r"
                     % sampling)
  counts[0] = 0.0
  if counts.sum() <= 0:
    counts[1:] = 1.0
  return counts / counts.sum()


def pair_dataset(relation, anchor_probability, batch_size, num_positives,
                 num_negatives, seed, epoch, salt):
  """Infinite batches of (anchor, positives, negatives) for Eq. 4 or 5.

  Args:
    relation: an `ItemGraph` or `SharedValues`.
    anchor_probability: float [N+1] (`anchor_probabilities`).
    batch_size: B anchors per element.
    num_positives: P per anchor; num_negatives: K per anchor.
    seed, epoch: the stream's key, with `salt` (one per stream of a model).

  Returns:
    `tf.data.Dataset` of dicts: `anchor` int64 [B], `positive` int64 [B, P],
    `positive_mask` bool [B, P], `negative` int64 [B, K], `negative_mask`
    bool [B, K]. Element k is drawn with the key folded from
    (seed, epoch, k, salt).
  """
  cumulative = tf.constant(np.cumsum(np.asarray(anchor_probability, np.float64)))
  base = tf.constant([int(seed), int(epoch)], tf.int64)

  def draw(k):
    key = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(base, k), salt)     # [2]
    keys = tf.random.experimental.stateless_split(key, 3)            # [3, 2]
    uniform = tf.random.stateless_uniform([batch_size], keys[0], dtype=tf.float64)
    anchors = tf.searchsorted(cumulative, uniform * cumulative[-1], side="right")
    anchors = tf.clip_by_value(tf.cast(anchors, tf.int64), 1,
                               relation.num_items)                   # [B]
    positive, positive_mask = relation.sample_positives(anchors, num_positives,
                                                        keys[1])
    negative, negative_mask = sample_negatives(relation, anchors, num_negatives,
                                               keys[2])
    return {"anchor": anchors, "positive": positive,
            "positive_mask": positive_mask, "negative": negative,
            "negative_mask": negative_mask}

  return tf.data.Dataset.counter(dtype=tf.int64).map(draw)


# === Title vectors ===


def title_tfidf(tokens, max_tokens=2048, min_items=2):
  """TF-IDF vectors of the items' title tokens, l2-normalised: float32 [N+1, V].

  tf = occurrences of the token in the title; idf = log((1 + n) / (1 + df)) + 1
  (n titled items, df the items whose title has the token; the smoothed idf of
  scikit-learn). Only tokens in at least `min_items` titles can make two
  titles similar, so the others are left out, and at most the `max_tokens`
  with the largest df are kept (columns in order of decreasing df, ties by
  token id). Items without tokens get zero rows.

  Args:
    tokens: int [N+1, L] token ids per item, 0 = padding (the catalog's
      `title_token` or `text_token`).
  """
  tokens = np.asarray(tokens, np.int64)
  if tokens.ndim != 2:
    raise InputError("title tokens must be [N+1, L], got shape %s" % (tokens.shape,))
  rows = np.repeat(np.arange(tokens.shape[0]), tokens.shape[1])
  flat = tokens.reshape(-1)
  keep = flat > 0
  rows, flat = rows[keep], flat[keep]
  pairs, tf_counts = np.unique(rows * (flat.max(initial=0) + 1) + flat,
                               return_counts=True)
  item, token = np.divmod(pairs, flat.max(initial=0) + 1)
  df = np.bincount(token, minlength=flat.max(initial=0) + 1)
  eligible = np.flatnonzero(df >= min_items)
  chosen = eligible[np.lexsort((eligible, -df[eligible]))][:max_tokens]
  column = np.full(df.size, -1, np.int64)
  column[chosen] = np.arange(chosen.size)
  titled = np.unique(item).size
  idf = np.log((1.0 + titled) / (1.0 + df)) + 1.0
  vectors = np.zeros((tokens.shape[0], max(chosen.size, 1)), np.float32)
  use = column[token] >= 0
  vectors[item[use], column[token[use]]] = tf_counts[use] * idf[token[use]]
  norm = np.linalg.norm(vectors, axis=1, keepdims=True)
  return vectors / np.maximum(norm, 1e-12)


def load_title_embeddings(path, num_items):
  """A user's title embeddings: `.npy` of [N, D] (row r = item r+1) or [N+1, D].

  Returns float32 [N+1, D], row 0 zeros.
  """
  try:
    array = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise InputError("%s: cannot read title embeddings (%s); give a .npy "
                     "float array [N, D]" % (path, e)) from e
  if array.ndim != 2 or array.shape[0] not in (num_items, num_items + 1):
    raise InputError("%s: title embeddings have shape %s; expected [%d, D] "
                     "(row r = item r+1, vocab/item.txt order) or [%d, D]"
                     % (path, array.shape, num_items, num_items + 1))
  array = np.asarray(array, np.float32)
  if array.shape[0] == num_items:
    array = np.concatenate([np.zeros((1, array.shape[1]), np.float32), array])
  array[0] = 0.0
  return array


def title_neighbours(vectors, k):
  """The top-k items by cosine of title vectors, found with Faiss: an `ItemGraph`.

  MicRec section 3.4: "the top-k nearest items retrieved by the cosine
  similarities between title embeddings are viewed as the semantically
  similar positive samples". Every neighbour has weight 1 (uniform positive
  sampling); an item is never its own neighbour, and neighbours with cosine
  <= 0 (nothing in common, e.g. an item without a title) are left out.

  Args:
    vectors: float [N+1, D], row 0 (padding) ignored.
    k: neighbours per item.
  """
  import faiss  # pylint: disable=g-import-not-at-top
  vectors = np.ascontiguousarray(vectors, np.float32)
  num_items = vectors.shape[0] - 1
  unit = vectors[1:] / np.maximum(np.linalg.norm(vectors[1:], axis=1,
                                                 keepdims=True), 1e-12)
  unit = np.ascontiguousarray(unit, np.float32)
  index = faiss.IndexFlatIP(unit.shape[1])
  index.add(unit)
  scores, found = index.search(unit, min(k + 1, num_items))          # [N, k+1]
  rows = np.repeat(np.arange(1, num_items + 1), found.shape[1])
  cols = found.reshape(-1).astype(np.int64) + 1
  keep = (found.reshape(-1) >= 0) & (scores.reshape(-1) > 1e-6) & (cols != rows)
  rows, cols, scores = rows[keep], cols[keep], scores.reshape(-1)[keep]
  # At most k per row, best first (the self match may be missing or tied).
  order = np.lexsort((-scores, rows))
  rows, cols = rows[order], cols[order]
  rank = np.arange(rows.size) - np.searchsorted(rows, rows)
  keep = rank < k
  return ItemGraph.from_pairs(rows[keep], cols[keep], np.ones(keep.sum()),
                              num_items)
