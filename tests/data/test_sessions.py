"""Sessions and co-occurrence counts (MicRec section 3.5) against hand-built
sessions and a brute-force count."""

import itertools

import numpy as np
import pytest

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.data.preprocess import sessions_of
from dcg_tf.data.sessions import cooccurrence, training_cooccurrence
from tests.data.fixtures import tiny_arrays, write_tiny_dataset


def _dense(graph):
  n = graph.num_items + 1
  out = np.zeros((n, n), np.int64)
  for a in range(n):
    ids, weights = graph.row(a)
    out[a, ids] = weights
  return out


def test_session_split_exactly_at_the_one_hour_gap():
  # One user: gaps 3600 s (same session), 3601 s (new session), 10 s, 7200 s.
  users = np.zeros(5, np.int64)
  ts = np.cumsum([0, 3600, 3601, 10, 7200]).astype(np.int64)
  assert sessions_of(users, ts, 3600).tolist() == [0, 0, 1, 1, 2]


def test_hand_built_sessions():
  # Sessions (items): s0 = [1, 2, 1, 3], s1 = [2, 3], s2 = [4], s3 = [1, 2].
  # Pairs once per session: s0 {1-2, 1-3, 2-3}, s1 {2-3}, s3 {1-2}, so
  # counts 1-2: 2, 1-3: 1, 2-3: 2; item 4 co-occurs with nothing.
  items = np.array([1, 2, 1, 3, 2, 3, 4, 1, 2])
  groups = np.array([0, 0, 0, 0, 1, 1, 2, 3, 3])
  dense = _dense(cooccurrence(items, groups, num_items=4))
  expected = np.zeros((5, 5), np.int64)
  for (a, b), c in {(1, 2): 2, (1, 3): 1, (2, 3): 2}.items():
    expected[a, b] = expected[b, a] = c
  np.testing.assert_array_equal(dense, expected)


def test_sliding_window_counts_pairs_of_positions():
  # Sequence [1, 2, 3, 1] with window 2 (neighbours only): 1-2, 2-3, 3-1.
  # Window 3: also positions (0, 2) 1-3 and (1, 3) 2-1: 1-2: 2, 2-3: 1, 1-3: 2.
  items = np.array([1, 2, 3, 1])
  groups = np.zeros(4, np.int64)
  d2 = _dense(cooccurrence(items, groups, 3, window=2))
  assert (d2[1, 2], d2[2, 3], d2[1, 3]) == (1, 1, 1)
  d3 = _dense(cooccurrence(items, groups, 3, window=3))
  assert (d3[1, 2], d3[2, 3], d3[1, 3]) == (2, 1, 2)
  np.testing.assert_array_equal(d3, d3.T)


def test_random_sessions_against_brute_force_and_small_chunks():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 9, size=40)
  groups = np.repeat(np.arange(40), lengths)
  items = rng.integers(1, 13, size=groups.size)
  expected = np.zeros((13, 13), np.int64)
  for g in range(40):
    members = set(items[groups == g].tolist())
    for a, b in itertools.permutations(members, 2):
      expected[a, b] += 1
  graph = cooccurrence(items, groups, 12, chunk_pairs=7)   # many merges
  np.testing.assert_array_equal(_dense(graph), expected)
  assert np.all(np.diff(graph.keys()) > 0)                   # sorted, distinct


@pytest.mark.parametrize("has_time", [True, False])
def test_training_cooccurrence_of_a_dataset(tmp_path, has_time):
  path = write_tiny_dataset(tmp_path, num_users=6, num_items=9)
  data = ProcessedDataset.load(path)
  data.manifest["has_time"] = has_time
  truth = tiny_arrays(6, 9)["sequences"]
  expected = np.zeros((10, 10), np.int64)
  for seq in truth:
    items, sessions = seq["item"][:-2], seq["session"][:-2]   # training part
    if has_time:
      for s in np.unique(sessions):
        members = set(items[sessions == s].tolist())
        for a, b in itertools.permutations(members, 2):
          expected[a, b] += 1
    else:
      for p, q in itertools.combinations(range(items.size), 2):
        if q - p < 10 and items[p] != items[q]:
          expected[items[p], items[q]] += 1
          expected[items[q], items[p]] += 1
  np.testing.assert_array_equal(_dense(training_cooccurrence(data)), expected)


def _brute_force(items, groups, num_items, window):
  """Dense counts by enumerating every pair of positions of every group."""
  expected = np.zeros((num_items + 1, num_items + 1), np.int64)
  for g in np.unique(groups):
    members = items[groups == g]
    if window is None:
      for a, b in itertools.permutations(set(members.tolist()), 2):
        expected[a, b] += 1
    else:
      for p, q in itertools.combinations(range(members.size), 2):
        if q - p < window and members[p] != members[q]:
          expected[members[p], members[q]] += 1
          expected[members[q], members[p]] += 1
  return expected


@pytest.mark.parametrize("window", [None, 2, 4])
def test_every_chunk_size_gives_the_same_counts(window):
  # Chunks of 1 and 3 pairs split one offset's pairs over many merges (the
  # bound on memory); 1 << 23 counts everything in one merge.
  rng = np.random.default_rng(3)
  lengths = rng.integers(1, 12, size=30)
  groups = np.repeat(np.arange(30), lengths)
  items = rng.integers(1, 10, size=groups.size)
  expected = _brute_force(items, groups, 9, window)
  for chunk in (1, 3, 1 << 23):
    graph = cooccurrence(items, groups, 9, window=window, chunk_pairs=chunk)
    np.testing.assert_array_equal(_dense(graph), expected)
    assert graph.weights.dtype == np.int64
    for a in range(10):                                  # sorted rows, no self
      ids, _ = graph.row(a)
      assert np.all(np.diff(ids) > 0) and a not in ids


def test_item_without_partners_and_empty_input():
  # Item 3 only ever appears alone; an empty input gives an empty graph.
  graph = cooccurrence(np.array([1, 2, 3, 1]), np.array([0, 0, 1, 2]), 4)
  assert graph.row(3)[0].size == 0 and graph.row(4)[0].size == 0
  assert graph.row(1)[0].tolist() == [2] and graph.row(2)[1].tolist() == [1]
  empty = cooccurrence(np.zeros(0, np.int64), np.zeros(0, np.int64), 5)
  assert empty.nnz == 0 and empty.indptr.tolist() == [0] * 7
