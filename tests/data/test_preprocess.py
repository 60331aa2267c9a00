"""preprocess: filters, sessions, splits, features, manifest, atomic output, and
DIEN's processed layout, each against a NumPy/pure-Python reference or a
hand-worked example."""

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from dcg_tf.data import preprocess as pp
from dcg_tf.data import records
from dcg_tf.data.raw import RawData
from dcg_tf.data.raw import interactions_frame


def _raw(rows, item_features=None, multi=(), has_time=True):
  users, items, ts = zip(*rows)
  inter = interactions_frame(np.array(users, object), np.array(items, object), ts)
  kwargs = {}
  if item_features is not None:
    kwargs["item_features"] = item_features
  raw = RawData(interactions=inter, multi_valued=multi, has_time=has_time, **kwargs)
  raw.report.add_read("mem", len(rows))
  raw.report.add_kept("mem", len(rows))
  return raw


def _read(path, train=False, features=()):
  out = []
  parse = ((lambda s: records.parse_train_examples(s, features)) if train
           else records.parse_eval_examples)
  for batch in tf.data.TFRecordDataset(path).batch(4096).map(parse):
    cols = {k: (v.to_list() if isinstance(v, tf.RaggedTensor) else v.numpy().tolist())
            for k, v in batch.items()}
    out += [dict(zip(cols, vals)) for vals in zip(*cols.values())]
  return out


def _vocab(folder, name):
  with open(os.path.join(folder, "vocab", name + ".txt"), encoding="utf-8") as f:
    return f.read().splitlines()


def _sequences(folder):
  """Raw-id view of the output: {user: (train items, valid, test)}."""
  users, items = _vocab(folder, "user"), _vocab(folder, "item")
  train = {}
  for path in sorted(p for p in os.listdir(folder) if p.startswith("train-")):
    for r in _read(os.path.join(folder, path), train=True):
      train[users[r["user"] - 1]] = [items[i - 1] for i in r["item"]]
  evals = {}
  for split in ("valid", "test"):
    evals[split] = {users[r["user"] - 1]: ([items[i - 1] for i in r["history"]],
                                           [items[i - 1] for i in r["target"]])
                    for r in _read(os.path.join(folder, split + ".tfrecord"))}
  return train, evals


# === Filters ===


def _k_core_reference(pairs, k_user, k_item):
  """Plain-Python iterated k-core."""
  pairs = list(pairs)
  while True:
    uc, ic = {}, {}
    for u, i in pairs:
      uc[u] = uc.get(u, 0) + 1
      ic[i] = ic.get(i, 0) + 1
    kept = [(u, i) for u, i in pairs if uc[u] >= k_user and ic[i] >= k_item]
    if len(kept) == len(pairs):
      return kept
    pairs = kept


def test_k_core_matches_reference_and_is_a_fixed_point():
  rng = np.random.default_rng(0)
  u = rng.zipf(1.6, 3000) % 300
  i = rng.zipf(1.4, 3000) % 200
  keep, rounds = pp.k_core(u, i, 5, 4)
  expected = _k_core_reference(zip(u.tolist(), i.tolist()), 5, 4)
  assert list(zip(u[keep].tolist(), i[keep].tolist())) == expected
  assert len(rounds) >= 2                       # cascading drops happened
  assert sum(r["events_removed"] for r in rounds) == int((~keep).sum())
  assert np.bincount(u[keep])[np.unique(u[keep])].min() >= 5
  assert np.bincount(i[keep])[np.unique(i[keep])].min() >= 4


def test_dedup_keeps_first_of_identical_events():
  u = np.array([0, 0, 0, 1, 0])
  i = np.array([5, 5, 6, 5, 5])
  t = np.array([10, 10, 10, 10, 11])
  # Row 1 repeats row 0 exactly; row 4 has another time, row 3 another user.
  np.testing.assert_array_equal(pp.dedup_mask(u, i, t), [0, 1, 0, 0, 0])


def test_sessions_split_on_gap_hand_worked():
  u = np.array([1, 1, 1, 1, 2, 2])
  t = np.array([0, 100, 4000, 4100, 50, 7000])
  # gaps 100 (same), 3900 > 3600 (new), 100 (same) | new user, 6950 (new)
  np.testing.assert_array_equal(pp.sessions_of(u, t, 3600), [0, 0, 1, 1, 0, 1])


# === Splits and output ===


def _events(num_users=12, seed=0):
  rng = np.random.default_rng(seed)
  rows = []
  for uid in range(num_users):
    n = int(rng.integers(1, 9))
    ts = np.sort(rng.choice(100000, n, replace=False))
    for t in rng.permutation(ts):            # input order is not time order
      rows.append(("u%02d" % uid, "i%d" % rng.integers(0, 15), int(t)))
  return rows


def _by_user(rows):
  seqs = {}
  for u, i, t in sorted(rows, key=lambda r: (r[0], r[2])):
    seqs.setdefault(u, []).append(i)
  return seqs


def test_leave_one_out(tmp_path):
  rows = _events()
  out = str(tmp_path / "out")
  manifest = pp.preprocess(_raw(rows), out, pp.PreprocessConfig())
  train, evals = _sequences(out)
  seqs = _by_user(rows)
  for u, s in seqs.items():
    if len(s) >= 3:
      assert train[u] == s[:-2]
      assert evals["valid"][u] == (s[:-2], [s[-2]])
      assert evals["test"][u] == (s[:-1], [s[-1]])
    else:                                    # SASRec: short users only train
      assert train[u] == s and u not in evals["test"]
  c = manifest["counts"]
  assert c["test_users"] == sum(len(s) >= 3 for s in seqs.values())
  assert c["train_interactions"] == sum(len(v) for v in train.values())


def test_dien_split_holds_out_last_behaviour(tmp_path):
  rows = _events(40)
  out = str(tmp_path / "out")
  pp.preprocess(_raw(rows), out, pp.PreprocessConfig(split="dien",
                                                     dien_test_fraction=0.3))
  train, evals = _sequences(out)
  seqs = _by_user(rows)
  held = {**evals["valid"], **evals["test"]}
  assert not set(evals["valid"]) & set(evals["test"])
  assert 0 < len(evals["test"]) < len(held)
  for u, s in seqs.items():
    if len(s) >= 2:
      assert held[u] == (s[:-1], [s[-1]]) and train[u] == s[:-1]
    else:
      assert u not in held


def test_time_split(tmp_path):
  rows = _events(30)
  out = str(tmp_path / "out")
  cut, vcut = 60000, 40000
  m = pp.preprocess(_raw(rows), out, pp.PreprocessConfig(
      split="time", cutoff_timestamp=cut, valid_cutoff_timestamp=vcut))
  train, evals = _sequences(out)
  for u in {r[0] for r in rows}:
    ev = sorted((t, i) for uu, i, t in rows if uu == u)
    before_v = [i for t, i in ev if t < vcut]
    before_t = [i for t, i in ev if t < cut]
    after = [i for t, i in ev if t >= cut]
    assert train.get(u, []) == before_v
    if before_t and after:
      assert evals["test"][u] == (before_t, after)
    else:
      assert u not in evals["test"]
    mid = [i for t, i in ev if vcut <= t < cut]
    assert evals["valid"].get(u) == ((before_v, mid) if before_v and mid else None)
  assert m["split"]["cutoff_timestamp"] == cut


def test_user_split_comirec(tmp_path):
  rows = _events(50)
  out = str(tmp_path / "out")
  pp.preprocess(_raw(rows), out, pp.PreprocessConfig(split="user", holdout_users=0.2))
  train, evals = _sequences(out)
  seqs = _by_user(rows)
  held = {**evals["valid"], **evals["test"]}
  eligible = [u for u, s in seqs.items() if len(s) >= 2]
  assert len(evals["valid"]) == len(evals["test"]) == round(0.2 * len(eligible))
  for u, (hist, tgt) in held.items():
    s = seqs[u]
    k = min(max(int(np.floor(0.8 * len(s))), 1), len(s) - 1)
    assert (hist, tgt) == (s[:k], s[k:]) and u not in train
  assert set(train) == set(seqs) - set(held)


def test_catalog_vocab_and_manifest(tmp_path):
  rows = [("b", "x", 1), ("b", "y", 2), ("b", "x", 3), ("a", "y", 1),
          ("a", "z", 2), ("a", "x", 3), ("a", "x", 3)]    # last row: duplicate
  index = pd.Index(["x", "y", "z"], dtype=object)
  feats = pd.DataFrame(
      {"category": pd.Series(["c1", "c2", None], index=index, dtype=object),
       "tags": pd.Series([["t1", "t2"], ["t2"], []], index=index, dtype=object)})
  out = str(tmp_path / "out")
  m = pp.preprocess(_raw(rows, feats, multi=("tags",)), out, pp.PreprocessConfig())
  assert _vocab(out, "user") == ["a", "b"] and _vocab(out, "item") == ["x", "y", "z"]
  cat = np.load(os.path.join(out, "catalog.npz"), allow_pickle=False)
  # Sequences: a = y z x (x dup dropped), b = x y x; leave-one-out trains on
  # a: [y], b: [x] -> counts x=1, y=1, z=0 (row 0 = padding).
  np.testing.assert_array_equal(cat["item_count"], [0, 1, 1, 0])
  # category vocab by frequency then name: c1, c2; z has none -> 0.
  assert _vocab(out, "category") == ["c1", "c2"]
  np.testing.assert_array_equal(cat["category"], [0, 1, 2, 0])
  # tags vocab: t2 (2 items) before t1 (1 item).
  assert _vocab(out, "tags") == ["t2", "t1"]
  np.testing.assert_array_equal(cat["tags"], [[0, 0], [2, 1], [1, 0], [0, 0]])
  users = np.load(os.path.join(out, "users.npz"), allow_pickle=False)
  np.testing.assert_array_equal(users["activity"], [0, 1, 1])
  assert m["schema"]["item_features"] == [
      {"name": "category", "kind": "single", "vocab_size": 2, "max_len": 1},
      {"name": "tags", "kind": "multi", "vocab_size": 2, "max_len": 2}]
  assert m["filters"][0] == {"name": "dedup", "dropped": 1,
                             "reason": "repeated (user, item, timestamp)"}
  assert m["counts"]["interactions"] == 6
  with open(os.path.join(out, "manifest.json")) as f:
    assert json.load(f) == json.loads(json.dumps(m))
  # Training records carry the single-valued feature per position.
  recs = _read(os.path.join(out, "train-00000-of-00001.tfrecord"), True, ["category"])
  assert {r["user"]: r["item_category"] for r in recs} == {1: [2], 2: [1]}


def test_max_history_keeps_most_recent(tmp_path):
  rows = [("u", "i%d" % k, k) for k in range(6)]
  out = str(tmp_path / "out")
  m = pp.preprocess(_raw(rows), out, pp.PreprocessConfig(max_history=4))
  _, evals = _sequences(out)
  assert evals["test"]["u"] == (["i2", "i3", "i4"], ["i5"])
  assert m["filters"][1]["dropped"] == 2


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise RuntimeError("disk full")
  monkeypatch.setattr(records, "write_eval_records", fail)
  out = tmp_path / "out"
  with pytest.raises(RuntimeError):
    pp.preprocess(_raw(_events()), str(out), pp.PreprocessConfig())
  assert os.listdir(tmp_path) == []          # no output, no temporary folder


def test_existing_output_needs_overwrite(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  with pytest.raises(FileExistsError):
    pp.preprocess(_raw(_events()), str(out), pp.PreprocessConfig())
  pp.preprocess(_raw(_events()), str(out), pp.PreprocessConfig(), overwrite=True)
  assert (out / "manifest.json").exists() and len(os.listdir(tmp_path)) == 1


# === DIEN layout ===


def test_dien_layout_from_amazon_files_hand_worked(tmp_path):
  from experiments import preprocess as binary
  reviews = [("U1", "I1", 10), ("U2", "I2", 50), ("U1", "I2", 20), ("U2", "I1", 40),
             ("U1", "I1", 30), ("U3", "I1", 5)]
  with open(tmp_path / "reviews_Toy.json", "w") as f:
    for u, i, t in reviews:
      f.write(json.dumps({"reviewerID": u, "asin": i, "overall": 5.0,
                          "unixReviewTime": t}) + "\n")
  with open(tmp_path / "meta_Toy.json", "w") as f:   # I2 has no metadata
    f.write(repr({"asin": "I1", "categories": [["Toys", "c1"]]}) + "\n")
  out = str(tmp_path / "out")
  config = pp.PreprocessConfig(split="dien", dien_layout=True, dien_test_fraction=0.0)
  binary.run("amazon", [str(tmp_path / "reviews_Toy.json"),
                        str(tmp_path / "meta_Toy.json")], out, config)
  with open(os.path.join(out, "dien", "local_train_splitByUser")) as f:
    train = f.read()
  # Worked out by hand. Sorted by time: U1 = I1(10) I2(20) I1(30); U2 = I1(40)
  # I2(50); U3 = I1 only (no history -> no sample). Each user's last behaviour
  # gives a negative line (label 0; the only other item, with its category)
  # then the positive; history = earlier items/categories joined by \x02;
  # I2 has no metadata -> "default_cat".
  expected = ("0\tU1\tI2\tdefault_cat\tI1\x02I2\tc1\x02default_cat\n"
              "1\tU1\tI1\tc1\tI1\x02I2\tc1\x02default_cat\n"
              "0\tU2\tI1\tc1\tI1\tc1\n"
              "1\tU2\tI2\tdefault_cat\tI1\tc1\n")
  assert train == expected
  with open(os.path.join(out, "dien", "local_test_splitByUser")) as f:
    assert f.read() == ""
  voc = {n: json.load(open(os.path.join(out, "dien", n + ".json")))
         for n in ("uid_voc", "mid_voc", "cat_voc")}
  # Counts over the four lines (target + history): U1 2, U2 2 (tie: first seen
  # first); I1 6, I2 4; c1 6, default_cat 4. As in DIEN's generate_voc.py,
  # "default_cat" found in the data takes its frequency rank (2), overwriting 0.
  assert voc["uid_voc"] == {"U1": 0, "U2": 1}
  assert voc["mid_voc"] == {"default_mid": 0, "I1": 1, "I2": 2}
  assert voc["cat_voc"] == {"default_cat": 2, "c1": 1}


def test_dedup_matches_reference_on_random_ties():
  rng = np.random.default_rng(5)
  u, i, t = (rng.integers(0, k, 5000) for k in (20, 8, 30))
  seen, expected = set(), []
  for key in zip(u.tolist(), i.tolist(), t.tolist()):
    expected.append(key in seen)
    seen.add(key)
  np.testing.assert_array_equal(pp.dedup_mask(u, i, t), expected)


def test_binary_main_synthetic_output_reads_back(tmp_path):
  # End to end: flags -> generator -> amazon loader -> preprocess -> the
  # ProcessedDataset reader, checked against the generator's own events.
  from absl import flags
  from dcg_tf.data import synthetic
  from dcg_tf.data.dataset import ProcessedDataset
  from experiments import preprocess as binary
  out = str(tmp_path / "syn")
  flags.FLAGS(["prog", "--format=synthetic", "--synthetic_reviews=3000",
               "--output_dir=" + out, "--split=leave_one_out", "--seed=4"])
  try:
    assert binary.main([]) == 0
  finally:
    flags.FLAGS.unparse_flags()
  data = ProcessedDataset.load(out)
  gen = synthetic.generate(3000, seed=4)
  assert data.num_users == gen.num_users
  assert data.num_items == np.unique(gen.item).size
  seqs = data.train_sequences()
  users, items = data.vocab("user"), data.vocab("item")
  raw_users = synthetic.user_ids(gen.user)
  raw_items = synthetic.item_ids(gen.item)
  for row in (0, len(seqs.users) // 2, len(seqs.users) - 1):
    u = users[seqs.users[row] - 1]
    got = [items[i - 1] for i in seqs.items[seqs.offsets[row]:seqs.offsets[row + 1]]]
    assert got == raw_items[raw_users == u].tolist()[:-2]
  assert data.schema["item_features"][0]["name"] == "category"


def test_time_split_last_days():
  # Events at days 0..9 (one per day per user); test_days=2 -> test = days 8, 9
  # (ts > max - 2 days), valid = days 6, 7, train = days 0..5.
  day = 86400
  u = np.repeat(np.arange(1, 4), 10)
  ts = np.tile(np.arange(10) * day, 3)
  train, valid, test, details = pp.split_events(
      u, ts, 4, pp.PreprocessConfig(split="time", test_days=2), has_time=True)
  assert details["cutoff_timestamp"] == 7 * day + 1
  assert details["valid_cutoff_timestamp"] == 5 * day + 1
  np.testing.assert_array_equal(ts[train] // day, np.tile(np.arange(6), 3))
  np.testing.assert_array_equal(ts[test.tgt_index] // day, np.tile([8, 9], 3))
  np.testing.assert_array_equal(ts[valid.tgt_index] // day, np.tile([6, 7], 3))
  np.testing.assert_array_equal(np.diff(test.hist_offsets), [8, 8, 8])


def test_sort_helpers_equal_the_numpy_reference():
  rng = np.random.default_rng(7)
  for size, users, span in ((0, 1, 1), (1, 1, 1), (500, 20, 5), (2000, 300, 10**9)):
    u = rng.integers(0, users, size)
    ts = rng.integers(-span, span, size)
    np.testing.assert_array_equal(pp.sort_by_user_time(u, ts), np.lexsort((ts, u)))
    np.testing.assert_array_equal(pp.used_codes(u, users), np.unique(u))
  # A time span too wide for one int64 key falls back to lexsort.
  u = np.array([1, 0, 1, 0])
  ts = np.array([2**62, -2**62, -2**62, 2**62])
  np.testing.assert_array_equal(pp.sort_by_user_time(u, ts), np.lexsort((ts, u)))
  # regroup_runs: each value one contiguous run, runs moved whole.
  values = np.repeat(rng.permutation(50), rng.integers(1, 5, 50))
  np.testing.assert_array_equal(pp.regroup_runs(values),
                                np.argsort(values, kind="stable"))
  assert pp.regroup_runs(np.zeros(0, np.int64)).size == 0


def test_manifest_hashes_equal_hashlib(tmp_path):
  # The inputs are hashed in a background thread during preprocessing.
  paths = []
  for k, size in enumerate((0, 10, 3 << 20)):
    path = tmp_path / ("input%d.bin" % k)
    path.write_bytes(np.random.default_rng(k).bytes(size))
    paths.append(str(path))
  raw = _raw([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3)])
  manifest = pp.preprocess(raw, str(tmp_path / "out"), input_paths=paths)
  assert [x["sha256"] for x in manifest["source"]["inputs"]] == [
      hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]
  assert [x["bytes"] for x in manifest["source"]["inputs"]] == [0, 10, 3 << 20]


def test_id_with_line_break_is_rejected_and_nothing_is_left(tmp_path):
  raw = _raw([("u\r1", "a", 1), ("u2", "a", 2)])
  with pytest.raises(pp.BadInputError, match="line break"):
    pp.preprocess(raw, str(tmp_path / "out"))
  assert not os.listdir(tmp_path)


def _reference_features(frame, index_ids, multi_valued, max_len):
  """encode_features row by row (the former per-row implementation)."""
  out = {}
  frame = frame.reindex(pd.Index(index_ids, dtype=object))
  for name in frame.columns:
    values = [v if isinstance(v, list) else [] for v in frame[name]] \
        if name in multi_valued else list(frame[name])
    if name in multi_valued:
      lists = [list(dict.fromkeys(v))[:max_len] for v in values]
      vocab = pp._value_vocab([x for v in lists for x in v])
      width = max((len(v) for v in lists), default=0)
      if not vocab or width == 0:
        continue
      array = np.zeros((len(lists) + 1, width), np.int32)
      for r, v in enumerate(lists):
        array[r + 1, :len(v)] = [vocab.index(x) + 1 for x in v]
    else:
      present = [v is not None and v == v and str(v) != "" for v in values]
      vocab = pp._value_vocab([str(v) for v, p in zip(values, present) if p])
      if not vocab:
        continue
      array = np.array([0] + [vocab.index(str(v)) + 1 if p else 0
                              for v, p in zip(values, present)], np.int32)
    out[name] = (array, vocab)
  return out


def test_encode_features_equals_row_by_row_reference():
  rng = np.random.default_rng(0)
  tokens = ["a", "b", "c", "dd", "e"]
  for _ in range(50):
    n = int(rng.integers(0, 20))
    ids = ["i%d" % k for k in range(n)]
    frame = pd.DataFrame({
        "title_token": pd.Series(
            [list(rng.choice(tokens, int(rng.integers(0, 7)))) if rng.random() < 0.8
             else None for _ in range(n)], dtype=object),
        "category": pd.Series([rng.choice(["c1", "c2", "", None]) for _ in range(n)],
                              dtype=object)}).set_axis(pd.Index(ids, dtype=object))
    query = [x for x in ids if rng.random() < 0.8] + ["unknown"]
    for max_len in (0, 2, 32):
      got = pp.encode_features(frame, query, ("title_token",), max_len)
      want = _reference_features(frame, query, ("title_token",), max_len)
      assert list(got) == list(want)
      for name, (array, vocab) in want.items():
        np.testing.assert_array_equal(got[name][0], array)
        assert got[name][1] == vocab


# Explicit feedback (MovieLens stars): line numbers count the header as line 1.
_ML_RATINGS_FOR_THRESHOLD = (
    "userId,movieId,rating,timestamp\n"
    "1,10,5.0,100\n"    # line 2  kept
    "1,11,0.5,200\n"    # line 3  below 4
    "1,12,4.0,300\n"    # line 4  kept (the threshold itself passes)
    "1,13,3.5,400\n"    # line 5  below
    "2,10,4.5,100\n"    # line 6  kept
    "2,14,1.0,150\n"    # line 7  below
    "2,11,4.0,200\n"    # line 8  kept
    "2,12,5,300\n"      # line 9  kept
    "3,13,2.0,100\n"    # line 10 below: user 3 has no event left
    "3,14,3.0,200\n")   # line 11 below


def test_min_rating_drops_low_ratings_and_counts_each_line(tmp_path):
  from dcg_tf.data.loaders import LOADERS  # pylint: disable=g-import-not-at-top
  path = tmp_path / "ratings.csv"
  path.write_text(_ML_RATINGS_FOR_THRESHOLD)
  out = str(tmp_path / "out")
  manifest = pp.preprocess(LOADERS["movielens"]([str(path)]), out,
                           pp.PreprocessConfig(min_rating=4.0),
                           input_paths=[str(path)], source_format="movielens")
  (stats,) = manifest["input_rows"]["files"]
  assert (stats["read"], stats["kept"]) == (10, 5)
  assert stats["dropped"] == {"below_min_rating": 5}
  assert stats["first_lines"] == {"below_min_rating": [3, 5, 7, 10, 11]}
  assert {"name": "min_rating", "reason": "rated below 4 (or not rated)",
          "dropped": 5} in manifest["filters"]
  assert manifest["params"]["min_rating"] == 4.0
  # Kept: user 1 -> 10, 12 (2 events: training only); user 2 -> 10, 11, 12
  # (leave-one-out: train 10, valid 11, test 12). Items 13 and 14 and user 3
  # were only rated low: gone from the vocabularies.
  assert sorted(_vocab(out, "user")) == ["1", "2"]
  assert sorted(_vocab(out, "item")) == ["10", "11", "12"]
  train, evals = _sequences(out)
  assert train == {"1": ["10", "12"], "2": ["10"]}
  assert evals["valid"] == {"2": (["10"], ["11"])}
  assert evals["test"] == {"2": (["10", "11"], ["12"])}


def test_min_rating_counts_unrated_rows_and_refuses_data_without_ratings(tmp_path):
  rows = [("a", "x", 1), ("a", "y", 2), ("b", "x", 3)]
  users, items, ts = zip(*rows)
  # Amazon-style: a review without "overall" has a NaN rating.
  inter = interactions_frame(np.array(users, object), np.array(items, object), ts,
                             ratings=[5.0, np.nan, 2.0], file_index=0,
                             lines=[1, 2, 3])
  raw = RawData(interactions=inter)
  raw.report.add_read("reviews.json", 3)
  raw.report.add_kept("reviews.json", 3)
  m = pp.preprocess(raw, str(tmp_path / "out"), pp.PreprocessConfig(min_rating=3))
  (stats,) = m["input_rows"]["files"]
  assert (stats["read"], stats["kept"]) == (3, 1)
  assert stats["dropped"] == {"below_min_rating": 1, "no_rating": 1}
  assert stats["first_lines"] == {"below_min_rating": [3], "no_rating": [2]}
  with pytest.raises(pp.BadInputError, match="--min_rating=3: sequence data has no ratings"):
    pp.preprocess(_raw(rows), str(tmp_path / "out2"), pp.PreprocessConfig(min_rating=3),
                  source_format="sequence")
