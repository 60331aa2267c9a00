"""A tiny but complete processed dataset (docs/design.md), for tests.

`tiny_arrays` generates the ground truth (per-user full sequences, catalog,
user features) with NumPy; `write_tiny_dataset` writes it as a processed
dataset with a leave-one-out split (last event = test target, second-to-last =
valid target, the rest = training part), using `dcg_tf.data.records`.
Tests compare what the readers return against `tiny_arrays`.
"""

import json
import os

import numpy as np

from dcg_tf.data import records

SESSION_GAP = 3600  # seconds of inactivity that start a new session
NUM_CATEGORIES = 4
NUM_ATTRIBUTES = 5
MAX_ATTRIBUTES = 3
GENDERS = ("F", "M")


def tiny_arrays(num_users=8, num_items=12, seed=0, min_len=3, max_len=12):
  """Ground truth of the tiny dataset.

  Returns:
    dict with
      `sequences`: list (index u-1 for user u) of dicts with int64 arrays
        `item`, `timestamp`, `session` (the full, time-ordered history);
      `category` int32 [N+1] (single-valued, 1..NUM_CATEGORIES, row 0 = 0);
      `attribute` int32 [N+1, MAX_ATTRIBUTES] (multi-valued, 0-padded);
      `gender` int32 [U+1] (1 or 2, row 0 = 0).
  """
  rng = np.random.default_rng(seed)
  sequences = []
  for _ in range(num_users):
    n = int(rng.integers(min_len, max_len + 1))
    item = rng.integers(1, num_items + 1, size=n).astype(np.int64)
    # Gaps of a few minutes, sometimes more than SESSION_GAP.
    gaps = np.where(rng.random(n) < 0.3, 2 * SESSION_GAP, 60) + rng.integers(0, 30, n)
    timestamp = (1_500_000_000 + np.cumsum(gaps)).astype(np.int64)
    session = np.concatenate([[0], np.cumsum(np.diff(timestamp) > SESSION_GAP)])
    sequences.append({"item": item, "timestamp": timestamp,
                      "session": session.astype(np.int64)})
  category = np.zeros(num_items + 1, np.int32)
  category[1:] = 1 + np.arange(num_items) % NUM_CATEGORIES
  attribute = np.zeros((num_items + 1, MAX_ATTRIBUTES), np.int32)
  for i in range(1, num_items + 1):
    k = 1 + i % MAX_ATTRIBUTES          # 1..MAX_ATTRIBUTES values, then padding
    attribute[i, :k] = 1 + (i + np.arange(k)) % NUM_ATTRIBUTES
  gender = np.zeros(num_users + 1, np.int32)
  gender[1:] = 1 + rng.integers(0, 2, num_users)
  return {"sequences": sequences, "category": category, "attribute": attribute,
          "gender": gender}


def _csr(rows):
  offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
  values = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
  return offsets, values


def write_tiny_dataset(directory, num_users=8, num_items=12, seed=0, num_shards=2,
                       min_len=3, max_len=12):
  """Writes a complete processed dataset into `directory`; returns its path.

  Leave-one-out split of `tiny_arrays(num_users, num_items, seed)`. Users with
  `min_len=3` events keep one training event (no next-item example).
  """
  os.makedirs(os.path.join(directory, "vocab"), exist_ok=True)
  truth = tiny_arrays(num_users, num_items, seed, min_len, max_len)
  seqs = truth["sequences"]
  users = np.arange(1, num_users + 1, dtype=np.int64)

  # Training part: all but the last two events.
  train = {k: [s[k][:-2] for s in seqs] for k in ("item", "timestamp", "session")}
  offsets, items = _csr(train["item"])
  _, timestamps = _csr(train["timestamp"])
  _, sessions = _csr(train["session"])
  train_files = records.write_train_shards(
      directory, num_shards, users, offsets, items, timestamps, sessions,
      {"category": truth["category"][items].astype(np.int64)})

  for split, cut in (("valid", -2), ("test", -1)):
    hist_offsets, hist_items = _csr([s["item"][:cut] for s in seqs])
    _, hist_ts = _csr([s["timestamp"][:cut] for s in seqs])
    _, hist_sess = _csr([s["session"][:cut] for s in seqs])
    tgt_offsets, tgt_items = _csr([s["item"][[cut]] for s in seqs])
    _, tgt_ts = _csr([s["timestamp"][[cut]] for s in seqs])
    records.write_eval_records(os.path.join(directory, split + ".tfrecord"), users,
                               hist_offsets, hist_items, hist_ts, hist_sess,
                               tgt_offsets, tgt_items, tgt_ts)

  item_count = np.bincount(items, minlength=num_items + 1).astype(np.int64)
  np.savez(os.path.join(directory, "catalog.npz"), item_count=item_count,
           category=truth["category"], attribute=truth["attribute"])
  activity = np.concatenate([[0], np.diff(offsets)]).astype(np.int64)
  np.savez(os.path.join(directory, "users.npz"), activity=activity,
           gender=truth["gender"])

  vocabs = {"user": ["u%d" % u for u in users],
            "item": ["i%d" % i for i in range(1, num_items + 1)],
            "category": ["cat%d" % c for c in range(1, NUM_CATEGORIES + 1)],
            "attribute": ["attr%d" % a for a in range(1, NUM_ATTRIBUTES + 1)],
            "gender": list(GENDERS)}
  for name, lines in vocabs.items():
    with open(os.path.join(directory, "vocab", name + ".txt"), "w",
              encoding="utf-8") as f:
      f.write("".join(line + "\n" for line in lines))

  manifest = {
      "format_version": records.FORMAT_VERSION,
      "schema": {
          "item_features": [
              {"name": "category", "kind": "single",
               "vocab_size": NUM_CATEGORIES, "max_len": 1},
              {"name": "attribute", "kind": "multi",
               "vocab_size": NUM_ATTRIBUTES, "max_len": MAX_ATTRIBUTES}],
          "user_features": [
              {"name": "gender", "kind": "single", "vocab_size": len(GENDERS),
               "max_len": 1}],
      },
      "counts": {"users": num_users, "items": num_items,
                 "interactions": {"train": int(offsets[-1]), "valid": num_users,
                                  "test": num_users}},
      "split": {"name": "leave_one_out"},
      "session_gap_seconds": SESSION_GAP,
      "train_files": [os.path.basename(p) for p in train_files],
      "dropped": {},
      "params": {"generator": "tests/data/fixtures.py", "seed": seed,
                 "session_gap": SESSION_GAP},
      "has_time": True,
  }
  with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  return str(directory)
