"""AINPU (PCL-AISL section 3.3): mean active interests, overall and by activity."""

import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.evaluation import evaluator
from dcg_tf.evaluation import interest_activity
from tests.data import fixtures

NUM_USERS, NUM_ITEMS, DIM, K = 40, 130, 8, 4


def test_report_on_a_hand_built_mask():
  # K_u per user 1, 4, 2, 4, 3, 1; training events 0, 1, 2, 3, 8, 9.
  num = [1, 4, 2, 4, 3, 1]
  mask = np.arange(K)[None, :] < np.array(num)[:, None]             # [6, 4]
  report = interest_activity.interest_activity_report(mask, [0, 1, 2, 3, 8, 9])
  # AINPU = (1 + 4 + 2 + 4 + 3 + 1) / 6 = 15 / 6 = 2.5.
  assert report["AINPU"] == pytest.approx(2.5)
  # Buckets: 0 -> {0}: K_u 1; 1 -> {1}: 4; 2 -> {2, 3}: (2 + 4) / 2 = 3;
  # 4 -> {8..15}: (3 + 1) / 2 = 2 (bucket 3, 4-7, is empty and left out).
  assert report["AINPU_by_activity"] == [
      {"bucket": 0, "activity_min": 0, "activity_max": 0, "num_users": 1,
       "mean_interests": 1.0},
      {"bucket": 1, "activity_min": 1, "activity_max": 1, "num_users": 1,
       "mean_interests": 4.0},
      {"bucket": 2, "activity_min": 2, "activity_max": 3, "num_users": 2,
       "mean_interests": 3.0},
      {"bucket": 4, "activity_min": 8, "activity_max": 15, "num_users": 2,
       "mean_interests": 2.0}]


def test_log2_buckets_at_the_edges():
  got = interest_activity.activity_bucket([0, 1, 2, 3, 4, 7, 8, 1023, 1024])
  np.testing.assert_array_equal(got, [0, 1, 2, 2, 3, 3, 4, 10, 11])


def test_mismatched_rows_are_an_error():
  with pytest.raises(ValueError, match="3 activity counts for 2 mask rows"):
    interest_activity.interest_activity_report(np.ones((2, K), bool), [1, 2, 3])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tiny"))
  fixtures.write_tiny_dataset(directory, num_users=NUM_USERS, num_items=NUM_ITEMS,
                              seed=4)
  truth = fixtures.tiny_arrays(NUM_USERS, NUM_ITEMS, seed=4)
  return ProcessedDataset.load(directory), truth


def _tower(batch):
  """K random unit vectors; user u gets K_u = 1 + u % 4 active slots."""
  users = tf.cast(batch["user"], tf.int64)                           # [B]
  vectors = tf.random.stateless_normal(
      tf.concat([tf.shape(users), [K, DIM]], 0), seed=[1, 2])        # [B, K, D]
  num = 1 + users % K                                                # [B]
  return vectors, tf.range(K, dtype=tf.int64)[None, :] < num[:, None]


@pytest.mark.parametrize("protocol", ["full", "uniform100"])
def test_evaluate_reports_ainpu_per_activity_bucket(tiny, tmp_path, protocol):
  data, truth = tiny
  item_emb = np.random.default_rng(0).normal(size=(NUM_ITEMS, DIM)).astype(np.float32)
  got = evaluator.evaluate(_tower, item_emb, data, protocol=protocol, ks=(10,),
                           candidates_dir=str(tmp_path), progress=False)
  # Reference from the generator's sequences: user u (1-based) has
  # len(seq) - 2 training events (the last two are valid / test targets).
  users = np.arange(1, NUM_USERS + 1)
  num = 1 + users % K
  events = np.array([len(s["item"]) - 2 for s in truth["sequences"]])
  assert got["AINPU"] == pytest.approx(num.mean())
  expected = {}
  for n, a in zip(num, events):
    b = int(np.floor(np.log2(a))) + 1 if a > 0 else 0
    expected.setdefault(b, []).append(n)
  assert [r["bucket"] for r in got["AINPU_by_activity"]] == sorted(expected)
  for row in got["AINPU_by_activity"]:
    assert row["num_users"] == len(expected[row["bucket"]])
    assert row["mean_interests"] == pytest.approx(np.mean(expected[row["bucket"]]))
  if protocol == "uniform100":
    # Table 1's negatives: never an item of the user's whole sequence (training
    # items, the validation target, the test target).
    table = np.load(os.path.join(tmp_path, "candidates_test_uniform100.npy"))
    for row in table:
      seen = set(truth["sequences"][row[0] - 1]["item"].tolist())
      assert len(set(row[1:].tolist())) == 100 and not seen & set(row[1:].tolist())


def test_single_vector_tower_has_no_ainpu(tiny):
  data, _ = tiny
  item_emb = np.random.default_rng(0).normal(size=(NUM_ITEMS, DIM)).astype(np.float32)
  got = evaluator.evaluate(lambda b: _tower(b)[0][:, 0], item_emb, data, ks=(10,),
                           progress=False)
  assert "AINPU" not in got and "AINPU_by_activity" not in got


def test_plot_writes_a_png(tmp_path):
  report = interest_activity.interest_activity_report(
      np.arange(K)[None, :] < np.array([[1], [2], [4]]), [1, 5, 40])
  path = interest_activity.plot_interest_activity(
      {"pcl_aisl": report}, str(tmp_path / "ainpu.png"), max_interests=K)
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
