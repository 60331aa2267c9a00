"""tf.data pipelines against NumPy references built from the ground truth."""

import collections

import numpy as np
import pytest

from dcg_tf.data import pipeline
from dcg_tf.data import records
from dcg_tf.data.dataset import ProcessedDataset
from tests.data.fixtures import tiny_arrays
from tests.data.fixtures import write_tiny_dataset

NUM_USERS, NUM_ITEMS, SEED = 10, 12, 5
MAX_LEN = 4   # shorter than most histories, so truncation is exercised


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  path = write_tiny_dataset(str(tmp_path_factory.mktemp("tiny")), NUM_USERS,
                            NUM_ITEMS, SEED, num_shards=2)
  return ProcessedDataset.load(path)


@pytest.fixture(scope="module")
def train_truth():
  """Training part (all but the last two events) of each user u = 1..U."""
  seqs = tiny_arrays(NUM_USERS, NUM_ITEMS, SEED)["sequences"]
  return {u: {k: v[:-2] for k, v in s.items()} for u, s in enumerate(seqs, start=1)}


def _left_aligned(values, max_len):
  """Most recent max_len values, oldest first, 0-padded at the end, and mask."""
  kept = np.asarray(values)[-max_len:] if len(values) else np.zeros(0, np.int64)
  padded = np.zeros(max_len, np.int64)
  padded[:kept.size] = kept
  return padded, np.arange(max_len) < kept.size


def _reference_example(user, seq, cut, max_len):
  history, mask = _left_aligned(seq["item"][:cut], max_len)
  return {"user": user, "history": history, "history_mask": mask,
          "history_timestamp": _left_aligned(seq["timestamp"][:cut], max_len)[0],
          "history_session": _left_aligned(seq["session"][:cut], max_len)[0],
          "target": seq["item"][cut], "target_timestamp": seq["timestamp"][cut]}


def _rows(dataset):
  """Every example of a dataset as a list of dicts of NumPy values."""
  out = []
  for batch in dataset:
    batch = {k: v.numpy() for k, v in batch.items()}
    for r in range(len(batch["user"])):
      out.append({k: v[r] for k, v in batch.items()})
  return out


def _key(example):
  return tuple(np.concatenate([np.ravel(np.asarray(example[k], np.int64))
                               for k in sorted(example)]).tolist())


def test_all_prefixes_equal_every_history_target_pair(data, train_truth):
  expected = [_reference_example(u, s, c, MAX_LEN)
              for u, s in train_truth.items() for c in range(1, len(s["item"]))]
  ds = pipeline.train_dataset(data, 7, MAX_LEN, seed=0, all_prefixes=True,
                              shuffle=False, drop_remainder=False)
  got = _rows(ds)
  # Unshuffled: user order, then cut order; every field matches the reference.
  assert len(got) == len(expected) == sum(len(s["item"]) - 1
                                          for s in train_truth.values())
  for g, e in zip(got, expected):
    assert g.keys() == e.keys()
    for k in e:
      np.testing.assert_array_equal(g[k], e[k], err_msg=k)
  shuffled = _rows(pipeline.train_dataset(data, 7, MAX_LEN, seed=0, all_prefixes=True,
                                          drop_remainder=False))
  assert sorted(map(_key, shuffled)) == sorted(map(_key, expected))
  assert [_key(x) for x in shuffled] != [_key(x) for x in expected]


def test_one_random_cut_per_eligible_user_per_epoch(data, train_truth):
  eligible = sorted(u for u, s in train_truth.items() if len(s["item"]) >= 2)
  assert len(eligible) < NUM_USERS   # the fixture has users with one training event
  for epoch in range(3):
    got = _rows(pipeline.train_dataset(data, 3, MAX_LEN, seed=1, epoch=epoch,
                                       drop_remainder=False))
    assert sorted(int(g["user"]) for g in got) == eligible
    for g in got:
      seq = train_truth[int(g["user"])]
      # Timestamps increase within a user, so the target timestamp fixes the cut.
      cut = int(np.flatnonzero(seq["timestamp"] == g["target_timestamp"])[0])
      assert 1 <= cut <= len(seq["item"]) - 1
      e = _reference_example(int(g["user"]), seq, cut, MAX_LEN)
      for k in e:
        np.testing.assert_array_equal(g[k], e[k], err_msg=k)


def test_last_cut_gives_each_user_its_last_training_event(data, train_truth):
  expected = [_reference_example(u, s, len(s["item"]) - 1, MAX_LEN)
              for u, s in train_truth.items() if len(s["item"]) >= 2]
  got = _rows(pipeline.train_dataset(data, 3, MAX_LEN, seed=0, last_cut=True,
                                     shuffle=False, drop_remainder=False))
  assert len(got) == len(expected)
  for g, e in zip(got, expected):
    for k in e:
      np.testing.assert_array_equal(g[k], e[k], err_msg=k)
  with pytest.raises(ValueError, match="exclude each other"):
    pipeline.train_dataset(data, 3, MAX_LEN, seed=0, last_cut=True, all_prefixes=True)


def test_cut_points_are_uniform_over_valid_positions(data, train_truth):
  # Over 60 epochs, each user's cut is uniform on 1..n-1 (never 0, never n).
  epochs = 60
  ds = pipeline.train_dataset(data, 64, MAX_LEN, seed=2, repeat=True,
                              drop_remainder=False)
  eligible = [u for u, s in train_truth.items() if len(s["item"]) >= 2]
  cuts = collections.defaultdict(list)
  for g in _rows(ds.take(epochs)):   # one batch (< 64 users) per epoch
    seq = train_truth[int(g["user"])]
    cuts[int(g["user"])].append(
        int(np.flatnonzero(seq["timestamp"] == g["target_timestamp"])[0]))
  assert sorted(cuts) == sorted(eligible)
  chi2, dof = 0.0, 0
  for u, cs in cuts.items():
    n = len(train_truth[u]["item"])
    counts = np.bincount(cs, minlength=n)
    assert counts[0] == 0 and counts.sum() == epochs and len(counts) == n
    expected = epochs / (n - 1)
    chi2 += (((counts[1:] - expected) ** 2) / expected).sum()
    dof += n - 2
  # Pearson chi-square over all users: mean dof, s.d. sqrt(2 dof); 5 s.d. bound.
  assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)


def test_deterministic_in_seed_epoch_and_repeat_follows_epochs(data, train_truth):
  def batches(**kwargs):
    ds = pipeline.train_dataset(data, 2, MAX_LEN, drop_remainder=True, **kwargs)
    return [_key(r) for r in _rows(ds)]
  first = batches(seed=7, epoch=0)
  assert first == batches(seed=7, epoch=0)
  assert first != batches(seed=7, epoch=1)
  assert first != batches(seed=8, epoch=0)
  # E eligible users, batch 2, drop_remainder: E // 2 batches per epoch.
  num_batches = sum(len(s["item"]) >= 2 for s in train_truth.values()) // 2
  assert len(first) == 2 * num_batches
  repeated = pipeline.train_dataset(data, 2, MAX_LEN, seed=7, repeat=True)
  got = [_key(r) for r in _rows(repeated.take(2 * num_batches))]
  assert got == first + batches(seed=7, epoch=1)


def test_user_features_are_emitted(data):
  batch = next(iter(pipeline.train_dataset(data, 4, MAX_LEN, seed=0,
                                           user_features=("gender", "activity"))))
  users = batch["user"].numpy()
  np.testing.assert_array_equal(batch["user_gender"].numpy(),
                                data.user_features["gender"][users])
  np.testing.assert_array_equal(batch["user_activity"].numpy(),
                                data.user_features["activity"][users])
  with pytest.raises(ValueError, match="no user feature 'age'"):
    pipeline.train_dataset(data, 4, MAX_LEN, seed=0, user_features=("age",))


@pytest.mark.parametrize("split, cut", [("valid", -2), ("test", -1)])
def test_eval_dataset_one_row_per_user(data, split, cut):
  seqs = tiny_arrays(NUM_USERS, NUM_ITEMS, SEED)["sequences"]
  got = _rows(pipeline.eval_dataset(data, split, 4, MAX_LEN))
  assert [int(g["user"]) for g in got] == list(range(1, NUM_USERS + 1))
  for g, s in zip(got, seqs):
    history, mask = _left_aligned(s["item"][:cut], MAX_LEN)
    np.testing.assert_array_equal(g["history"], history)
    np.testing.assert_array_equal(g["history_mask"], mask)
    np.testing.assert_array_equal(g["history_timestamp"],
                                  _left_aligned(s["timestamp"][:cut], MAX_LEN)[0])
    np.testing.assert_array_equal(g["history_session"],
                                  _left_aligned(s["session"][:cut], MAX_LEN)[0])
    np.testing.assert_array_equal(g["targets"], [s["item"][cut]])
    assert g["target_timestamp"] == s["timestamp"][cut]


def test_eval_dataset_pads_several_targets(tmp_path):
  # A "time"-style split file: user 3 has targets [5, 6, 7], user 4 has [8].
  directory = write_tiny_dataset(str(tmp_path), 4, 9)
  records.write_eval_records(str(tmp_path / "multi.tfrecord"), [3, 4], [0, 1, 2],
                             [1, 2], [10, 20], [0, 0], [0, 3, 4], [5, 6, 7, 8],
                             [30, 31, 32, 40])
  data = ProcessedDataset.load(directory)
  batch = next(iter(pipeline.eval_dataset(data, "multi", 8, 3)))
  np.testing.assert_array_equal(batch["targets"].numpy(), [[5, 6, 7], [8, 0, 0]])
  np.testing.assert_array_equal(batch["target_timestamp"].numpy(), [30, 40])
  np.testing.assert_array_equal(batch["history"].numpy(), [[1, 0, 0], [2, 0, 0]])
  np.testing.assert_array_equal(batch["history_mask"].numpy(),
                                [[True, False, False], [True, False, False]])
  fixed = next(iter(pipeline.eval_dataset(data, "multi", 8, 3, max_targets=4)))
  np.testing.assert_array_equal(fixed["targets"].numpy(),
                                [[5, 6, 7, 0], [8, 0, 0, 0]])


def test_uniform_item_stream_is_uniform_over_the_catalog(data):
  """SSL-CFM's uniform item batch: ids 1..N equally likely, never 0 (padding)."""
  draws = np.concatenate([b["item"].numpy() for b in pipeline.item_dataset(
      data, 500, "uniform", seed=3, epoch=1).take(24)])               # 12000 draws
  counts = np.bincount(draws, minlength=NUM_ITEMS + 1)
  assert counts.size == NUM_ITEMS + 1 and counts[0] == 0
  # Pearson's chi-square against 12000 / 12 = 1000 per item; with N - 1 = 11
  # degrees of freedom P(chi2 > 31.26) = 0.001 (table value).
  expected = draws.size / NUM_ITEMS
  chi2 = ((counts[1:] - expected) ** 2 / expected).sum()
  assert chi2 < 31.26, counts


def _item_draws(data, seed, epoch, batches=6, skip=0):
  ds = pipeline.item_dataset(data, 8, "uniform", seed=seed, epoch=epoch)
  return np.stack([b["item"].numpy() for b in ds.skip(skip).take(batches)])  # [K, B]


def test_item_stream_is_a_pure_function_of_seed_and_epoch(data):
  first = _item_draws(data, seed=3, epoch=2)
  # A second construction (as a resumed run makes it) gives the same batches,
  # and skipping k batches lands on batch k of the uninterrupted stream.
  np.testing.assert_array_equal(_item_draws(data, seed=3, epoch=2), first)
  np.testing.assert_array_equal(_item_draws(data, seed=3, epoch=2, batches=2, skip=4),
                                first[4:])
  # Another epoch or seed draws other items (8 * 6 draws from 12 items: equal
  # by chance with probability 12^-48); batches within the stream differ too.
  assert not np.array_equal(_item_draws(data, seed=3, epoch=3), first)
  assert not np.array_equal(_item_draws(data, seed=4, epoch=2), first)
  assert not np.array_equal(first[0], first[1])


def test_popularity_item_batches_follow_item_count(data):
  ds = pipeline.item_dataset(data, 1000, "popularity", seed=4)
  draws = np.concatenate([b["item"].numpy() for b in ds.take(40)])
  p = data.item_count / data.item_count.sum()
  counts = np.bincount(draws, minlength=NUM_ITEMS + 1)
  sd = np.sqrt(draws.size * p * (1 - p))
  assert np.all(np.abs(counts - draws.size * p) <= 5 * sd + 1e-9)
  assert np.all(counts[data.item_count == 0] == 0)
  again = np.concatenate([b["item"].numpy() for b in ds.take(40)])
  np.testing.assert_array_equal(draws, again)
  other = next(iter(pipeline.item_dataset(data, 1000, "popularity", seed=5)))
  assert not np.array_equal(other["item"].numpy(), draws[:1000])


def test_bad_arguments(data):
  with pytest.raises(ValueError, match="sampling must be"):
    pipeline.item_dataset(data, 4, "zipf")
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    pipeline.train_dataset(data, 0, MAX_LEN, seed=0)
  with pytest.raises(ValueError, match="no evaluation split 'dev'"):
    pipeline.eval_dataset(data, "dev", 4, MAX_LEN)
