"""ProcessedDataset: what it reads equals the generator's ground truth."""

import hashlib
import json
import os

import numpy as np
import pytest

from dcg_tf.data.dataset import ProcessedDataset
from tests.data.fixtures import tiny_arrays
from tests.data.fixtures import write_tiny_dataset

NUM_USERS, NUM_ITEMS, SEED = 9, 12, 3


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  # Three shards, so reading interleaves files and must restore user order.
  return write_tiny_dataset(str(tmp_path_factory.mktemp("tiny")), NUM_USERS,
                            NUM_ITEMS, SEED, num_shards=3)


@pytest.fixture(scope="module")
def truth():
  return tiny_arrays(NUM_USERS, NUM_ITEMS, SEED)


def test_counts_catalog_and_user_features(tiny_dir, truth):
  data = ProcessedDataset.load(tiny_dir)
  assert (data.num_users, data.num_items) == (NUM_USERS, NUM_ITEMS)
  train_items = np.concatenate([s["item"][:-2] for s in truth["sequences"]])
  # item_count = training interactions per item, row 0 (padding) = 0.
  expected_count = np.array([0] + [(train_items == i).sum()
                                   for i in range(1, NUM_ITEMS + 1)])
  np.testing.assert_array_equal(data.item_count, expected_count)
  np.testing.assert_array_equal(data.item_features["category"], truth["category"])
  np.testing.assert_array_equal(data.item_features["attribute"], truth["attribute"])
  assert sorted(data.item_features) == ["attribute", "category"]
  np.testing.assert_array_equal(data.user_features["gender"], truth["gender"])
  np.testing.assert_array_equal(
      data.user_features["activity"],
      [0] + [len(s["item"]) - 2 for s in truth["sequences"]])
  assert [f["name"] for f in data.schema["item_features"]] == ["category", "attribute"]
  assert data.vocab("item")[:2] == ["i1", "i2"] and len(data.vocab("user")) == NUM_USERS
  assert data.vocab("gender") == ["F", "M"]
  with open(os.path.join(tiny_dir, "manifest.json"), "rb") as f:
    assert data.fingerprint == hashlib.sha256(f.read()).hexdigest()
  assert [os.path.basename(p) for p in data.train_files] == [
      "train-%05d-of-00003.tfrecord" % k for k in range(3)]
  assert data.eval_file("test").endswith("test.tfrecord")


def test_train_sequences_equal_training_part(tiny_dir, truth):
  seqs = ProcessedDataset.load(tiny_dir).train_sequences()
  np.testing.assert_array_equal(seqs.users, np.arange(1, NUM_USERS + 1))
  for u, s in enumerate(truth["sequences"]):
    a, b = seqs.offsets[u], seqs.offsets[u + 1]
    np.testing.assert_array_equal(seqs.items[a:b], s["item"][:-2])
    np.testing.assert_array_equal(seqs.timestamps[a:b], s["timestamp"][:-2])
    np.testing.assert_array_equal(seqs.sessions[a:b], s["session"][:-2])


def test_train_items_per_user_are_distinct_sorted_training_items(tiny_dir, truth):
  offsets, items = ProcessedDataset.load(tiny_dir).train_items_per_user()
  assert offsets.shape == (NUM_USERS + 2,)
  assert offsets[0] == offsets[1] == 0   # user 0 (unknown) has none
  for u, s in enumerate(truth["sequences"], start=1):
    expected = sorted(set(s["item"][:-2].tolist()))
    assert items[offsets[u]:offsets[u + 1]].tolist() == expected


def _edit_manifest(directory, **changes):
  path = os.path.join(directory, "manifest.json")
  with open(path) as f:
    manifest = json.load(f)
  manifest.update(changes)
  with open(path, "w") as f:
    json.dump(manifest, f)


def test_clear_errors_name_the_file(tmp_path):
  with pytest.raises(ValueError, match="no such folder"):
    ProcessedDataset.load(str(tmp_path / "absent"))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(ValueError, match="not a processed dataset: .*manifest.json"):
    ProcessedDataset.load(str(empty))

  d = write_tiny_dataset(str(tmp_path / "v"), 3, 5)
  _edit_manifest(d, format_version=99)
  with pytest.raises(ValueError, match="manifest.json: unknown format_version 99"):
    ProcessedDataset.load(d)

  d = write_tiny_dataset(str(tmp_path / "shard"), 3, 5, num_shards=2)
  os.remove(os.path.join(d, "train-00001-of-00002.tfrecord"))
  with pytest.raises(ValueError, match="missing training shard.*train-00001-of-00002"):
    ProcessedDataset.load(d)

  d = write_tiny_dataset(str(tmp_path / "pickle"), 3, 5)
  np.savez(os.path.join(d, "catalog.npz"), item_count=np.zeros(6, np.int64),
           title=np.array([{"a": 1}] * 6, dtype=object))
  with pytest.raises(ValueError, match="catalog.npz: cannot be read without pickle"):
    ProcessedDataset.load(d)

  d = write_tiny_dataset(str(tmp_path / "rows"), 3, 5)
  np.savez(os.path.join(d, "catalog.npz"), item_count=np.zeros(6, np.int64),
           category=np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="catalog.npz: array 'category' has"):
    ProcessedDataset.load(d)

  data = ProcessedDataset.load(write_tiny_dataset(str(tmp_path / "ok"), 3, 5))
  with pytest.raises(ValueError, match="no evaluation split 'dev'.*'test', 'valid'"):
    data.eval_file("dev")
  with pytest.raises(ValueError, match="vocab/brand.txt: no vocabulary 'brand'"):
    data.vocab("brand")


def test_validation_in_train_appends_each_users_validation_event(tiny_dir, truth):
  """BERT4Rec's final fit: training = every event but the test one."""
  data = ProcessedDataset.load(tiny_dir)
  folded = data.with_validation_in_train()
  assert folded.validation_in_train and not data.validation_in_train
  seqs = folded.train_sequences()
  np.testing.assert_array_equal(seqs.users, np.arange(1, NUM_USERS + 1))
  new_sessions = 0
  for u, s in enumerate(truth["sequences"]):
    a, b = seqs.offsets[u], seqs.offsets[u + 1]
    np.testing.assert_array_equal(seqs.items[a:b], s["item"][:-1])
    np.testing.assert_array_equal(seqs.timestamps[a:b], s["timestamp"][:-1])
    # The generator's sessions (gap rule over the whole sequence).
    np.testing.assert_array_equal(seqs.sessions[a:b], s["session"][:-1])
    new_sessions += int(s["session"][-2] != s["session"][-3])
  assert new_sessions > 0   # the fixture exercises a validation event opening a session
  all_but_test = np.concatenate([s["item"][:-1] for s in truth["sequences"]])
  np.testing.assert_array_equal(folded.item_count,
                                np.bincount(all_but_test, minlength=NUM_ITEMS + 1))
  # Sampled evaluation negatives keep using the preprocessed counts.
  np.testing.assert_array_equal(folded.split_item_count, data.item_count)
  offsets, items = folded.train_items_per_user()
  for u, s in enumerate(truth["sequences"], start=1):
    assert items[offsets[u]:offsets[u + 1]].tolist() == sorted(set(s["item"][:-1].tolist()))
  # The original view is untouched; folding twice is folding once.
  a, b = data.train_sequences().offsets[:2]
  np.testing.assert_array_equal(data.train_sequences().items[a:b],
                                truth["sequences"][0]["item"][:-2])
  assert folded.with_validation_in_train() is folded


def test_validation_in_train_adds_a_row_for_a_user_without_training_events(tmp_path):
  from dcg_tf.data import records  # pylint: disable=g-import-not-at-top
  directory = write_tiny_dataset(str(tmp_path / "d"), NUM_USERS, NUM_ITEMS, SEED,
                                 num_shards=1)
  truth = tiny_arrays(NUM_USERS, NUM_ITEMS, SEED)
  seqs = ProcessedDataset.load(directory).train_sequences()
  # Rewrite the training shard without user 1 (a user held out of training).
  start = seqs.offsets[1]
  records.write_train_shards(
      directory, 1, seqs.users[1:], seqs.offsets[1:] - start, seqs.items[start:],
      seqs.timestamps[start:], seqs.sessions[start:],
      {"category": truth["category"][seqs.items[start:]].astype(np.int64)})
  data = ProcessedDataset.load(directory)
  assert data.train_sequences().users[0] == 2
  folded = data.with_validation_in_train().train_sequences()
  np.testing.assert_array_equal(folded.users, np.arange(1, NUM_USERS + 1))
  first = truth["sequences"][0]
  # Its row is the validation history followed by the validation target.
  np.testing.assert_array_equal(folded.items[folded.offsets[0]:folded.offsets[1]],
                                first["item"][:-1])
  counts = data.with_validation_in_train().item_count
  np.testing.assert_array_equal(
      counts - data.item_count,
      np.bincount(np.concatenate([first["item"][:-1]] + [
          s["item"][[-2]] for s in truth["sequences"][1:]]), minlength=NUM_ITEMS + 1))


def _events(seqs):
  """[(user, item, timestamp)] of every training event, in CSR order."""
  users = np.repeat(seqs.users, np.diff(seqs.offsets))
  return list(zip(users.tolist(), seqs.items.tolist(), seqs.timestamps.tolist()))


def test_train_fraction_keeps_a_uniform_ordered_subset(tiny_dir, truth):
  """SSL-CFM Table 3: a fixed uniform share of the training events."""
  data = ProcessedDataset.load(tiny_dir)
  full = _events(data.train_sequences())
  num_events = len(full)
  half = data.with_train_fraction(0.5, seed=1)
  kept = _events(half.train_sequences())
  assert len(kept) == round(0.5 * num_events)
  # Each user's kept events are a subsequence of the user's events, in order
  # (timestamps within a user strictly follow the generator's order).
  positions = [full.index(event) for event in kept]
  assert positions == sorted(positions)
  # Counts and rows follow the kept events; users left with none have no row.
  items = np.array([item for _, item, _ in kept])
  np.testing.assert_array_equal(half.item_count,
                                np.bincount(items, minlength=NUM_ITEMS + 1))
  assert half.train_sequences().users.tolist() == sorted({u for u, _, _ in kept})
  np.testing.assert_array_equal(half.split_item_count, data.item_count)
  assert half.train_fraction == 0.5 and data.train_fraction == 1.0
  # The same seed keeps the same events; the original view is untouched.
  assert _events(data.with_train_fraction(0.5, seed=1).train_sequences()) == kept
  assert len(_events(data.train_sequences())) == num_events
  assert data.with_train_fraction(1.0) is data
  with pytest.raises(ValueError, match="train_fraction"):
    data.with_train_fraction(0.0)


def test_train_fraction_draws_each_event_with_equal_probability(tiny_dir):
  # Over 400 seeds each event is kept with probability 0.25 (binomial: mean
  # 100, sd sqrt(400 * 0.25 * 0.75) = 8.7); chi-square over the events against
  # the critical value at p = 0.001 for E - 1 degrees of freedom.
  data = ProcessedDataset.load(tiny_dir)
  full = _events(data.train_sequences())
  index = {event: k for k, event in enumerate(full)}
  hits = np.zeros(len(full))
  for seed in range(400):
    for event in _events(data.with_train_fraction(0.25, seed=seed).train_sequences()):
      hits[index[event]] += 1
  expected = 400 * round(0.25 * len(full)) / len(full)
  chi2 = ((hits - expected) ** 2 / expected).sum()
  dof = len(full) - 1
  # Normal approximation of chi-square (mean dof, sd sqrt(2 dof)), z = 3.09
  # for p = 0.001, plus 3 for its right skew.
  critical = dof + 3.09 * np.sqrt(2 * dof) + 3.0
  assert chi2 < critical, (chi2, critical)
