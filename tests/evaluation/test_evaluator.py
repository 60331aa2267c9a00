"""evaluate() on a tiny processed dataset against a brute-force NumPy evaluation."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.evaluation import evaluator
from tests.data import fixtures

NUM_USERS, NUM_ITEMS, DIM = 150, 130, 8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("tiny"))
  fixtures.write_tiny_dataset(directory, num_users=NUM_USERS, num_items=NUM_ITEMS,
                              seed=3)
  truth = fixtures.tiny_arrays(NUM_USERS, NUM_ITEMS, seed=3)
  rng = np.random.default_rng(11)
  item_emb = rng.normal(size=(NUM_ITEMS, DIM)).astype(np.float32)
  return ProcessedDataset.load(directory), truth, item_emb


def _mean_tower(item_emb):
  """A hand-made user tower: the mean embedding of the (unpadded) history."""
  table = tf.constant(np.concatenate([np.zeros((1, DIM), np.float32), item_emb]))

  def tower(batch):
    emb = tf.gather(table, batch["history"])                          # [B, L, D]
    mask = tf.cast(batch["history_mask"], tf.float32)[:, :, None]     # [B, L, 1]
    return tf.reduce_sum(emb * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
  return tower


def _reference(truth, item_emb, ks, exclude_earlier=True, interests=None):
  """Brute force from the ground-truth sequences: last event = test target."""
  hr = {k: [] for k in ks}
  ndcg = {k: [] for k in ks}
  mrr = []
  for seq in truth["sequences"]:
    items = seq["item"]
    history, target = items[:-1], items[-1]
    user = item_emb[history - 1].mean(axis=0)
    queries = [user] if interests is None else interests(user)
    scores = np.max([item_emb @ q for q in queries], axis=0)           # [N]
    if exclude_earlier:
      drop = np.setdiff1d(history, [target])
      scores[drop - 1] = -np.inf
    rank = int((scores > scores[target - 1]).sum())                   # 0-based
    for k in ks:
      hr[k].append(float(rank < k))
      ndcg[k].append(1 / math.log2(rank + 2) if rank < k else 0.0)
    # MRR counts the first hit within the ranked depth, the largest K.
    mrr.append(1 / (rank + 1) if rank < max(ks) else 0.0)
  out = {"MRR": np.mean(mrr)}
  for k in ks:
    out["HR@%d" % k] = np.mean(hr[k])
    out["NDCG@%d" % k] = np.mean(ndcg[k])
  return out


@pytest.mark.parametrize("exclude_train", [True, False])
def test_full_protocol_matches_brute_force(tiny, exclude_train):
  data, truth, item_emb = tiny
  ks = (1, 5, 10, 50)
  got = evaluator.evaluate(_mean_tower(item_emb), item_emb, data, split="test",
                           protocol="full", ks=ks, exclude_train=exclude_train,
                           max_len=50, batch_size=7, progress=False)
  expected = _reference(truth, item_emb, ks, exclude_earlier=exclude_train)
  for key, value in expected.items():
    assert got[key] == pytest.approx(value, abs=1e-6), key
  assert got["num_users"] == NUM_USERS
  # One target per user: Recall@K equals HR@K.
  assert got["Recall@10"] == pytest.approx(got["HR@10"])
  assert 0 < got["coverage@10"] <= NUM_ITEMS and 0 < got["popularity@10"] <= 1


def test_multi_interest_tower_matches_brute_force(tiny):
  data, truth, item_emb = tiny
  base = _mean_tower(item_emb)
  flip = np.ones(DIM, np.float32)
  flip[: DIM // 2] = -1

  def two_interests(batch):
    v = base(batch)                                                   # [B, D]
    vectors = tf.stack([v, v * flip], axis=1)                         # [B, 2, D]
    return vectors, tf.ones(tf.shape(vectors)[:2], tf.bool)

  ks = (1, 10)
  got = evaluator.evaluate(two_interests, item_emb, data, protocol="full", ks=ks,
                           progress=False)
  expected = _reference(truth, item_emb, ks, interests=lambda u: [u, u * flip])
  for key, value in expected.items():
    assert got[key] == pytest.approx(value, abs=1e-6), key


def test_popular100_reuses_saved_candidates_and_matches_numpy_rank(tiny, tmp_path):
  data, truth, item_emb = tiny
  tower = _mean_tower(item_emb)
  ks = (1, 10)
  got = evaluator.evaluate(tower, item_emb, data, protocol="popular100", ks=ks,
                           candidates_dir=str(tmp_path), progress=False)
  table = np.load(os.path.join(tmp_path, "candidates_test_popular100.npy"),
                  allow_pickle=False)
  mtime = os.path.getmtime(os.path.join(tmp_path, "candidates_test_popular100.npy"))
  hits = []
  for row in table:
    seq = truth["sequences"][row[0] - 1]
    target, negatives = seq["item"][-1], row[1:]
    assert target not in negatives and not set(negatives) & set(seq["item"].tolist())
    user = item_emb[seq["item"][:-1] - 1].mean(axis=0)
    rank = int((item_emb[negatives - 1] @ user >= item_emb[target - 1] @ user).sum())
    hits.append(rank < 10)
  assert got["HR@10"] == pytest.approx(np.mean(hits), abs=1e-6)
  assert "HR@200" not in got                   # 101 candidates: K <= 101 only
  # Another "model" scores on the same file, which is not redrawn.
  evaluator.evaluate(lambda b: -tower(b), item_emb, data, protocol="popular100",
                     ks=ks, candidates_dir=str(tmp_path), progress=False)
  assert os.path.getmtime(os.path.join(tmp_path,
                                       "candidates_test_popular100.npy")) == mtime


def test_wrong_embedding_count_and_protocol_are_clear_errors(tiny):
  data, _, item_emb = tiny
  with pytest.raises(ValueError, match="129 item embeddings but the dataset"):
    evaluator.evaluate(_mean_tower(item_emb), item_emb[1:], data, progress=False)
  with pytest.raises(ValueError, match="unknown protocol 'popular50'"):
    evaluator.evaluate(_mean_tower(item_emb), item_emb, data, protocol="popular50")


def test_to_markdown_table():
  text = evaluator.to_markdown({"HR@1": 0.5, "HR@10": 0.75, "NDCG@10": 0.123456,
                                "coverage@10": 42, "MRR": 0.25, "num_users": 8})
  lines = text.splitlines()
  assert lines[0] == "| metric | @1 | @10 |"
  assert "| HR | 0.5000 | 0.7500 |" in lines
  assert "| NDCG |  | 0.1235 |" in lines
  assert "| coverage |  | 42 |" in lines
  assert "| MRR | 0.2500 |" in lines and "| num_users | 8 |" in lines
