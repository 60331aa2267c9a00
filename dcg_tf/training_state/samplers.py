"""Negative samplers over the item vocabulary and proposal distributions.

`AliasSampler` draws ids from any discrete distribution in O(1) per draw with
Walker's alias method (Walker, ACM TOMS 1977; Vose, IEEE TSE 1991), the
sampler CLRec's baselines use (CLRec, KDD'21, appendix B.3, via AliGraph). The
tables are built once in NumPy; sampling runs in TensorFlow. Every draw comes
with its probability q(y), for the log-Q correction of sampled softmax
(CLRec Eq. 2).

Proposal helpers return NumPy probability vectors over item ids `0..N` with
`p[0] = 0` (item 0 is padding and is never drawn).
"""

import numpy as np
import tensorflow as tf


class AliasSampler(tf.Module):
  """Samples ids i with probability p_i using Walker's alias tables.

  Table construction (Vose, vectorised in `build_alias_tables`): scale `p` by n
  so the mean is 1; pair each "small" bucket (mass < 1) with a "large" one that
  donates the remainder.
  A draw picks a bucket `k` uniformly and keeps it with probability
  `accept[k]`, otherwise returns `alias[k]`. Hence
  `P(i) = (accept[i] + sum_{k: alias[k] = i} (1 - accept[k])) / n = p_i`
  exactly (up to float rounding), tested in tests/layers/test_samplers.py.

  The tables are non-trainable `tf.Variable`s (not graph constants), so a 10M
  item vocabulary does not bloat traced graphs. The sampler is training-only
  state: keep it on the training model, never on a tower.

  Args:
    probabilities: 1-D array of non-negative weights (normalised here), e.g.
      `unigram(item_count, 0.75)`.

  Example:
    >>> sampler = AliasSampler(unigram(item_count, power=0.75))
    >>> ids, q = sampler.sample(2560)   # int64 [2560], float32 [2560]
  """

  def __init__(self, probabilities, name=None):
    super().__init__(name=name)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
      raise ValueError("AliasSampler: probabilities must be a non-empty 1-D array, "
                       "got shape %s" % (p.shape,))
    if not np.all(np.isfinite(p)) or np.any(p < 0):
      bad = int(np.flatnonzero(~np.isfinite(p) | (p < 0))[0])
      raise ValueError("AliasSampler: probabilities must be finite and >= 0; "
                       "entry %d is %r" % (bad, p[bad]))
    if p.sum() <= 0:
      raise ValueError("AliasSampler: probabilities sum to 0")
    p = p / p.sum()
    accept, alias = build_alias_tables(p)
    self.size = p.size
    self.accept = tf.Variable(accept.astype(np.float32), trainable=False,
                              name="accept")
    self.alias = tf.Variable(alias, trainable=False, name="alias")
    self.probabilities = tf.Variable(p.astype(np.float32), trainable=False,
                                     name="probabilities")

  def sample(self, num_samples, seed=None, generator=None):
    """Draws `num_samples` ids with replacement.

    Args:
      num_samples: number of draws S.
      seed: optional shape-[2] integer seed for stateless (repeatable) draws.
      generator: optional `tf.random.Generator` (its state checkpoints with the
        trainer, so resumed runs continue the same stream). Default: the global
        TF random state.

    Returns:
      ids int64 [S] and their probabilities q(ids) float32 [S].
    """
    # Buckets are drawn as integers: u * n in float32 would never reach some
    # buckets once n exceeds 2^24 (float32 uniforms have 23-24 random bits).
    shape = [num_samples]
    if seed is not None:
      seeds = tf.random.experimental.stateless_split(seed, 2)
      bucket = tf.random.stateless_uniform(shape, seed=seeds[0], minval=0,
                                           maxval=self.size, dtype=tf.int64)
      coin = tf.random.stateless_uniform(shape, seed=seeds[1], dtype=tf.float32)
    elif generator is not None:
      bucket = generator.uniform(shape, minval=0, maxval=self.size, dtype=tf.int64)
      coin = generator.uniform(shape, dtype=tf.float32)
    else:
      bucket = tf.random.uniform(shape, minval=0, maxval=self.size, dtype=tf.int64)
      coin = tf.random.uniform(shape, dtype=tf.float32)
    keep = coin < tf.gather(self.accept, bucket)                               # [S]
    ids = tf.where(keep, bucket, tf.gather(self.alias, bucket))                # [S]
    return ids, self.probability(ids)

  def probability(self, ids):
    """q(ids): the probability of drawing each id, float32 [...]."""
    return tf.gather(self.probabilities, tf.cast(ids, tf.int64))


def build_alias_tables(p):
  """Alias tables for a normalised p [n]: (accept float64 [n], alias int64 [n]).

  Vectorised form of the two-pointer (Vose) construction, O(n log n) in NumPy.
  Scale p by n; "small" items (mass w < 1) have deficit 1 - w, "large" ones
  surplus w - 1, with equal totals. Lay the smalls' deficits end to end
  (cumulative D) and the larges' surpluses too (cumulative S). Processing smalls
  in order with a pointer to the current large, small i goes to the first large
  j whose cumulative surplus reaches its start, S_j >= D_{i-1}. A large whose
  surplus runs out (S_j < D_i for the small i straddling S_j) keeps mass
  1 - (D_i - S_j) and hands the rest to large j + 1. Each large then holds
  1 - deficit_j + deficit_{j-1} + (its smalls' deficits) = w_j, so every item
  keeps exactly its mass (tests/layers/test_samplers.py checks it).
  """
  n = p.size
  scaled = p * n
  accept = np.ones(n, dtype=np.float64)
  alias = np.arange(n, dtype=np.int64)
  small = np.flatnonzero(scaled < 1.0)
  large = np.flatnonzero(scaled >= 1.0)
  if small.size == 0 or large.size == 0:
    return accept, alias  # uniform up to rounding
  deficit_end = np.cumsum(1.0 - scaled[small])                          # D_i
  deficit_start = np.concatenate([[0.0], deficit_end[:-1]])            # D_{i-1}
  surplus_end = np.cumsum(scaled[large] - 1.0)                          # S_j
  # Smalls: keep their mass, alias the current large.
  j = np.minimum(np.searchsorted(surplus_end, deficit_start, side="left"),
                 large.size - 1)
  accept[small] = scaled[small]
  alias[small] = large[j]
  # Larges but the last: the small straddling S_j (first D_i > S_j) overdraws it.
  c = np.searchsorted(deficit_end, surplus_end[:-1], side="right")
  overdrawn = c < small.size
  owed = np.where(overdrawn, deficit_end[np.minimum(c, small.size - 1)]
                  - surplus_end[:-1], 0.0)
  accept[large[:-1]] = 1.0 - owed
  alias[large[:-1]] = np.where(overdrawn, large[1:], large[:-1])
  return accept, alias


def uniform(num_items):
  """Uniform over items 1..N: p [N+1] with p[0] = 0."""
  p = np.full(num_items + 1, 1.0 / num_items)
  p[0] = 0.0
  return p


def log_uniform(num_items):
  """Zipfian (log-uniform) over items 1..N by id: p_i = log((i+1)/i) / log(N+1).

  The distribution of TF's `log_uniform_candidate_sampler` shifted to skip
  padding; it approximates popularity when ids are sorted by decreasing count.
  The terms telescope: sum_{i=1..N} log((i+1)/i) = log(N+1).
  """
  i = np.arange(1, num_items + 1, dtype=np.float64)
  p = np.zeros(num_items + 1)
  p[1:] = np.log1p(1.0 / i) / np.log(num_items + 1.0)
  return p


def unigram(counts, power=1.0):
  """Popularity proposal p_i proportional to counts[i]**power, p[0] = 0.

  `power=0.75` is word2vec's / CLRec appendix B.3's degree^0.75. Items never
  seen get 0 (never drawn as negatives).

  Args:
    counts: item_count [N+1] (row 0 is padding).
    power: exponent applied to the counts.
  """
  counts = np.asarray(counts, dtype=np.float64)
  if counts.ndim != 1 or np.any(counts < 0):
    raise ValueError("unigram: counts must be a 1-D array of non-negative values")
  p = counts ** power
  p[0] = 0.0
  if p.sum() <= 0:
    raise ValueError("unigram: all item counts are 0")
  return p / p.sum()
