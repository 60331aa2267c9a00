"""Degree buckets and impression histograms vs hand counts; Table 10 report; PNG."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.evaluation import debias
from tests.data import fixtures

# Items 1..7 with degrees 1, 2, 3, 4, 7, 8, 0.
ITEM_COUNT = np.array([0, 1, 2, 3, 4, 7, 8, 0])


def test_degree_buckets_hand_count():
  # bucket = 1 + floor(log2(degree)); degree 0 -> 0; padding row -> -1.
  # 1 -> 1; 2, 3 -> 2; 4, 7 -> 3; 8 -> 4.
  np.testing.assert_array_equal(debias.degree_buckets(ITEM_COUNT),
                                [-1, 1, 2, 2, 3, 3, 4, 0])
  assert debias.bucket_labels(5) == ["0", "1", "2-3", "4-7", "8-15"]
  # Powers of two near float rounding stay exact.
  big = np.array([0, 2**40 - 1, 2**40])
  np.testing.assert_array_equal(debias.degree_buckets(big)[1:], [40, 41])


def test_impression_and_training_histograms_hand_count():
  ranked = np.array([[6, 1, 7], [2, 3, 0]])
  # Top 2: items 6, 1, 2, 3 -> buckets 4, 1, 2, 2 -> [0, 1, 2, 0, 1].
  np.testing.assert_array_equal(debias.impression_histogram(ranked, ITEM_COUNT, 2),
                                [0, 1, 2, 0, 1])
  # Top 3 adds item 7 (degree 0, bucket 0); the padding 0 is not counted.
  np.testing.assert_array_equal(debias.impression_histogram(ranked, ITEM_COUNT, 3),
                                [1, 1, 2, 0, 1])
  # Training data: bucket 1: 1; bucket 2: 2 + 3; bucket 3: 4 + 7; bucket 4: 8.
  np.testing.assert_array_equal(debias.training_histogram(ITEM_COUNT),
                                [0, 1, 5, 11, 8])


def test_plot_writes_png(tmp_path):
  path = str(tmp_path / "hist.png")
  debias.plot_degree_histogram({"training data": [0, 1, 5, 11, 8],
                                "model": [1, 1, 2, 0, 1]}, path)
  with open(path, "rb") as f:
    header = f.read(8)
  assert header == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tiny"))
  fixtures.write_tiny_dataset(directory, num_users=40, num_items=30, seed=4)
  return ProcessedDataset.load(directory), fixtures.tiny_arrays(40, 30, seed=4)


def test_debias_report_matches_numpy_top10(tiny, tmp_path):
  data, truth = tiny
  rng = np.random.default_rng(0)
  item_emb = rng.normal(size=(30, 4)).astype(np.float32)
  table = tf.constant(np.concatenate([np.zeros((1, 4), np.float32), item_emb]))

  def last_item_tower(batch):
    # The user vector is the embedding of the most recent history item.
    last = tf.reduce_sum(tf.cast(batch["history_mask"], tf.int64), 1) - 1  # [B]
    return tf.gather(table, tf.gather(batch["history"], last, batch_dims=1))

  png = str(tmp_path / "figure4.png")
  report = debias.debias_report({"last": (last_item_tower, item_emb)}, data, k=10,
                                png_path=png)
  # Reference: NumPy top-10 of the same sampled sequences.
  top, clicks = [], []
  for batch in debias.training_user_sequences(data):
    hist, mask = batch["history"].numpy(), batch["history_mask"].numpy()
    last = hist[np.arange(len(hist)), mask.sum(1) - 1]
    scores = item_emb[last - 1] @ item_emb.T                          # [B, N]
    top.append(np.argsort(-scores, axis=1)[:, :10] + 1)
    clicks.append(batch["target"].numpy())
  top, clicks = np.concatenate(top), np.concatenate(clicks)
  # One sequence per training user with >= 2 training events (the fixture's
  # training part is the sequence minus its last two events).
  assert report["num_sequences"] == sum(len(s["item"]) - 2 >= 2
                                        for s in truth["sequences"]) == len(top)
  assert report["aggregate_diversity"]["last"] == np.unique(top).size
  assert report["aggregate_diversity"]["ground truth"] == np.unique(clicks).size
  buckets = debias.degree_buckets(data.item_count)
  expected = np.bincount(buckets[top.ravel()], minlength=buckets.max() + 1)
  assert report["histograms"]["last"] == expected.tolist()
  assert sum(report["histograms"]["training data"]) == int(data.item_count.sum())
  with open(png, "rb") as f:
    assert f.read(4) == b"\x89PNG"
