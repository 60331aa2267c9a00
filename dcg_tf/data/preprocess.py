"""Raw interactions -> the processed dataset of docs/design.md.

Steps (all vectorised over NumPy arrays of int codes):
0. rating threshold (explicit feedback, `min_rating`): events rated below it,
   or without a rating, are not positives and are dropped; each is counted
   against its input line (`below_min_rating`, `no_rating`).
1. dedup: identical (user, item, timestamp) events keep their first row.
2. sort each user's events by time (stable: ties keep the file order).
3. max history: keep each user's most recent `max_history` events.
4. k-core: drop users with < `min_user_interactions` and items with
   < `min_item_interactions` events, repeated until nothing changes; every
   round's drops are recorded.
5. sessions: a new session starts after an inactivity gap > `session_gap` s
   (MicRec, section 5: "two items within an hour"). Without timestamps every
   event of a user is in session 0.
6. split: `leave_one_out` (SASRec/BERT4Rec/CLRec Table 8: last event test,
   second-to-last validation; users with < 3 events only train), `dien` (DIEN /
   PCL-AISL section 3.1: each user's last behaviour is held out; users are
   divided 9:1 into valid and test as DIEN's split_by_user does), `time`
   (CLRec/MicRec: events at or after a global cut-off are targets), `user`
   (ComiRec: held-out users, first 80% of their events history, rest targets).
7. vocabularies, catalog.npz, users.npz, TFRecords (`dcg_tf.data.records`),
   manifest.json, and optionally DIEN's own processed files
   (`write_dien_layout`).

Output is written to a temporary folder next to the target and renamed at the
end, so a failed run never leaves a folder that looks complete.
"""

import concurrent.futures
import dataclasses
import itertools
import json
import math
import os
import re
import shutil
import time

import numpy as np
import pandas as pd

from dcg_tf.data import raw as raw_lib
from dcg_tf.data import records
from dcg_tf.data.report import BadInputError

SPLITS = ("leave_one_out", "dien", "time", "user")
DIEN_HISTORY_SEPARATOR = "\x02"   # DIEN's data_iterator splits histories on \x02


@dataclasses.dataclass
class PreprocessConfig:
  """Parameters of `preprocess` (the binary's flags; recorded in the manifest).

  Attributes:
    split: one of SPLITS.
    min_user_interactions, min_item_interactions: k-core thresholds (0 = off).
    max_history: keep each user's most recent N events (0 = all).
    session_gap: seconds of inactivity that start a new session.
    dedup: drop repeated identical (user, item, timestamp) events.
    cutoff_timestamp: `time` split: test targets are events at/after it.
    valid_cutoff_timestamp: `time` split: valid targets are in
      [valid_cutoff, cutoff); default: no validation part.
    test_days: `time` split alternative: cut-off = last timestamp - N days
      (validation: the N days before that).
    holdout_users: `user` split: fraction of users held out for valid and for test.
    holdout_history_fraction: `user` split: share of a held-out user's events
      used as history (ComiRec: 0.8).
    dien_test_fraction: `dien` split: share of users whose held-out behaviour
      goes to test (the rest to valid), DIEN's 1 in 10.
    max_feature_len: cap on the length of multi-valued features.
    num_shards: training shards (0 = one per million events, at least 1).
    max_bad_fraction: per-file share of bad lines that stops the run.
    min_rating: keep only events rated >= it (explicit feedback such as
      MovieLens' 0.5-5 stars, where a low rating is not a positive); None
      keeps every event. Data without ratings is refused.
    dien_layout: also write DIEN's processed files under `dien/`.
    seed: seed of every random choice (user split, DIEN negatives).
  """
  split: str = "leave_one_out"
  min_user_interactions: int = 0
  min_item_interactions: int = 0
  max_history: int = 0
  session_gap: int = 3600
  dedup: bool = True
  cutoff_timestamp: int = None
  valid_cutoff_timestamp: int = None
  test_days: float = None
  holdout_users: float = 0.1
  holdout_history_fraction: float = 0.8
  dien_test_fraction: float = 0.1
  max_feature_len: int = 32
  num_shards: int = 0
  max_bad_fraction: float = 0.01
  dien_layout: bool = False
  seed: int = 0
  min_rating: float = None

  def __post_init__(self):
    if self.split not in SPLITS:
      raise ValueError("split must be one of %s, got %r" % (SPLITS, self.split))


# === Ids ===


def _codes(column):
  """(int64 codes, object array of categories) of a str or Categorical column."""
  if isinstance(column.dtype, pd.CategoricalDtype):
    return (column.cat.codes.to_numpy(np.int64),
            np.asarray(column.cat.categories, dtype=object))
  codes, uniques = pd.factorize(column, sort=False)
  return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def natural_order(ids):
  """Permutation sorting raw ids numerically when all are integers, else as text."""
  ids = np.asarray(ids, dtype=object)
  if ids.size and all(re.fullmatch(r"-?\d+", str(x)) for x in ids):
    return np.argsort(np.array([int(x) for x in ids], dtype=np.int64), kind="stable")
  return np.argsort(ids.astype(str), kind="stable")


# === Sorting ===


def sort_by_user_time(u, ts):
  """Equals np.lexsort((ts, u)): order by (user, time), ties in row order.

  When every (u, ts - min ts) pair fits one int64 key (u * time span + time),
  one stable argsort of that key replaces the two-key lexsort: several times
  faster, and close to linear on input already grouped by user and time.
  """
  if u.size == 0:
    return np.lexsort((ts, u))
  lo, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
  if int(u.min()) < 0 or (int(u.max()) + 1) * span >= 2**63:
    return np.lexsort((ts, u))
  key = u.astype(np.int64) * span + (ts.astype(np.int64) - lo)
  return np.argsort(key, kind="stable")


def regroup_runs(values):
  """Stable sort order of `values` whose equal entries form one contiguous run each.

  Equals np.argsort(values, kind="stable") in O(rows + runs log runs): the
  runs are moved whole, sorted by their value.
  """
  if values.size == 0:
    return np.zeros(0, np.int64)
  starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
  ends = np.append(starts[1:], values.size)
  by_value = np.argsort(values[starts], kind="stable")
  return _ranges_to_csr(starts[by_value], ends[by_value])[1]


def used_codes(codes, num_codes):
  """Sorted distinct values of non-negative int `codes` (np.unique, by counting)."""
  return np.flatnonzero(np.bincount(codes, minlength=num_codes))


# === Filters ===


def dedup_mask(u, i, ts, order=None):
  """True for each event that repeats an earlier (user, item, timestamp) event.

  Args:
    u, i, ts: int arrays [E].
    order: sort_by_user_time(u, ts) if already computed.
  """
  if order is None:
    order = sort_by_user_time(u, ts)
  su, st = u[order], ts[order]
  tie = np.zeros(u.size, bool)
  tie[1:] = (su[1:] == su[:-1]) & (st[1:] == st[:-1])
  dup = np.zeros(u.size, bool)
  if not tie.any():
    return dup
  # Only rows sharing (user, time) with another row can repeat; sort those
  # few by (user, time, item, row) and flag all but the first of equal runs.
  involved = tie.copy()
  involved[:-1] |= tie[1:]
  rows = order[involved]
  rows = rows[np.lexsort((rows, i[rows], ts[rows], u[rows]))]
  same = ((u[rows][1:] == u[rows][:-1]) & (i[rows][1:] == i[rows][:-1]) &
          (ts[rows][1:] == ts[rows][:-1]))
  dup[rows[1:][same]] = True
  return dup


def k_core(u, i, min_user, min_item):
  """Iterated k-core filter.

  Returns:
    (keep mask, list of per-round dicts: users/items/events removed).
  """
  keep = np.ones(u.size, bool)
  rounds = []
  if min_user <= 1 and min_item <= 1:
    return keep, rounds
  while True:
    uc = np.bincount(u[keep], minlength=u.max() + 1 if u.size else 0)
    ic = np.bincount(i[keep], minlength=i.max() + 1 if i.size else 0)
    bad_u = (uc > 0) & (uc < min_user)
    bad_i = (ic > 0) & (ic < min_item)
    drop = keep & (bad_u[u] | bad_i[i])
    if not drop.any():
      return keep, rounds
    keep &= ~drop
    rounds.append({"round": len(rounds) + 1, "users_removed": int(bad_u.sum()),
                   "items_removed": int(bad_i.sum()), "events_removed": int(drop.sum())})


def sessions_of(u, ts, gap):
  """0-based session index within each user (events sorted by user, time)."""
  new = np.ones(u.size, bool)
  new[1:] = (u[1:] != u[:-1]) | (ts[1:] - ts[:-1] > gap)
  cum = np.cumsum(new)
  first = np.ones(u.size, bool)
  first[1:] = u[1:] != u[:-1]
  start = np.maximum.accumulate(np.where(first, np.arange(u.size), 0))
  return (cum - cum[start]).astype(np.int64)


# === Splits ===


@dataclasses.dataclass
class EvalPart:
  """Evaluation rows: per row a user, a history range and target events."""
  users: np.ndarray
  hist_offsets: np.ndarray
  hist_index: np.ndarray     # event indices of the histories, concatenated
  tgt_offsets: np.ndarray
  tgt_index: np.ndarray


def _ranges_to_csr(starts, ends):
  """CSR offsets and concatenated indices of the ranges [starts, ends)."""
  lengths = np.maximum(ends - starts, 0)
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
  return offsets, index.astype(np.int64)


def _eval_part(users, h_start, h_end, t_start, t_end):
  ho, hi = _ranges_to_csr(h_start, h_end)
  to, ti = _ranges_to_csr(t_start, t_end)
  return EvalPart(users, ho, hi, to, ti)


def split_events(u, ts, num_users, config, has_time):
  """Splits events sorted by (user, time).

  Returns:
    (train mask [E], valid EvalPart, test EvalPart, dict of split details).
  """
  count = np.bincount(u, minlength=num_users)
  start = np.concatenate([[0], np.cumsum(count)[:-1]])
  end = start + count
  users = np.arange(num_users)
  pos = np.arange(u.size) - start[u]
  details = {}
  if config.split == "leave_one_out":
    ev = count >= 3
    train = ~ev[u] | (pos < count[u] - 2)
    e = users[ev]
    valid = _eval_part(e, start[e], end[e] - 2, end[e] - 2, end[e] - 1)
    test = _eval_part(e, start[e], end[e] - 1, end[e] - 1, end[e])
    details["users_only_in_train"] = int((~ev & (count > 0)).sum())
  elif config.split == "dien":
    ev = count >= 2
    train = ~ev[u] | (pos < count[u] - 1)
    rng = np.random.default_rng(config.seed)
    to_test = rng.random(num_users) < config.dien_test_fraction
    parts = []
    for sel in (ev & ~to_test, ev & to_test):
      e = users[sel]
      parts.append(_eval_part(e, start[e], end[e] - 1, end[e] - 1, end[e]))
    valid, test = parts
    details["users_only_in_train"] = int((~ev & (count > 0)).sum())
  elif config.split == "time":
    if not has_time:
      raise BadInputError("--split=time needs timestamps; this data has only an "
                          "event order")
    if config.cutoff_timestamp is not None:
      cut = int(config.cutoff_timestamp)
      vcut = (int(config.valid_cutoff_timestamp)
              if config.valid_cutoff_timestamp is not None else cut)
    elif config.test_days is not None:
      cut = int(ts.max() - config.test_days * 86400) + 1
      vcut = int(cut - config.test_days * 86400)
    else:
      raise BadInputError("--split=time needs --cutoff_timestamp or --test_days")
    if vcut > cut:
      raise BadInputError("valid cut-off %d is after the test cut-off %d" % (vcut, cut))
    train = ts < vcut
    # Events are sorted by time within each user, so "before t" is a prefix.
    before_v = np.bincount(u[ts < vcut], minlength=num_users)
    before_t = np.bincount(u[ts < cut], minlength=num_users)
    parts = []
    for hist_len, tgt_end in ((before_v, before_t), (before_t, count)):
      sel = (hist_len > 0) & (tgt_end > hist_len)
      e = users[sel]
      parts.append(_eval_part(e, start[e], start[e] + hist_len[e],
                              start[e] + hist_len[e], start[e] + tgt_end[e]))
    valid, test = parts
    details.update(cutoff_timestamp=cut, valid_cutoff_timestamp=vcut)
    details["test_users_without_history"] = int(((before_t == 0) & (count > 0)).sum())
  else:  # user
    rng = np.random.default_rng(config.seed)
    eligible = users[count >= 2]
    perm = rng.permutation(eligible)
    k = int(round(config.holdout_users * eligible.size))
    if k < 1 or 2 * k >= eligible.size:
      raise BadInputError("--split=user: holdout_users=%g of %d eligible users leaves "
                          "no training or no held-out users"
                          % (config.holdout_users, eligible.size))
    held = np.zeros(num_users, bool)
    held[perm[:2 * k]] = True
    train = ~held[u]
    hist = np.clip(np.floor(config.holdout_history_fraction * count).astype(np.int64),
                   1, np.maximum(count - 1, 1))
    parts = []
    for e in (np.sort(perm[:k]), np.sort(perm[k:2 * k])):
      parts.append(_eval_part(e, start[e], start[e] + hist[e], start[e] + hist[e],
                              end[e]))
    valid, test = parts
  return train, valid, test, details


# === Features ===


def _value_vocab(values):
  """Vocabulary of str values: by descending count, ties by value."""
  counts = pd.Series(values, dtype=object).value_counts(sort=False)
  if counts.empty:
    return []
  frame = pd.DataFrame({"v": counts.index.astype(str), "c": counts.to_numpy()})
  frame = frame.sort_values(["c", "v"], ascending=[False, True], kind="stable")
  return frame["v"].tolist()


def _list_entries(column, max_len):
  """The entries of a multi-valued column as (row, position, value) arrays.

  Per row: the distinct entries of its list in first-seen order, at most
  `max_len` (None: all); a value that is not a list has none. Vectorised:
  the lists are flattened once and pandas drops the repeats within a row.

  Returns:
    (rows int64 [V], positions int64 [V], values object [V]) in row order.
  """
  values = column.to_numpy(object)
  is_list = np.fromiter(map(isinstance, values, itertools.repeat(list)), bool,
                        values.size)
  lists = values[is_list]
  lengths = np.fromiter(map(len, lists), np.int64, lists.size)
  rows = np.repeat(np.flatnonzero(is_list), lengths)
  flat = np.fromiter(itertools.chain.from_iterable(lists), object, int(lengths.sum()))
  first = ~pd.DataFrame({"row": rows, "value": flat}).duplicated().to_numpy()
  rows, flat = rows[first], flat[first]
  cols = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
  keep = cols < max_len if max_len is not None else np.ones(rows.size, bool)
  return rows[keep], cols[keep], flat[keep]


def encode_features(frame, index_ids, multi_valued, max_len):
  """Encodes feature columns of `frame` for the rows `index_ids` (row r -> r+1).

  Returns:
    dict name -> (array, vocab list, schema dict). Single-valued: int32 [N+1];
    multi-valued: int32 [N+1, F] 0-padded. Row 0 and missing values are 0.
  """
  out = {}
  n = len(index_ids)
  frame = frame.reindex(pd.Index(index_ids, dtype=object)) if len(frame.columns) \
      else frame
  for name in frame.columns:
    column = frame[name]
    if name in multi_valued:
      rows, cols, flat = _list_entries(column, max_len)
      vocab = _value_vocab(flat)
      width = int(cols.max()) + 1 if cols.size else 0
      if not vocab or width == 0:
        continue
      array = np.zeros((n + 1, width), np.int32)
      array[rows + 1, cols] = pd.Index(vocab, dtype=object).get_indexer(
          flat.astype(str)) + 1
      schema = {"name": name, "kind": "multi", "vocab_size": len(vocab),
                "max_len": int(width)}
    else:
      values = column.where(column.notna(), None).to_numpy(object)
      present = column.notna().to_numpy(copy=True)
      present[present] = values[present].astype(str) != ""
      vocab = _value_vocab(values[present].astype(str))
      if not vocab:
        continue
      lookup = pd.Series(np.arange(1, len(vocab) + 1), index=vocab)
      array = np.zeros(n + 1, np.int32)
      array[1:][present] = lookup.reindex(values[present].astype(str)).to_numpy()
      schema = {"name": name, "kind": "single", "vocab_size": len(vocab), "max_len": 1}
    out[name] = (array, vocab, schema)
  return out


# === Writing ===


def _vocab_and_map(codes, ids):
  """Vocabulary of the used ids (natural order) and the code -> 1-based index map.

  Returns:
    (ids[used] in natural order, int64 [len(ids)] index of each code, 0 = unused).
  """
  used = used_codes(codes, ids.size)
  used = used[natural_order(ids[used])]
  index = np.zeros(ids.size, np.int64)
  index[used] = np.arange(1, used.size + 1)
  return ids[used], index


def _write_vocab(path, values):
  """Writes one value per line (one join and one write, not one per value)."""
  values = list(map(str, values))
  text = "\n".join(values)
  if values and ("\r" in text or text.count("\n") != len(values) - 1):
    bad = next(v for v in values if "\n" in v or "\r" in v)
    raise BadInputError("id %r contains a line break and cannot be written to %s"
                        % (bad, os.path.basename(path)))
  with open(path, "w", encoding="utf-8") as f:
    f.write(text + "\n" if values else "")


# Threads writing TFRecord files at once (valid, test and the train shards): the
# NumPy encoding of the records runs mostly without the GIL.
_WRITER_THREADS = 2


def _submit_eval_records(pool, path, part, i, ts, session):
  """Starts writing an EvalPart as `path` on `pool`; returns the Future."""
  return pool.submit(
      records.write_eval_records, path, part.users, part.hist_offsets,
      i[part.hist_index], ts[part.hist_index], session[part.hist_index],
      part.tgt_offsets, i[part.tgt_index], ts[part.tgt_index])


def _write_train_records(pool, folder, config, u, i, ts, session, train, activity,
                         item_feats):
  """Writes the train shards (one record per user with training events) on `pool`.

  Returns:
    the shard paths, in shard order.
  """
  users_with = np.flatnonzero(activity)       # u is sorted: users in order
  offsets = np.concatenate([[0], np.cumsum(activity[users_with])]).astype(np.int64)
  ti = i[train]
  num_shards = config.num_shards or max(1, int(math.ceil(ti.size / 1e6)))
  single = {n: a[ti] for n, (a, _, s) in item_feats.items() if s["kind"] == "single"}
  return records.write_train_shards(folder, num_shards, users_with, offsets, ti,
                                    ts[train], session[train], single, executor=pool)


def _input_hashes(paths):
  """[{path, bytes, sha256}] of the input files (folders: the files in them)."""
  out = []
  for path in map(str, paths):
    files = ([os.path.join(path, n) for n in sorted(os.listdir(path))]
             if os.path.isdir(path) else [path])
    for f in files:
      if os.path.isfile(f):
        out.append({"path": f, "bytes": os.path.getsize(f),
                    "sha256": raw_lib.sha256_file(f)})
  return out


def _hash_in_background(paths):
  """Starts `_input_hashes(paths)` in a thread and returns its Future.

  Hashing gigabytes of input takes seconds of one core; hashlib and file reads
  release the GIL, so the thread runs beside the filtering and the writing.
  """
  executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sha256")
  future = executor.submit(_input_hashes, list(paths))
  executor.shutdown(wait=False)
  return future


def apply_min_rating(inter, report, min_rating, filters, source="the"):
  """Drops the events rated below `min_rating` (step 0 of the module doc).

  Args:
    inter: the loader's interactions (`RawData.interactions`), with `rating`
      and, for the accounting, `file` and `line`.
    report: the loader's `DropReport`: each dropped event moves from kept to
      dropped on its input line, as `below_min_rating` (or `no_rating` when
      the row has none), so every row stays kept or counted.
    min_rating: the threshold; events rated `>= min_rating` are kept.
    filters: the manifest's filter list; one entry is appended.
    source: the input format, for the error message.

  Returns:
    the kept interactions.

  Raises:
    BadInputError: the data has no rating column.
  """
  if "rating" not in inter:
    raise BadInputError("--min_rating=%g: %s data has no ratings (only the "
                     "movielens format, csv with --csv_rating and amazon have "
                     "them)" % (min_rating, source))
  rating = inter["rating"].to_numpy(np.float64)
  missing = np.isnan(rating)
  low = ~missing & (rating < min_rating)
  if "line" in inter:
    files = list(report.files)
    fidx = inter["file"].to_numpy()
    lines = inter["line"].to_numpy()
    for reason, mask in (("below_min_rating", low), ("no_rating", missing)):
      for f in np.unique(fidx[mask]):
        report.move_kept_to_dropped(files[f], reason, lines[mask & (fidx == f)])
  filters.append({"name": "min_rating",
                  "reason": "rated below %g (or not rated)" % min_rating,
                  "dropped": int(low.sum() + missing.sum())})
  return inter[~(low | missing)]


def _temp_dir(output_dir):
  parent = os.path.dirname(os.path.abspath(output_dir)) or "."
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, ".%s.tmp-%d-%d" % (os.path.basename(
      os.path.abspath(output_dir)), os.getpid(), int(time.time() * 1000)))
  os.makedirs(os.path.join(tmp, "vocab"))
  return tmp


def preprocess(raw, output_dir, config=None, input_paths=(), source_format=None,
               overwrite=False):
  """Filters, splits and writes `raw` as a processed dataset in `output_dir`.

  Args:
    raw: RawData from a loader.
    output_dir: target folder; must not exist unless `overwrite`.
    config: PreprocessConfig.
    input_paths: files/folders read (their sha256 go to the manifest).
    source_format: loader name for the manifest.
    overwrite: replace an existing `output_dir`.

  Returns:
    the manifest dict.

  Raises:
    BadInputError: too many bad lines in a file, or nothing usable left.
  """
  config = config or PreprocessConfig()
  started = time.time()
  if os.path.exists(output_dir) and not overwrite:
    raise FileExistsError("%s exists; pass overwrite=True (--overwrite)" % output_dir)
  input_hashes = _hash_in_background(input_paths)
  report = raw.report
  filters = []
  inter = raw.interactions
  if config.min_rating is not None:
    inter = apply_min_rating(inter, report, config.min_rating, filters,
                             source_format or "the")
  u_code, user_ids = _codes(inter["user"])
  i_code, item_ids = _codes(inter["item"])
  ts = inter["timestamp"].to_numpy(np.int64)
  inputs = ", ".join(map(str, input_paths)) or "the input"

  # 1. dedup (counted against the input line when the loader kept it).
  keep = np.ones(ts.size, bool)
  by_time = sort_by_user_time(u_code, ts)     # (user, time), ties in input order
  if config.dedup and ts.size:
    dup = dedup_mask(u_code, i_code, ts, by_time)
    if dup.any() and "line" in inter:
      files = list(report.files)
      fidx = inter["file"].to_numpy()[dup]
      lines = inter["line"].to_numpy()[dup]
      for f in np.unique(fidx):
        report.move_kept_to_dropped(files[f], "duplicate_event", lines[fidx == f])
    filters.append({"name": "dedup", "reason": "repeated (user, item, timestamp)",
                    "dropped": int(dup.sum())})
    keep &= ~dup
  report.check()
  report.check_bad_fraction(config.max_bad_fraction)

  # 2. sort by (user, time), ties in input order.
  order = by_time[keep[by_time]]
  del by_time
  u, i, ts = u_code[order], i_code[order], ts[order]

  # 3. max history.
  if config.max_history and u.size:
    count = np.bincount(u)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    from_end = first[u] + count[u] - np.arange(u.size)   # 1 = most recent
    hist_keep = from_end <= config.max_history
    filters.append({"name": "max_history", "reason": "older than the last %d events"
                    % config.max_history, "dropped": int((~hist_keep).sum())})
    u, i, ts = u[hist_keep], i[hist_keep], ts[hist_keep]

  # 4. k-core.
  core, rounds = k_core(u, i, config.min_user_interactions, config.min_item_interactions)
  filters.append({"name": "k_core", "reason": (
      "users < %d or items < %d events (iterated to a fixed point)"
      % (config.min_user_interactions, config.min_item_interactions)
      if max(config.min_user_interactions, config.min_item_interactions) > 1
      else "off"),
                  "dropped": int((~core).sum()), "rounds": rounds})
  u, i, ts = u[core], i[core], ts[core]
  if u.size == 0:
    raise BadInputError("%s: no interactions left after filtering (%s)" % (
        inputs, "; ".join("%s dropped %d" % (f["name"], f["dropped"]) for f in filters)))

  # Vocabularies: kept ids in natural order; index = line + 1.
  user_vocab, u_map = _vocab_and_map(u, user_ids)
  item_vocab, i_map = _vocab_and_map(i, item_ids)
  u, i = u_map[u], i_map[i]
  # Re-sort by the new user index (time order within a user is kept): each
  # user's events are one run, so the runs are reordered whole.
  order = regroup_runs(u)
  u, i, ts = u[order], i[order], ts[order]
  num_users, num_items = int(user_vocab.size), int(item_vocab.size)

  # 5. sessions.
  session = (sessions_of(u, ts, config.session_gap) if raw.has_time
             else np.zeros(u.size, np.int64))

  # 6. split (user indices are 1-based; row 0 of the counts is padding).
  train, valid, test, details = split_events(u, ts, num_users + 1, config,
                                             raw.has_time)

  # 7. features and files. valid/test records need no features: two threads
  # start on them while this one encodes the features and the vocabularies.
  tmp = _temp_dir(output_dir)
  try:
    with concurrent.futures.ThreadPoolExecutor(
        _WRITER_THREADS, thread_name_prefix="records") as pool:
      evals = [_submit_eval_records(pool, os.path.join(tmp, name + ".tfrecord"),
                                    part, i, ts, session)
               for name, part in (("valid", valid), ("test", test))]
      item_feats = encode_features(raw.item_features, item_vocab, raw.multi_valued,
                                   config.max_feature_len)
      user_feats = encode_features(raw.user_features, user_vocab, (), 1)
      clash = set(item_feats) & set(user_feats)
      if clash or {"user", "item"} & (set(item_feats) | set(user_feats)):
        raise BadInputError("feature names %s are used twice" % sorted(clash))
      item_count = np.bincount(i[train], minlength=num_items + 1).astype(np.int64)
      activity = np.bincount(u[train], minlength=num_users + 1).astype(np.int64)
      _write_vocab(os.path.join(tmp, "vocab", "user.txt"), user_vocab)
      _write_vocab(os.path.join(tmp, "vocab", "item.txt"), item_vocab)
      for name, (_, vocab, _) in list(item_feats.items()) + list(user_feats.items()):
        _write_vocab(os.path.join(tmp, "vocab", name + ".txt"), vocab)
      np.savez(os.path.join(tmp, "catalog.npz"), item_count=item_count,
               **{n: a for n, (a, _, _) in item_feats.items()})
      np.savez(os.path.join(tmp, "users.npz"), activity=activity,
               **{n: a for n, (a, _, _) in user_feats.items()})
      train_files = _write_train_records(pool, tmp, config, u, i, ts, session, train,
                                         activity, item_feats)
      for future in evals:
        future.result()                      # re-raises a failed write
    if config.dien_layout:
      cats = None
      if "category" in raw.item_features.columns:
        cats = raw.item_features["category"].reindex(
            pd.Index(item_vocab, dtype=object)).to_numpy(object)
      write_dien_layout(os.path.join(tmp, "dien"), user_vocab[u - 1],
                        item_vocab[i - 1], None if cats is None else cats[i - 1],
                        u, config.seed, config.dien_test_fraction)
    manifest = {
        "format_version": records.FORMAT_VERSION,
        "source": {"format": source_format,
                   "inputs": input_hashes.result()},
        "params": dataclasses.asdict(config),
        "num_users": num_users,
        "num_items": num_items,
        "has_time": bool(raw.has_time),
        "counts": {
            "users": num_users, "items": num_items, "interactions": int(u.size),
            "train_interactions": int(train.sum()),
            "train_users": int(np.count_nonzero(activity)),
            "valid_users": int(valid.users.size),
            "valid_targets": int(valid.tgt_offsets[-1]),
            "test_users": int(test.users.size),
            "test_targets": int(test.tgt_offsets[-1]),
            "sessions": count_sessions(u, session),
        },
        "split": dict(name=config.split, **details),
        "schema": {"item_features": [s for _, _, s in item_feats.values()],
                   "user_features": [s for _, _, s in user_feats.values()]},
        "input_rows": report.to_dict(),
        "filters": filters,
        "files": {"train": [os.path.basename(p) for p in train_files],
                  "valid": "valid.tfrecord", "test": "test.tfrecord",
                  "catalog": "catalog.npz", "users": "users.npz"},
        "seconds": round(time.time() - started, 3),
    }
    with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=1, sort_keys=False)
    if os.path.exists(output_dir):
      old = tmp + ".old"
      os.rename(output_dir, old)
      os.rename(tmp, output_dir)
      shutil.rmtree(old)
    else:
      os.rename(tmp, output_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return manifest


def count_sessions(u, session):
  """Number of (user, session) pairs."""
  if u.size == 0:
    return 0
  new = np.ones(u.size, bool)
  new[1:] = (u[1:] != u[:-1]) | (session[1:] != session[:-1])
  return int(new.sum())


# === DIEN layout ===


def write_dien_layout(folder, users, items, cats, user_index, seed,
                      test_fraction=0.1):
  """Writes DIEN's processed files for events sorted by (user, time).

  Reproduces DIEN's scripts (process_data.py, local_aggretor.py,
  split_by_user.py, generate_voc.py) on the given events, without pickle:
  - every behaviour gets a negative line (label 0, a random other item drawn
    from all events, i.e. by popularity, with its category) followed by the
    positive line (label 1);
  - each user's last behaviour (its negative and positive lines) is the
    held-out sample: `label \\t user \\t item \\t cat \\t hist_items \\t hist_cats`
    where the history is all earlier clicked items/categories joined by "\\x02";
    users with one behaviour have an empty history and produce no sample;
  - a user goes to `local_test_splitByUser` with probability `test_fraction`
    (DIEN: 1 in 10), else to `local_train_splitByUser`;
  - `uid_voc.json`, `mid_voc.json`, `cat_voc.json`: id -> index from the
    training file by descending frequency (ties in order of first appearance);
    mid and cat start with "default_mid"/"default_cat" = 0.
  Items without a category get "default_cat", as in DIEN.

  Args:
    folder: output folder (created).
    users, items: raw ids per event (object arrays), sorted by (user, time).
    cats: raw category per event (None = unknown) or None.
    user_index: int array per event, equal within a user (grouping key).
    seed: random seed (negatives and the user split).
    test_fraction: share of users written to the test file.
  """
  os.makedirs(folder, exist_ok=True)
  n = len(items)
  cats = np.array(["default_cat" if c is None or (isinstance(c, float) and
                                                  math.isnan(c)) else str(c)
                   for c in (cats if cats is not None else [None] * n)], dtype=object)
  items = np.asarray(items, dtype=object)
  rng = np.random.default_rng(seed)
  neg = rng.integers(0, n, size=n)
  clash = items[neg] == items
  while clash.any() and (items != items[0]).any():
    neg[clash] = rng.integers(0, n, size=int(clash.sum()))
    clash = items[neg] == items
  last = np.ones(n, bool)
  last[:-1] = user_index[1:] != user_index[:-1]
  first = np.ones(n, bool)
  first[1:] = user_index[1:] != user_index[:-1]
  train_lines, test_lines = [], []
  start = 0
  for e in np.flatnonzero(last):
    if e > start:            # at least one earlier behaviour: a history exists
      hist_items = DIEN_HISTORY_SEPARATOR.join(items[start:e])
      hist_cats = DIEN_HISTORY_SEPARATOR.join(cats[start:e])
      pair = ["0\t%s\t%s\t%s\t%s\t%s" % (users[e], items[neg[e]], cats[neg[e]],
                                         hist_items, hist_cats),
              "1\t%s\t%s\t%s\t%s\t%s" % (users[e], items[e], cats[e],
                                         hist_items, hist_cats)]
      (test_lines if rng.random() < test_fraction else train_lines).extend(pair)
    start = e + 1
  for name, lines in (("local_train_splitByUser", train_lines),
                      ("local_test_splitByUser", test_lines)):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
      f.write("".join(line + "\n" for line in lines))
  vocabs = _dien_vocabularies(train_lines)
  for name, vocab in zip(("uid_voc", "mid_voc", "cat_voc"), vocabs):
    with open(os.path.join(folder, name + ".json"), "w", encoding="utf-8") as f:
      json.dump(vocab, f, ensure_ascii=False)


def _dien_vocabularies(lines):
  """generate_voc.py: counts over the training file, most frequent first."""
  counters = ({}, {}, {})
  for line in lines:
    _, uid, mid, cat, mids, hcats = line.split("\t")
    for counter, values in ((counters[0], [uid]),
                            (counters[1], [mid] + (mids.split(DIEN_HISTORY_SEPARATOR)
                                                   if mids else [])),
                            (counters[2], [cat] + (hcats.split(DIEN_HISTORY_SEPARATOR)
                                                   if hcats else []))):
      for v in values:
        counter[v] = counter.get(v, 0) + 1
  ranked = [sorted(c.items(), key=lambda kv: -kv[1]) for c in counters]  # stable
  uid_voc = {k: idx for idx, (k, _) in enumerate(ranked[0])}
  mid_voc = {"default_mid": 0}
  mid_voc.update({k: idx + 1 for idx, (k, _) in enumerate(ranked[1])})
  cat_voc = {"default_cat": 0}
  cat_voc.update({k: idx + 1 for idx, (k, _) in enumerate(ranked[2])})
  return uid_voc, mid_voc, cat_voc


def summary(manifest):
  """Text summary of a manifest: inputs, filters, counts."""
  lines = []
  for f in manifest["input_rows"]["files"]:
    lines.append("%s: read %d, kept %d, dropped %d" % (
        f["path"], f["read"], f["kept"], sum(f["dropped"].values())))
    for reason, count in f["dropped"].items():
      lines.append("    %-24s %9d  first lines %s" % (reason, count,
                                                     f["first_lines"].get(reason)))
  for flt in manifest["filters"]:
    lines.append("filter %-10s dropped %9d  (%s)" % (flt["name"], flt["dropped"],
                                                     flt["reason"]))
  c = manifest["counts"]
  lines.append("users %d, items %d, interactions %d (train %d); valid %d users / "
               "%d targets; test %d users / %d targets" % (
                   c["users"], c["items"], c["interactions"], c["train_interactions"],
                   c["valid_users"], c["valid_targets"], c["test_users"],
                   c["test_targets"]))
  return "\n".join(lines)
