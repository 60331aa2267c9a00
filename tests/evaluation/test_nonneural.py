"""MostPopular and the first-order transition model vs a plain-Python reference."""

import collections
import os

import numpy as np
import pytest

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.evaluation import nonneural
from tests.data import fixtures

U, N = 40, 15


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  directory = fixtures.write_tiny_dataset(str(tmp_path_factory.mktemp("nn")),
                                          num_users=U, num_items=N, seed=3)
  return ProcessedDataset.load(directory), fixtures.tiny_arrays(U, N, seed=3)


def _reference_ranking(truth, baseline, split, depth):
  """Lists built by sorting (transition count, popularity, -index) by hand."""
  train = [s["item"][:-2] for s in truth["sequences"]]
  popularity = collections.Counter(i for seq in train for i in seq)
  follows = collections.Counter(
      (int(a), int(b)) for seq in train for a, b in zip(seq[:-1], seq[1:]))
  cut = -2 if split == "valid" else -1
  ranked = []
  for seq, train_seq in zip(truth["sequences"], train):
    history, target = seq["item"][:cut], int(seq["item"][cut])
    earlier = (set(train_seq.tolist()) | set(history.tolist())) - {target}
    last = int(history[-1])
    def key(i, last=last):
      count = follows[(last, i)] if baseline == "transition" else 0
      return (-count, -popularity[i], i)
    ranked.append(sorted((i for i in range(1, N + 1) if i not in earlier), key=key)[:depth])
  return ranked


@pytest.mark.parametrize("baseline", nonneural.BASELINES)
@pytest.mark.parametrize("split", ["valid", "test"])
def test_rankings_match_the_reference(tiny, baseline, split):
  data, truth = tiny
  from dcg_tf.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  users, histories, targets = evaluator.read_eval_users(data, split)
  earlier = evaluator.earlier_items(data, users, histories)
  exclude = [np.setdiff1d(e, t[t > 0]) for e, t in zip(earlier, targets)]
  last = np.array([h[-1] for h in histories])
  transitions = nonneural.TransitionCounts(data.train_sequences(), data.num_items)
  ranked = nonneural.rank_users(baseline, data, last, exclude, 10, transitions)
  reference = _reference_ranking(truth, baseline, split, 10)
  for user, row, expected in zip(users, ranked, reference):
    row = [int(i) for i in row if i > 0]
    assert row == expected, (user, row, expected)


def test_transition_counts_hand_worked():
  # Users [1 2 1 2] and [2 1 3]: pairs 1->2 (x2), 2->1 (x2), 1->3 (x1); the
  # boundary pair 2 -> 2 (end of user 1, start of user 2) is not a transition.
  seqs = collections.namedtuple("S", "offsets items")(
      np.array([0, 4, 7]), np.array([1, 2, 1, 2, 2, 1, 3]))
  counts = nonneural.TransitionCounts(seqs, num_items=3)
  row, nxt, count = counts.rows(np.array([1, 2, 3]))
  got = sorted(zip(row.tolist(), nxt.tolist(), count.tolist()))
  assert got == [(0, 2, 2.0), (0, 3, 1.0), (1, 1, 2.0)]


def test_evaluate_baseline_hit_rate_matches_reference(tiny):
  data, truth = tiny
  results = nonneural.evaluate_baseline("transition", data, "test", ks=(1, 5, 10))
  reference = _reference_ranking(truth, "transition", "test", 10)
  targets = [int(s["item"][-1]) for s in truth["sequences"]]
  for k in (1, 5, 10):
    expected = np.mean([t in r[:k] for r, t in zip(reference, targets)])
    assert results["HR@%d" % k] == pytest.approx(expected)
  assert results["num_users"] == U


def test_most_popular_under_uniform100_matches_reference(tmp_path):
  # PCL-AISL Table 1's MostPopular row: the test target against the saved 100
  # uniform negatives, ranked by training count; ties count against it.
  directory = fixtures.write_tiny_dataset(str(tmp_path / "d"), num_users=30,
                                          num_items=130, seed=7)
  data, truth = ProcessedDataset.load(directory), fixtures.tiny_arrays(30, 130, seed=7)
  got = nonneural.evaluate_baseline("most_popular", data, "test", ks=(10, 20),
                                    protocol="uniform100")
  popularity = collections.Counter(i for s in truth["sequences"]
                                   for i in s["item"][:-2].tolist())
  table = np.load(os.path.join(directory, "candidates_test_uniform100.npy"))
  ranks = []
  for row in table:
    target = int(truth["sequences"][row[0] - 1]["item"][-1])
    ranks.append(sum(popularity[int(n)] >= popularity[target] for n in row[1:]))
  assert got["HR@10"] == pytest.approx(np.mean(np.array(ranks) < 10))
  assert got["HR@20"] == pytest.approx(np.mean(np.array(ranks) < 20))
  with pytest.raises(ValueError, match="transition baseline is scored under "
                     "protocol full only"):
    nonneural.evaluate_baseline("transition", data, "test", protocol="uniform100")
