"""TFRecord Examples of the processed dataset: one encoder, one parser.

The layout is fixed in docs/design.md ("Processed dataset"): every record is a
`tf.train.Example` whose features are int64 lists.

- train (one Example per user, CSR rows of the training part): `user` [1],
  `item` [n], `timestamp` [n], `session` [n], `item_<feat>` [n].
- valid/test (one Example per evaluated user): `user` [1], `history` [n],
  `history_timestamp` [n], `history_session` [n], `target` [m],
  `target_timestamp` [m].

Writing builds the serialized protos with NumPy instead of one
`tf.train.Example` object per user: the Example wire format of int64 lists is a
fixed nesting of length-prefixed fields, so the bytes of a whole chunk of users
are laid out with vectorised varint encoding. The output is byte-identical to
`tf.train.Example.SerializeToString(deterministic=True)` (keys in sorted order),
which tests/data/test_records.py checks.
"""

import os

import numpy as np
import tensorflow as tf

# Version of the processed-dataset layout; `manifest.json["format_version"]`.
FORMAT_VERSION = 1

TRAIN_SEQUENCE_KEYS = ("item", "timestamp", "session")
EVAL_SEQUENCE_KEYS = ("history", "history_timestamp", "history_session",
                      "target", "target_timestamp")
ITEM_FEATURE_PREFIX = "item_"

# Records per encoding chunk: bounds the [R, pieces] bookkeeping arrays.
_CHUNK_RECORDS = 65536


def train_shard_name(index, num_shards):
  return "train-%05d-of-%05d.tfrecord" % (index, num_shards)


# === Encoding ===


def _as_int64(name, values):
  values = np.asarray(values)
  if values.ndim != 1:
    raise ValueError("%s must be a 1-D array, got shape %s" % (name, values.shape))
  if values.size and not np.issubdtype(values.dtype, np.integer):
    raise ValueError("%s must hold integers, got dtype %s" % (name, values.dtype))
  return values.astype(np.int64, copy=False)


def _check_offsets(name, offsets, num_values, values_name):
  if offsets.size == 0 or offsets[0] != 0:
    raise ValueError("%s must start with 0" % name)
  if offsets[-1] != num_values:
    raise ValueError("%s[-1] = %d but %s has %d entries"
                     % (name, offsets[-1], values_name, num_values))
  bad = np.flatnonzero(np.diff(offsets) < 0)
  if bad.size:
    raise ValueError("%s decreases at position %d" % (name, bad[0]))


def _varint_sizes(values):
  """Bytes of the protobuf varint of each int64 (negatives take 10 bytes)."""
  u = values.view(np.uint64)
  sizes = np.ones(u.shape, np.int64)
  if u.size == 0:
    return sizes
  top = u.max()
  for k in range(1, 10):
    threshold = np.uint64(1) << np.uint64(7 * k)
    if top < threshold:
      break
    sizes += u >= threshold
  return sizes


def _write_varints(out, positions, values, sizes):
  """Writes the varint of values[i] at out[positions[i]:positions[i]+sizes[i]]."""
  u = values.view(np.uint64)
  max_size = int(sizes.max()) if sizes.size else 0
  for j in range(max_size):
    sel = np.flatnonzero(sizes > j) if j else slice(None)
    chunk = (u[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)
    chunk |= np.where(sizes[sel] > j + 1, np.uint64(0x80), np.uint64(0))
    out[positions[sel] + j] = chunk.astype(np.uint8)


def _encode_chunk(features):
  """Serializes R Examples of int64 lists.

  Args:
    features: list of (key, offsets int64 [R+1], values int64 [V]) sorted by
      key; record r of feature `key` is values[offsets[r]:offsets[r+1]].

  Returns:
    (buffer uint8 [total], record_offsets int64 [R+1]).
  """
  num_records = features[0][1].size - 1
  # Each record is: 0x0A varint(len(Features)) then, per feature, the map entry
  #   0x0A varint(L_entry) | 0x0A klen key 0x12 | varint(L_feature) | 0x1A |
  #   varint(L_list) | [0x0A varint(L_packed) packed-varints]   (omitted if empty)
  # with L_list = len of the Int64List message, L_feature = 1 + vs(L_list) + L_list,
  # L_entry = 2 + klen + 1 + vs(L_feature) + L_feature.
  # A record is a list of pieces (kind, payload): "const" bytes, "varint" of a
  # per-record length [R], "opt_*" the same only where a mask [R] is set, and
  # "values" the packed varints of feature k.
  pieces = []
  value_sizes = []
  entry_lens = []
  for key, offsets, values in features:
    kbytes = key.encode("utf-8")
    if len(kbytes) > 127:
      raise ValueError("feature key %r is too long" % key)
    sizes = _varint_sizes(values)                                  # [V]
    cum = np.concatenate([[0], np.cumsum(sizes)])                  # [V+1]
    packed = cum[offsets[1:]] - cum[offsets[:-1]]                  # [R]
    nonempty = packed > 0
    packed_header = np.where(nonempty, 1 + _varint_sizes(packed), 0)
    list_len = packed_header + packed
    feature_len = 1 + _varint_sizes(list_len) + list_len
    entry_len = 3 + len(kbytes) + _varint_sizes(feature_len) + feature_len
    entry_lens.append(entry_len)
    value_sizes.append((offsets, values, sizes, cum))
    pieces += [("const", b"\x0a"), ("varint", entry_len),
               ("const", b"\x0a" + bytes([len(kbytes)]) + kbytes + b"\x12"),
               ("varint", feature_len), ("const", b"\x1a"), ("varint", list_len),
               ("opt_const", (b"\x0a", nonempty)), ("opt_varint", (packed, nonempty)),
               ("values", len(value_sizes) - 1)]
  features_len = sum(1 + _varint_sizes(e) + e for e in entry_lens)     # [R]
  pieces = [("const", b"\x0a"), ("varint", features_len)] + pieces

  lens = np.empty((num_records, len(pieces)), np.int64)               # [R, P]
  for p, (kind, payload) in enumerate(pieces):
    if kind == "const":
      lens[:, p] = len(payload)
    elif kind == "varint":
      lens[:, p] = _varint_sizes(payload)
    elif kind == "opt_const":
      lens[:, p] = np.where(payload[1], len(payload[0]), 0)
    elif kind == "opt_varint":
      lens[:, p] = np.where(payload[1], _varint_sizes(payload[0]), 0)
    else:
      offsets, _, _, cum = value_sizes[payload]
      lens[:, p] = cum[offsets[1:]] - cum[offsets[:-1]]
  starts = (np.cumsum(lens.ravel()) - lens.ravel()).reshape(lens.shape)  # [R, P]
  record_lens = lens.sum(axis=1)
  record_offsets = np.concatenate([[0], np.cumsum(record_lens)])
  out = np.empty(int(record_offsets[-1]), np.uint8)
  for p, (kind, payload) in enumerate(pieces):
    start = starts[:, p]                                               # [R]
    if kind == "const":
      out[start[:, None] + np.arange(len(payload))] = np.frombuffer(payload, np.uint8)
    elif kind == "opt_const":
      sel = payload[1]
      out[start[sel]] = payload[0][0]
    elif kind == "varint":
      _write_varints(out, start, payload, _varint_sizes(payload))
    elif kind == "opt_varint":
      sel = payload[1]
      _write_varints(out, start[sel], payload[0][sel], _varint_sizes(payload[0][sel]))
    else:
      offsets, values, sizes, cum = value_sizes[payload]
      # Value i of record r goes to start[r] + (cum[i] - cum[offsets[r]]).
      base = np.repeat(start - cum[offsets[:-1]], np.diff(offsets))   # [V]
      _write_varints(out, base + cum[:-1], values, sizes)
  return out, record_offsets


def serialize_examples(features):
  """Serializes Examples of int64 lists given in CSR form.

  Args:
    features: dict key -> (offsets int64 [R+1], values int64 [V]); every key
      must have the same number of records R.

  Returns:
    list of R serialized `tf.train.Example` (bytes), equal to
    `SerializeToString(deterministic=True)` of the same Examples.
  """
  out = []
  for data, bounds in _encoded_chunks(features):
    out.extend(data[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
  return out


def _encoded_chunks(features):
  """Yields (bytes, record boundaries as a list) per chunk of records."""
  items = sorted(features.items())
  num_records = items[0][1][0].size - 1
  for lo in range(0, num_records, _CHUNK_RECORDS):
    hi = min(lo + _CHUNK_RECORDS, num_records)
    chunk = []
    for key, (offsets, values) in items:
      a, b = offsets[lo], offsets[hi]
      chunk.append((key, offsets[lo:hi + 1] - a, values[a:b]))
    buffer, record_offsets = _encode_chunk(chunk)
    yield buffer.tobytes(), record_offsets.tolist()


def _write_records(path, features):
  count = 0
  with tf.io.TFRecordWriter(path) as writer:
    write = writer.write
    for data, bounds in _encoded_chunks(features):
      for a, b in zip(bounds[:-1], bounds[1:]):
        write(data[a:b])
      count += len(bounds) - 1
  return count


def write_train_shards(output_dir, num_shards, users, offsets, items, timestamps,
                       sessions, item_features, executor=None):
  """Writes the training part as `num_shards` TFRecord files of per-user Examples.

  Args:
    output_dir: existing folder.
    num_shards: number of files K; users are split into K contiguous groups of
      about equal event counts (a shard may be empty when K exceeds the users).
    users: int64 [R] user index of each row.
    offsets: int64 [R+1] CSR offsets: row j's events are items[offsets[j]:offsets[j+1]].
    items, timestamps, sessions: int64 [V] per-event arrays in time order.
    item_features: dict name -> int64 [V] single-valued item feature per event,
      stored as `item_<name>`.
    executor: a `concurrent.futures.Executor` (e.g. a ThreadPoolExecutor) that
      writes the shards concurrently; None: one after the other.

  Returns:
    list of the K written paths, in shard order.
  """
  if num_shards < 1:
    raise ValueError("num_shards must be >= 1, got %r" % (num_shards,))
  users = _as_int64("users", users)
  offsets = _as_int64("offsets", offsets)
  if offsets.size != users.size + 1:
    raise ValueError("offsets must have len(users) + 1 = %d entries, got %d"
                     % (users.size + 1, offsets.size))
  per_event = {"item": _as_int64("items", items)}
  _check_offsets("offsets", offsets, per_event["item"].size, "items")
  per_event["timestamp"] = _as_int64("timestamps", timestamps)
  per_event["session"] = _as_int64("sessions", sessions)
  for name, values in item_features.items():
    per_event[ITEM_FEATURE_PREFIX + name] = _as_int64("item_features[%r]" % name, values)
  for key, values in per_event.items():
    if values.size != per_event["item"].size:
      raise ValueError("%s has %d entries but items has %d"
                       % (key, values.size, per_event["item"].size))
  # Shard boundaries: the row where each shard's share of events begins.
  targets = offsets[-1] * np.arange(num_shards + 1) / num_shards
  bounds = np.searchsorted(offsets, targets, side="left")
  bounds[0], bounds[-1] = 0, users.size
  bounds = np.maximum.accumulate(bounds)
  paths, shards = [], []
  for k in range(num_shards):
    lo, hi = int(bounds[k]), int(bounds[k + 1])
    a, b = offsets[lo], offsets[hi]
    rows = offsets[lo:hi + 1] - a
    features = {"user": (np.arange(hi - lo + 1, dtype=np.int64), users[lo:hi])}
    features.update({key: (rows, values[a:b]) for key, values in per_event.items()})
    paths.append(os.path.join(output_dir, train_shard_name(k, num_shards)))
    shards.append(features)
  if executor is None:
    for path, features in zip(paths, shards):
      _write_records(path, features)
  else:
    list(executor.map(_write_records, paths, shards))     # re-raises any error
  return paths


def write_eval_records(path, users, hist_offsets, hist_items, hist_timestamps,
                       hist_sessions, tgt_offsets, tgt_items, tgt_timestamps):
  """Writes one Example per evaluated user (valid.tfrecord / test.tfrecord).

  Args:
    path: output file.
    users: int64 [R].
    hist_offsets: int64 [R+1] CSR offsets into hist_items/hist_timestamps/hist_sessions.
    tgt_offsets: int64 [R+1] CSR offsets into tgt_items/tgt_timestamps; every
      user needs at least one target.

  Returns:
    the number of records written.
  """
  users = _as_int64("users", users)
  hist_offsets = _as_int64("hist_offsets", hist_offsets)
  tgt_offsets = _as_int64("tgt_offsets", tgt_offsets)
  for name, offs in (("hist_offsets", hist_offsets), ("tgt_offsets", tgt_offsets)):
    if offs.size != users.size + 1:
      raise ValueError("%s must have len(users) + 1 = %d entries, got %d"
                       % (name, users.size + 1, offs.size))
  hist = {"history": _as_int64("hist_items", hist_items),
          "history_timestamp": _as_int64("hist_timestamps", hist_timestamps),
          "history_session": _as_int64("hist_sessions", hist_sessions)}
  tgt = {"target": _as_int64("tgt_items", tgt_items),
         "target_timestamp": _as_int64("tgt_timestamps", tgt_timestamps)}
  for name, values in hist.items():
    _check_offsets("hist_offsets", hist_offsets, values.size, name)
  for name, values in tgt.items():
    _check_offsets("tgt_offsets", tgt_offsets, values.size, name)
  empty = np.flatnonzero(np.diff(tgt_offsets) == 0)
  if empty.size:
    raise ValueError("evaluated user row %d (user %d) has no target"
                     % (empty[0], users[empty[0]]))
  features = {"user": (np.arange(users.size + 1, dtype=np.int64), users)}
  features.update({k: (hist_offsets, v) for k, v in hist.items()})
  features.update({k: (tgt_offsets, v) for k, v in tgt.items()})
  if users.size == 0:
    with tf.io.TFRecordWriter(path):
      return 0
  return _write_records(path, features)


# === Parsing ===


def train_feature_spec(item_feature_names=()):
  """Feature spec of training Examples for `tf.io.parse_example`."""
  spec = {"user": tf.io.FixedLenFeature([1], tf.int64)}
  for key in TRAIN_SEQUENCE_KEYS:
    spec[key] = tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
  for name in item_feature_names:
    spec[ITEM_FEATURE_PREFIX + name] = tf.io.RaggedFeature(
        tf.int64, row_splits_dtype=tf.int64)
  return spec


def eval_feature_spec():
  """Feature spec of valid/test Examples for `tf.io.parse_example`."""
  spec = {"user": tf.io.FixedLenFeature([1], tf.int64)}
  for key in EVAL_SEQUENCE_KEYS:
    spec[key] = tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
  return spec


def _squeeze_user(parsed):
  parsed["user"] = tf.squeeze(parsed["user"], axis=1)  # [B]
  return parsed


def parse_train_examples(serialized, item_feature_names=()):
  """Parses a batch of training Examples.

  Args:
    serialized: string [B].
    item_feature_names: names of per-position item features to parse
      (`item_<name>` in the record).

  Returns:
    dict: `user` int64 [B]; `item`, `timestamp`, `session`, `item_<name>`:
    int64 RaggedTensor [B, None].
  """
  return _squeeze_user(tf.io.parse_example(serialized,
                                           train_feature_spec(item_feature_names)))


def parse_eval_examples(serialized):
  """Parses a batch of valid/test Examples.

  Returns:
    dict: `user` int64 [B]; `history`, `history_timestamp`, `history_session`,
    `target`, `target_timestamp`: int64 RaggedTensor [B, None].
  """
  return _squeeze_user(tf.io.parse_example(serialized, eval_feature_spec()))
