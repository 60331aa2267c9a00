"""tf.data pipelines over a processed dataset (docs/design.md, "tf.data batches").

All padded tensors are left-aligned: positions `0..k-1` hold the most recent
`k = min(n, max_len)` events in time order (oldest first) and padding (0)
follows.

- `train_dataset`: next-item examples. Each epoch draws one cut point per user
  (target = the event at the cut, history = the events before it; the first
  event is never a target), or every prefix with `all_prefixes=True`. The
  training sequences are read once from the shards (parallel interleave,
  batched parsing, `ProcessedDataset.train_sequences`) and kept in memory; each
  epoch's cut points and order come from stateless random ops keyed by
  `(seed, epoch)`, so the batches are the same on every run.
- `eval_dataset`: one row per evaluated user, read from `valid`/`test` records.
- `item_dataset`: infinite item-catalog batches keyed by `(seed, epoch)`,
  uniform over items 1..N (the contrastive batch of the SSL paper, Yao et al.,
  CIKM'21, section 3.3 "Heterogeneous Sample Distributions") or proportional
  to `item_count`; an auxiliary input stream (`RetrievalModel.auxiliary_streams`).

Example:
  >>> data = ProcessedDataset.load(path)
  >>> ds = train_dataset(data, batch_size=1024, max_len=50, seed=1, epoch=0)
  >>> batch = next(iter(ds))     # batch["history"]: int64 [1024, 50]
"""

import numpy as np
import tensorflow as tf

from dcg_tf.data import records

_SEED_SALT_CUT = 0
_SEED_SALT_ORDER = 1
# Folded with (epoch, batch) into the keys of `item_dataset`; any constant
# that makes them differ from the (seed, 2 * epoch + salt) keys above.
_SEED_SALT_ITEMS = 0x5eed17e5


def _check_positive(name, value):
  if not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError("%s must be a positive integer, got %r" % (name, value))


def _window(flat_values_padded, row_start, length, max_len):
  """Gathers the last min(length, max_len) values of each row, left-aligned.

  Args:
    flat_values_padded: [V+1] values with one trailing 0 (gathered for padding).
    row_start: int64 [B] start of each row in the flat values.
    length: int64 [B] number of events in each row's history.
    max_len: L.

  Returns:
    (values [B, L], mask bool [B, L]).
  """
  keep = tf.minimum(length, max_len)                                   # [B]
  first = row_start + length - keep                                    # [B]
  steps = tf.range(max_len, dtype=tf.int64)                            # [L]
  mask = steps[None, :] < keep[:, None]                                # [B, L]
  pad_index = tf.shape(flat_values_padded, out_type=tf.int64)[0] - 1
  positions = tf.where(mask, first[:, None] + steps[None, :], pad_index)  # [B, L]
  return tf.gather(flat_values_padded, positions), mask


def _padded_constant(values):
  return tf.constant(np.concatenate([values, [0]]).astype(np.int64))


def train_dataset(data, batch_size, max_len, seed, epoch=0, all_prefixes=False,
                  last_cut=False, shuffle=True, drop_remainder=True, repeat=False,
                  user_features=()):
  """Next-item training batches.

  Args:
    data: a `ProcessedDataset`.
    batch_size: B.
    max_len: L, history length (the most recent L events before the cut).
    seed: int, with `epoch` the key of every random choice.
    epoch: first epoch index; epochs differ in cut points and order.
    all_prefixes: emit every (history, target) pair of every user instead of
      one random cut per user.
    last_cut: one example per user cut at its last training event (target =
      the last event, history = the L before it): for models that train on
      every position of the history at once (SASRec-style), which then see
      every training event of the user each epoch.
    shuffle: shuffle the examples within an epoch (else user order, cut order).
    drop_remainder: drop the last partial batch of each epoch.
    repeat: run epochs `epoch, epoch + 1, ...` forever.
    user_features: names in `data.user_features` emitted as `user_<name>`.

  Returns:
    `tf.data.Dataset` of dicts: `user` int64 [B], `history`, `history_timestamp`,
    `history_session` int64 [B, L], `history_mask` bool [B, L], `target`,
    `target_timestamp` int64 [B] (and `user_<name>`).
  """
  _check_positive("batch_size", batch_size)
  _check_positive("max_len", max_len)
  for name in user_features:
    if name not in data.user_features:
      raise ValueError("%s: no user feature %r in users.npz (has %s)"
                       % (data.directory, name, sorted(data.user_features)))
  seqs = data.train_sequences()
  lengths = np.diff(seqs.offsets)                                      # [R]
  rows = np.flatnonzero(lengths >= 2)                                  # [E]
  if rows.size == 0:
    raise ValueError("%s: no user has two training events, so there is no "
                     "next-item example" % data.directory)
  if all_prefixes and last_cut:
    raise ValueError("train_dataset: all_prefixes and last_cut exclude each other")
  if all_prefixes:
    # Every cut 1..n-1 of every eligible row.
    counts = lengths[rows] - 1
    example_rows = np.repeat(rows, counts)
    example_cuts = (np.arange(counts.sum())
                    - np.repeat(np.cumsum(counts) - counts, counts) + 1)
    example_rows = tf.constant(example_rows.astype(np.int64))
    example_cuts = tf.constant(example_cuts.astype(np.int64))
  rows_t = tf.constant(rows.astype(np.int64))
  row_lengths = tf.constant(lengths.astype(np.int64))
  offsets = tf.constant(seqs.offsets.astype(np.int64))
  items = _padded_constant(seqs.items)
  timestamps = _padded_constant(seqs.timestamps)
  sessions = _padded_constant(seqs.sessions)
  users = tf.constant(seqs.users.astype(np.int64))
  feature_tables = {name: tf.constant(data.user_features[name])
                    for name in user_features}
  seed_t = tf.constant(int(seed), tf.int64)

  def epoch_batches(e):
    if all_prefixes:
      ex_rows, ex_cuts = example_rows, example_cuts
    elif last_cut:
      ex_rows = rows_t
      ex_cuts = tf.gather(row_lengths, rows_t) - 1                     # [E]
    else:
      # Cut c in 1..n-1 uniformly: 1 + floor(u * (n - 1)), u in [0, 1).
      ex_rows = rows_t
      n = tf.gather(row_lengths, rows_t)                               # [E]
      u = tf.random.stateless_uniform(
          tf.shape(rows_t), seed=tf.stack([seed_t, 2 * e + _SEED_SALT_CUT]),
          dtype=tf.float64)
      ex_cuts = 1 + tf.cast(tf.floor(u * tf.cast(n - 1, tf.float64)), tf.int64)
      ex_cuts = tf.minimum(ex_cuts, n - 1)
    num = tf.size(ex_rows, out_type=tf.int64)
    if shuffle:
      order = tf.random.experimental.stateless_shuffle(
          tf.range(num), seed=tf.stack([seed_t, 2 * e + _SEED_SALT_ORDER]))
      ex_rows, ex_cuts = tf.gather(ex_rows, order), tf.gather(ex_cuts, order)
    num_batches = (num // batch_size if drop_remainder
                   else (num + batch_size - 1) // batch_size)
    return tf.data.Dataset.range(num_batches).map(
        lambda i: (ex_rows[i * batch_size:(i + 1) * batch_size],
                   ex_cuts[i * batch_size:(i + 1) * batch_size]))

  def make_batch(batch_rows, batch_cuts):
    start = tf.gather(offsets, batch_rows)                             # [B]
    target_pos = start + batch_cuts                                    # [B]
    history, mask = _window(items, start, batch_cuts, max_len)         # [B, L]
    history_ts, _ = _window(timestamps, start, batch_cuts, max_len)    # [B, L]
    history_sess, _ = _window(sessions, start, batch_cuts, max_len)    # [B, L]
    batch_users = tf.gather(users, batch_rows)                         # [B]
    batch = {"user": batch_users, "history": history, "history_mask": mask,
             "history_timestamp": history_ts, "history_session": history_sess,
             "target": tf.gather(items, target_pos),
             "target_timestamp": tf.gather(timestamps, target_pos)}
    for name, table in feature_tables.items():
      batch["user_" + name] = tf.gather(table, batch_users)
    return batch

  if repeat:
    epochs = tf.data.Dataset.counter(start=epoch)
  else:
    epochs = tf.data.Dataset.range(epoch, epoch + 1)
  ds = epochs.flat_map(epoch_batches)
  ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(data, split, batch_size, max_len, max_targets=None):
  """Evaluation batches: one row per evaluated user, in file order.

  Args:
    data: a `ProcessedDataset`.
    split: "valid" or "test" (any `<split>.tfrecord` of the dataset).
    batch_size: B (the last batch may be smaller).
    max_len: L, the most recent L history events are kept.
    max_targets: M; None pads `targets` to the longest row of each batch.

  Returns:
    `tf.data.Dataset` of dicts: `user` int64 [B], `history`,
    `history_timestamp`, `history_session` int64 [B, L], `history_mask` bool
    [B, L], `targets` int64 [B, M] (0-padded), `target_timestamp` int64 [B]
    (of the first target).
  """
  _check_positive("batch_size", batch_size)
  _check_positive("max_len", max_len)
  if max_targets is not None:
    _check_positive("max_targets", max_targets)
  path = data.eval_file(split)

  def to_batch(serialized):
    parsed = records.parse_eval_examples(serialized)
    history = parsed["history"]
    start = history.row_splits[:-1]                                    # [B]
    length = history.row_lengths()                                     # [B]
    batch = {"user": parsed["user"]}
    for key in ("history", "history_timestamp", "history_session"):
      padded = tf.concat([parsed[key].flat_values, [0]], axis=0)      # [V+1]
      batch[key], batch["history_mask"] = _window(padded, start, length, max_len)
    shape = None if max_targets is None else [None, max_targets]
    batch["targets"] = parsed["target"].to_tensor(0, shape=shape)     # [B, M]
    batch["target_timestamp"] = tf.gather(
        parsed["target_timestamp"].flat_values,
        parsed["target_timestamp"].row_splits[:-1])                    # [B]
    return batch

  ds = tf.data.TFRecordDataset(path).batch(batch_size)
  ds = ds.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def item_dataset(data, batch_size, sampling="uniform", seed=0, epoch=0):
  """Infinite item-catalog batches `{"item": int64 [B]}`, a pure function of (seed, epoch).

  The auxiliary stream of the SSL paper (Yao et al., CIKM'21, section 3.3
  "Heterogeneous Sample Distributions": the self-supervised loss is computed
  on items drawn uniformly from the corpus, not from the training
  distribution), and a popularity sampler. Batch `k` of epoch `e` is drawn
  with a stateless key folded from `(seed, e, k)` (distinct from the keys of
  `train_dataset`), so the batches are the same on every run and a resumed
  epoch that skips its first `k` main batches (and the same number of stream
  batches, docs/design.md "tf.data batches") lands on the same items.

  Args:
    data: a `ProcessedDataset`.
    batch_size: B.
    sampling: "uniform" (items 1..N equally likely) or "popularity"
      (P(i) = item_count[i] / sum(item_count)).
    seed: int, with `epoch` the key of every draw.
    epoch: int, the training epoch the stream belongs to.
  """
  _check_positive("batch_size", batch_size)
  num_items = data.num_items
  if num_items < 1:
    raise ValueError("%s: the catalog has no items" % data.directory)
  epoch_key = tf.random.experimental.stateless_fold_in(
      tf.constant([int(seed), _SEED_SALT_ITEMS], tf.int64),
      tf.constant(int(epoch), tf.int64))                               # [2]

  def key(k):
    return tf.random.experimental.stateless_fold_in(epoch_key, k)      # [2]

  if sampling == "uniform":
    def draw(k):
      return {"item": tf.random.stateless_uniform(
          [batch_size], seed=key(k), minval=1, maxval=num_items + 1,
          dtype=tf.int64)}
  elif sampling == "popularity":
    counts = data.item_count[1:].astype(np.int64)
    if (counts < 0).any() or counts.sum() == 0:
      raise ValueError("%s: catalog.npz item_count has no positive training "
                       "counts to sample by popularity" % data.directory)
    cumulative = tf.constant(np.cumsum(counts)[None, :])              # [1, N]
    total = int(counts.sum())

    def draw(k):
      # Inverse CDF on integers: r uniform in [0, total) falls in item i's slot
      # [cum[i-1], cum[i]) with probability count[i] / total.
      r = tf.random.stateless_uniform([1, batch_size], seed=key(k),
                                      minval=0, maxval=total, dtype=tf.int64)
      index = tf.searchsorted(cumulative, r, side="right")            # [1, B]
      return {"item": tf.cast(index[0], tf.int64) + 1}
  else:
    raise ValueError("sampling must be \"uniform\" or \"popularity\", got %r"
                     % (sampling,))
  ds = tf.data.Dataset.counter().map(draw, num_parallel_calls=tf.data.AUTOTUNE,
                                     deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
