"""records: NumPy-built Examples equal protobuf's own, and round trips."""

import concurrent.futures
import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import records


def _reference_example(features, r):
  """The same Example built with the protobuf API, serialized deterministically."""
  example = tf.train.Example()
  for key, (offsets, values) in features.items():
    feature = example.features.feature[key]
    feature.int64_list.SetInParent()  # an empty list is still an int64_list
    feature.int64_list.value.extend(values[offsets[r]:offsets[r + 1]].tolist())
  return example.SerializeToString(deterministic=True)


def test_serialized_bytes_equal_protobuf_serialization():
  rng = np.random.default_rng(0)
  lengths = np.array([0, 1, 5, 3, 0, 200, 2])   # empty lists, a long one
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  total = int(offsets[-1])
  # Varint edges: 0, 127|128 (1|2 bytes), 2^63 - 1 (9 bytes), negatives (10 bytes).
  edge = np.array([0, 127, 128, 16383, 16384, 2**63 - 1, -1, -2**63], np.int64)
  big = rng.integers(-2**62, 2**62, size=total)
  big[:edge.size] = edge
  features = {"timestamp": (offsets, big),
              "item": (offsets, rng.integers(0, 300, size=total)),
              "user": (np.arange(8), np.array([1, 2, 3, 128, 5, 6, 2**40]))}
  got = records.serialize_examples(features)
  assert len(got) == 7
  for r in range(7):
    assert got[r] == _reference_example(features, r), "record %d" % r


def _read_all(paths, parse, **kwargs):
  ds = tf.data.TFRecordDataset(paths).batch(1000).map(
      lambda s: parse(s, **kwargs))
  out = {}
  for batch in ds:
    for key, value in batch.items():
      out.setdefault(key, []).extend(
          value.numpy().tolist() if isinstance(value, tf.Tensor)
          else value.to_list())
  return out


def test_train_shards_round_trip_and_balance(tmp_path):
  rng = np.random.default_rng(1)
  lengths = rng.integers(1, 30, size=40)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  total = int(offsets[-1])
  users = rng.permutation(np.arange(1, 41))
  items = rng.integers(1, 1000, total)
  timestamps = rng.integers(1_000_000_000, 2_000_000_000, total)
  sessions = rng.integers(0, 4, total)
  category = rng.integers(1, 9, total)
  paths = records.write_train_shards(str(tmp_path), 3, users, offsets, items,
                                     timestamps, sessions, {"category": category})
  assert [os.path.basename(p) for p in paths] == [
      "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
      "train-00002-of-00003.tfrecord"]
  got = _read_all(paths, records.parse_train_examples,
                  item_feature_names=("category",))
  # Shards hold contiguous rows in order, so reading them in order gives the input.
  assert got["user"] == users.tolist()
  expected = {"item": items, "timestamp": timestamps, "session": sessions,
              "item_category": category}
  for key, values in expected.items():
    assert got[key] == [values[offsets[j]:offsets[j + 1]].tolist()
                        for j in range(40)], key
  # Each shard holds about a third of the events: the cut falls within one user.
  per_shard = [sum(len(x) for x in _read_all([p], records.parse_train_examples)["item"])
               for p in paths]
  assert sum(per_shard) == total
  assert max(abs(n - total / 3) for n in per_shard) <= lengths.max()


def test_more_shards_than_users_leaves_empty_shards(tmp_path):
  paths = records.write_train_shards(str(tmp_path), 4, [7], [0, 2], [3, 4], [10, 20],
                                     [0, 0], {})
  sizes = [sum(1 for _ in tf.data.TFRecordDataset(p)) for p in paths]
  assert sum(sizes) == 1 and len(sizes) == 4
  got = _read_all(paths, records.parse_train_examples)
  assert got == {"user": [7], "item": [[3, 4]], "timestamp": [[10, 20]],
                 "session": [[0, 0]]}


def test_eval_records_round_trip_with_several_targets(tmp_path):
  path = str(tmp_path / "test.tfrecord")
  # User 5: history [1, 2], targets [3]; user 9: empty history, targets [4, 6].
  count = records.write_eval_records(
      path, users=[5, 9], hist_offsets=[0, 2, 2], hist_items=[1, 2],
      hist_timestamps=[100, 200], hist_sessions=[0, 1], tgt_offsets=[0, 1, 3],
      tgt_items=[3, 4, 6], tgt_timestamps=[300, 50, 60])
  assert count == 2
  got = _read_all([path], records.parse_eval_examples)
  assert got == {"user": [5, 9], "history": [[1, 2], []],
                 "history_timestamp": [[100, 200], []],
                 "history_session": [[0, 1], []],
                 "target": [[3], [4, 6]], "target_timestamp": [[300], [50, 60]]}


@pytest.mark.parametrize("kwargs, message", [
    (dict(offsets=[0, 2, 4]), "offsets\\[-1\\] = 4 but items has 3"),
    (dict(offsets=[0, 3]), "len\\(users\\) \\+ 1 = 3"),
    (dict(offsets=[1, 2, 3]), "offsets must start with 0"),
    (dict(offsets=[0, 3, 2, 3], users=[1, 2, 3]), "offsets decreases at position 1"),
    (dict(timestamps=[1, 2]), "timestamp has 2 entries but items has 3"),
    (dict(items=[1.5, 2.0, 3.0]), "items must hold integers"),
    (dict(item_features={"category": [1, 2]}), "item_category has 2 entries"),
])
def test_bad_train_input_is_named(tmp_path, kwargs, message):
  args = dict(output_dir=str(tmp_path), num_shards=1, users=[1, 2],
              offsets=[0, 1, 3], items=[1, 2, 3], timestamps=[1, 2, 3],
              sessions=[0, 0, 0], item_features={})
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    records.write_train_shards(**args)


def test_eval_user_without_target_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="row 1 \\(user 8\\) has no target"):
    records.write_eval_records(str(tmp_path / "v.tfrecord"), [7, 8], [0, 1, 2],
                               [1, 2], [1, 2], [0, 0], [0, 1, 1], [3], [4])


def test_train_shards_written_by_threads_are_identical(tmp_path):
  rng = np.random.default_rng(3)
  lengths = rng.integers(1, 50, size=300)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  total = int(offsets[-1])
  args = (np.arange(1, 301), offsets, rng.integers(1, 1000, total),
          rng.integers(0, 2**40, total), rng.integers(0, 4, total),
          {"category": rng.integers(1, 9, total)})
  os.makedirs(tmp_path / "a")
  os.makedirs(tmp_path / "b")
  serial = records.write_train_shards(str(tmp_path / "a"), 5, *args)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    threaded = records.write_train_shards(str(tmp_path / "b"), 5, *args, executor=pool)
  for a, b in zip(serial, threaded):
    with open(a, "rb") as fa, open(b, "rb") as fb:
      assert fa.read() == fb.read()
