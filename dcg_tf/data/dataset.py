"""Reader of a processed dataset (the output of `experiments/preprocess.py`).

The folder layout is fixed in docs/design.md ("Processed dataset"). Everything
is read with TF-native or plain formats: `manifest.json`, vocabularies as text,
`catalog.npz` / `users.npz` with `allow_pickle=False`, TFRecord Examples parsed
by `dcg_tf.data.records`.

Example:
  >>> data = ProcessedDataset.load("/tmp/beauty")
  >>> data.num_items, data.item_features["category"].shape   # N, [N+1]
  >>> seqs = data.train_sequences()          # CSR of training sequences
  >>> offsets, items = data.train_items_per_user()
"""

import collections
import copy
import glob
import hashlib
import json
import os
import re

import numpy as np
import tensorflow as tf

from dcg_tf.data import records
from dcg_tf.errors import InputError

TrainSequences = collections.namedtuple(
    "TrainSequences", ["users", "offsets", "items", "timestamps", "sessions"])
TrainSequences.__doc__ = """Training sequences in CSR form, rows sorted by user.

Row j is user `users[j]`; its events (time order) are
`items[offsets[j]:offsets[j+1]]`, same for `timestamps` and `sessions`.
All arrays int64; `offsets` has len(users) + 1 entries.
"""

_SHARD_RE = re.compile(r"train-(\d{5})-of-(\d{5})\.tfrecord$")
_READ_BATCH = 1024


def _load_npz(path):
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {name: npz[name] for name in npz.files}
  except ValueError as e:
    raise InputError("%s: cannot be read without pickle (%s)" % (path, e)) from e
  except (OSError, EOFError) as e:
    raise InputError("%s: not a readable .npz file (%s)" % (path, e)) from e


def _count_lines(path):
  with open(path, "rb") as f:
    return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


class ProcessedDataset:
  """A processed dataset folder: manifest, vocabularies, catalog, records.

  Use `ProcessedDataset.load(directory)`. Arrays are loaded eagerly except the
  training sequences, which are read from the TFRecord shards on first use and
  then cached.

  Attributes:
    directory: the folder.
    manifest: dict, `manifest.json`.
    schema: `manifest["schema"]` (item_features / user_features lists).
    fingerprint: sha256 hex digest of the bytes of `manifest.json`.
    num_users, num_items: counts of real users/items (index 0 is padding).
    item_count: int64 [N+1] training interactions per item.
    split_item_count: int64 [N+1] training interactions per item of the
      preprocessed split (equals `item_count` unless validation was folded in).
    validation_in_train: whether `with_validation_in_train` made this view.
    item_features: dict name -> int32 [N+1] or [N+1, F], from `catalog.npz`.
    user_features: dict name -> [U+1] from `users.npz` ({} when absent).
    train_files: sorted list of the training shard paths.
  """

  def __init__(self, directory, manifest, fingerprint, catalog, user_features,
               train_files, num_users):
    self.directory = directory
    self.manifest = manifest
    self.schema = manifest["schema"]
    self.fingerprint = fingerprint
    self.item_count = catalog.pop("item_count").astype(np.int64)
    self.item_features = catalog
    self.user_features = user_features
    self.train_files = train_files
    self.num_items = int(self.item_count.shape[0] - 1)
    self.num_users = int(num_users)
    # Counts of the preprocessed training split, kept when `item_count`
    # changes (`with_validation_in_train`): sampled evaluation negatives are
    # drawn from these so every model of a dataset meets the same candidates.
    self.split_item_count = self.item_count
    self.validation_in_train = False
    self.train_fraction = 1.0
    self._vocabs = {}
    self._train_sequences = None
    self._train_items = None

  @classmethod
  def load(cls, directory):
    """Opens a processed dataset; raises InputError naming the faulty file."""
    directory = os.fspath(directory)
    manifest_path = os.path.join(directory, "manifest.json")
    if not os.path.isdir(directory):
      raise InputError("%s: no such folder (expected a processed dataset)" % directory)
    if not os.path.isfile(manifest_path):
      raise InputError("%s is not a processed dataset: %s is missing (write one "
                       "with experiments/preprocess.py)" % (directory, manifest_path))
    with open(manifest_path, "rb") as f:
      manifest_bytes = f.read()
    try:
      manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise InputError("%s: not valid JSON (%s)" % (manifest_path, e)) from e
    if not isinstance(manifest, dict):
      raise InputError("%s: expected a JSON object" % manifest_path)
    version = manifest.get("format_version")
    if version != records.FORMAT_VERSION:
      raise InputError("%s: unknown format_version %r (this dcg_tf reads version %d)"
                       % (manifest_path, version, records.FORMAT_VERSION))
    if not isinstance(manifest.get("schema"), dict):
      raise InputError("%s: missing the \"schema\" object" % manifest_path)

    catalog_path = os.path.join(directory, "catalog.npz")
    if not os.path.isfile(catalog_path):
      raise InputError("%s is not a processed dataset: %s is missing"
                       % (directory, catalog_path))
    catalog = _load_npz(catalog_path)
    if "item_count" not in catalog or catalog["item_count"].ndim != 1:
      raise InputError("%s: needs a 1-D array \"item_count\" [N+1]" % catalog_path)
    num_rows = catalog["item_count"].shape[0]
    for name, values in catalog.items():
      if values.shape[:1] != (num_rows,):
        raise InputError("%s: array %r has %s rows, item_count has %d"
                         % (catalog_path, name, values.shape[:1], num_rows))
    item_vocab = os.path.join(directory, "vocab", "item.txt")
    if os.path.isfile(item_vocab) and _count_lines(item_vocab) != num_rows - 1:
      raise InputError("%s has %d lines but %s has %d items"
                       % (item_vocab, _count_lines(item_vocab), catalog_path,
                          num_rows - 1))

    user_vocab = os.path.join(directory, "vocab", "user.txt")
    if not os.path.isfile(user_vocab):
      raise InputError("%s is not a processed dataset: %s is missing"
                       % (directory, user_vocab))
    num_users = _count_lines(user_vocab)
    users_path = os.path.join(directory, "users.npz")
    user_features = _load_npz(users_path) if os.path.isfile(users_path) else {}
    for name, values in user_features.items():
      if values.shape[:1] != (num_users + 1,):
        raise InputError("%s: array %r has %s rows, expected %d (users + 1)"
                         % (users_path, name, values.shape[:1], num_users + 1))

    train_files = cls._find_train_files(directory)
    fingerprint = hashlib.sha256(manifest_bytes).hexdigest()
    return cls(directory, manifest, fingerprint, catalog, user_features,
               train_files, num_users)

  @staticmethod
  def _find_train_files(directory):
    paths = sorted(glob.glob(os.path.join(directory, "train-*-of-*.tfrecord")))
    if not paths:
      raise InputError("%s is not a processed dataset: no train-*-of-*.tfrecord "
                       "shards" % directory)
    totals = {int(_SHARD_RE.search(p).group(2)) for p in paths if _SHARD_RE.search(p)}
    if len(totals) != 1:
      raise InputError("%s: training shards disagree on their count: %s"
                       % (directory, [os.path.basename(p) for p in paths]))
    total = totals.pop()
    expected = [os.path.join(directory, records.train_shard_name(k, total))
                for k in range(total)]
    missing = sorted(set(expected) - set(paths))
    if missing:
      raise InputError("%s: missing training shard(s) %s"
                       % (directory, [os.path.basename(p) for p in missing]))
    return expected

  def vocab(self, name):
    """Raw ids of vocabulary `name`: entry v-1 is index v (index 0 = padding)."""
    if name not in self._vocabs:
      path = os.path.join(self.directory, "vocab", name + ".txt")
      if not os.path.isfile(path):
        raise InputError("%s: no vocabulary %r (missing file)" % (path, name))
      with open(path, encoding="utf-8") as f:
        self._vocabs[name] = f.read().splitlines()
    return self._vocabs[name]

  def eval_file(self, split):
    """Path of `valid.tfrecord` / `test.tfrecord`."""
    path = os.path.join(self.directory, split + ".tfrecord")
    if not os.path.isfile(path):
      available = sorted(os.path.basename(p)[:-len(".tfrecord")]
                         for p in glob.glob(os.path.join(self.directory, "*.tfrecord"))
                         if not _SHARD_RE.search(p))
      raise InputError("%s: no evaluation split %r (available: %s)"
                       % (path, split, available))
    return path

  def train_sequences(self):
    """Training sequences as `TrainSequences` (CSR, rows sorted by user).

    Reads every shard once (parallel interleave, batched parsing) and caches.
    """
    if self._train_sequences is None:
      self._train_sequences = self._read_train_sequences()
    return self._train_sequences

  def _read_train_sequences(self):
    files = tf.data.Dataset.from_tensor_slices(self.train_files)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=len(self.train_files),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(_READ_BATCH).map(records.parse_train_examples,
                                   num_parallel_calls=tf.data.AUTOTUNE)
    parts = collections.defaultdict(list)
    for batch in ds.prefetch(tf.data.AUTOTUNE):
      parts["users"].append(batch["user"].numpy())
      parts["lengths"].append(batch["item"].row_lengths().numpy())
      for key in records.TRAIN_SEQUENCE_KEYS:
        parts[key].append(batch[key].flat_values.numpy())
    cat = {k: (np.concatenate(v).astype(np.int64) if v else np.zeros(0, np.int64))
           for k, v in parts.items()}
    for key in ("users", "lengths") + records.TRAIN_SEQUENCE_KEYS:
      cat.setdefault(key, np.zeros(0, np.int64))
    users, lengths = cat["users"], cat["lengths"]
    order = np.argsort(users, kind="stable")
    users = users[order]
    dup = np.flatnonzero(np.diff(users) == 0)
    if dup.size:
      raise InputError("%s: user %d has more than one training record"
                       % (self.directory, users[dup[0]]))
    bad = np.flatnonzero((users < 1) | (users > self.num_users))
    if bad.size:
      raise InputError("%s: training record of user %d is outside 1..%d "
                       "(vocab/user.txt)"
                       % (self.directory, users[bad[0]], self.num_users))
    old_offsets = np.concatenate([[0], np.cumsum(lengths)])
    new_lengths = lengths[order]
    offsets = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    # Event k of new row j comes from old position old_offsets[order[j]] + k.
    gather = (np.repeat(old_offsets[:-1][order] - offsets[:-1], new_lengths)
              + np.arange(offsets[-1]))
    seq = {k: cat[k][gather] for k in records.TRAIN_SEQUENCE_KEYS}
    bad = np.flatnonzero((seq["item"] < 1) | (seq["item"] > self.num_items))
    if bad.size:
      raise InputError("%s: a training record holds item %d outside 1..%d"
                       % (self.directory, seq["item"][bad[0]], self.num_items))
    return TrainSequences(users, offsets, seq["item"], seq["timestamp"],
                          seq["session"])

  def with_validation_in_train(self):
    """A view of this dataset whose training sequences end with the validation targets.

    BERT4Rec's protocol (its `gen_data_fin.py`, "put validate into train"),
    which the CLRec paper's Table 8 follows: once hyper-parameters and the
    number of epochs are chosen on the validation split, the final model is
    fitted on training + validation events and scored on the test split,
    whose targets stay unseen. Each user's validation targets are appended to
    that user's training row (a user without a training row gets the
    validation history followed by the targets); `item_count` and the
    per-user training items include them. The test records are unchanged:
    their histories already hold the validation events.

    Returns:
      a new `ProcessedDataset` (this one is not modified) with
      `validation_in_train = True`; `split_item_count` stays the preprocessed
      training counts.
    """
    if self.validation_in_train:
      return self
    path = self.eval_file("valid")
    seqs = self.train_sequences()
    valid = self._read_eval_csr(path)
    v_users = valid["user"]
    if v_users.size and ((v_users < 1) | (v_users > self.num_users)).any():
      bad = v_users[(v_users < 1) | (v_users > self.num_users)][0]
      raise InputError("%s: validation record of user %d is outside 1..%d"
                       % (path, bad, self.num_users))
    sorted_users = np.sort(v_users)
    dup = np.flatnonzero(np.diff(sorted_users) == 0)
    if dup.size:
      raise InputError("%s: user %d has more than one validation record"
                       % (path, sorted_users[dup[0]]))
    tgt_len = valid["target"][0]
    if not np.array_equal(tgt_len, valid["target_timestamp"][0]):
      row = np.flatnonzero(tgt_len != valid["target_timestamp"][0])[0]
      raise InputError("%s: user %d has %d targets but %d target timestamps"
                       % (path, v_users[row], tgt_len[row],
                          valid["target_timestamp"][0][row]))
    targets = valid["target"][1]
    bad = (targets < 1) | (targets > self.num_items)
    if bad.any():
      row = np.searchsorted(np.cumsum(tgt_len), np.argmax(bad), side="right")
      raise InputError("%s: validation record of user %d holds item %d outside "
                       "1..%d" % (path, v_users[row], targets[bad][0], self.num_items))

    # Base events: the training rows, plus the validation history of users
    # without a training row; then each user's targets after them.
    no_row = ~np.isin(v_users, seqs.users)                        # [V]
    hist_len = valid["history"][0]
    hist_event_no_row = np.repeat(no_row, hist_len)               # [sum hist]
    base_user = np.concatenate([np.repeat(seqs.users, np.diff(seqs.offsets)),
                                np.repeat(v_users[no_row], hist_len[no_row])])
    base = [np.concatenate([seqs_part, valid[key][1][hist_event_no_row]])
            for seqs_part, key in ((seqs.items, "history"),
                                   (seqs.timestamps, "history_timestamp"),
                                   (seqs.sessions, "history_session"))]
    num_base = base_user.size
    all_user = np.concatenate([base_user, np.repeat(v_users, tgt_len)])
    items = np.concatenate([base[0], targets])
    ts = np.concatenate([base[1], valid["target_timestamp"][1]])
    sess = np.concatenate([base[2], np.zeros(targets.size, np.int64)])
    is_target = np.arange(all_user.size) >= num_base
    # Stable: within a user, training (or history) events keep their order and
    # the targets follow them in their own order.
    order = np.argsort(all_user, kind="stable")
    all_user, items, ts, sess, is_target = (
        all_user[order], items[order], ts[order], sess[order], is_target[order])

    # Sessions continue by the preprocessing rule: a target more than
    # session_gap s after the previous event opens a session (one session
    # when the data has no time).
    first = np.ones(all_user.size, bool)
    first[1:] = all_user[1:] != all_user[:-1]
    new = np.zeros(all_user.size, np.int64)
    if bool(self.manifest.get("has_time", True)):
      gap = int(self.manifest.get("params", {}).get("session_gap", 3600))
      new[1:] = (ts[1:] - ts[:-1] > gap)
      new &= is_target & ~first
    # Session of a target = session of the user's last base event (0 if none)
    # + the openings among that user's targets up to it.
    base_sess = np.where(is_target, 0, sess)
    start = np.maximum.accumulate(np.where(first, np.arange(all_user.size), 0))
    last_base = np.maximum.accumulate(
        np.where(~is_target | first, np.arange(all_user.size), 0))  # [E]
    carried = np.where(is_target[last_base], 0, base_sess[last_base])
    opened = np.cumsum(new)
    sess = np.where(is_target, carried + opened - opened[start], sess)

    users, first_idx = np.unique(all_user, return_index=True)
    offsets = np.append(first_idx, all_user.size).astype(np.int64)
    folded = copy.copy(self)
    folded._train_sequences = TrainSequences(users.astype(np.int64), offsets,
                                             items, ts, sess.astype(np.int64))
    folded._train_items = None
    added = np.concatenate([valid["history"][1][hist_event_no_row], targets])
    folded.item_count = self.item_count + np.bincount(
        added, minlength=self.num_items + 1).astype(np.int64)
    folded.split_item_count = self.split_item_count
    folded.validation_in_train = True
    return folded

  def with_train_fraction(self, fraction, seed=0):
    """A view that keeps a uniform down-sample of the training events.

    SSL-CFM (Yao et al., CIKM'21), Table 3: models trained on 10% of the
    training data and evaluated on the full test set. Exactly
    round(fraction * E) of the E training events are kept, drawn uniformly
    without replacement by `numpy.random.default_rng(seed)` (the same events
    for every model and run seed, so the comparison is on the same data);
    each user's kept events stay in their order, users left with none have no
    training row. `item_count` counts the kept events; `split_item_count`
    stays the preprocessed counts; valid and test records (their histories
    included) are unchanged.

    Args:
      fraction: in (0, 1]; 1 returns this dataset.
      seed: the seed of the draw (not the run seed).

    Returns:
      a new `ProcessedDataset` (this one is not modified) with
      `train_fraction = fraction`.
    """
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
      raise ValueError("train_fraction must be in (0, 1], got %r" % (fraction,))
    if fraction == 1.0:
      return self
    seqs = self.train_sequences()
    num_events = seqs.items.size
    keep = np.zeros(num_events, bool)                              # [E]
    chosen = np.random.default_rng(seed).choice(
        num_events, size=int(round(fraction * num_events)), replace=False)
    keep[chosen] = True
    row_of_event = np.repeat(np.arange(seqs.users.size), np.diff(seqs.offsets))
    kept_per_row = np.bincount(row_of_event[keep], minlength=seqs.users.size)
    rows = kept_per_row > 0
    offsets = np.concatenate([[0], np.cumsum(kept_per_row[rows])]).astype(np.int64)
    sampled = copy.copy(self)
    sampled._train_sequences = TrainSequences(
        seqs.users[rows], offsets, seqs.items[keep], seqs.timestamps[keep],
        seqs.sessions[keep])
    sampled._train_items = None
    sampled.item_count = np.bincount(
        seqs.items[keep], minlength=self.num_items + 1).astype(np.int64)
    sampled.train_fraction = fraction * self.train_fraction
    return sampled

  @staticmethod
  def _read_eval_csr(path):
    """valid/test records: `user` int64 [R] and, per sequence key, (lengths [R], values)."""
    ds = tf.data.TFRecordDataset(path).batch(_READ_BATCH).map(
        records.parse_eval_examples)
    parts = collections.defaultdict(list)
    for batch in ds:
      parts["user"].append(batch["user"].numpy())
      for key in records.EVAL_SEQUENCE_KEYS:
        parts[key + "/len"].append(batch[key].row_lengths().numpy())
        parts[key].append(batch[key].flat_values.numpy())
    cat = lambda k: (np.concatenate(parts[k]).astype(np.int64) if parts[k]
                     else np.zeros(0, np.int64))
    out = {"user": cat("user")}
    for key in records.EVAL_SEQUENCE_KEYS:
      out[key] = (cat(key + "/len"), cat(key))
    return out

  def train_items_per_user(self):
    """Distinct training items of each user, CSR indexed by user index.

    Returns:
      (offsets int64 [U+2], items int64): user u's training items, sorted and
      distinct, are `items[offsets[u]:offsets[u+1]]` (u = 0..U; user 0 has none).
    """
    if self._train_items is None:
      seqs = self.train_sequences()
      users = np.repeat(seqs.users, np.diff(seqs.offsets))
      keys = np.unique(users * (self.num_items + 1) + seqs.items)
      key_users = keys // (self.num_items + 1)
      offsets = np.searchsorted(key_users, np.arange(self.num_users + 2)).astype(np.int64)
      self._train_items = (offsets, (keys % (self.num_items + 1)).astype(np.int64))
    return self._train_items
