"""Real public data in ../shared/data: published statistics, the k-core property
and the leave-one-out protocol on the processed output."""

import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import preprocess as pp
from dcg_tf.data import records
from dcg_tf.data.loaders import LOADERS

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def _counts(raw):
  i = raw.interactions
  return i["user"].nunique(), i["item"].nunique(), len(i)


def test_published_counts(shared_data):
  beauty = LOADERS["sequence"]([shared_data / "amazon-beauty-bert4rec/beauty.txt.gz"])
  assert _counts(beauty) == (40226, 54542, 353962)        # BERT4Rec paper
  s3 = LOADERS["sequence"]([shared_data / "amazon-s3rec/Beauty.txt.gz",
                            shared_data / "amazon-s3rec/Beauty_item2attributes.json"])
  assert _counts(s3) == (22363, 12101, 198502)            # S3-Rec paper
  # README: 3.72 attributes per item.
  lengths = s3.item_features["attribute"].map(len)
  assert round(lengths.mean(), 2) == 3.72
  ml = LOADERS["movielens"]([shared_data / "movielens-latest-small/ml-latest-small.zip"])
  assert _counts(ml) == (610, 9724, 100836)
  assert ml.report.files[next(iter(ml.report.files))].read == 100836
  sci = LOADERS["recbole"]([shared_data / "amazon-scientific-unisrec"])
  assert _counts(sci)[:2] == (2928, 1585)
  assert _counts(sci)[2] == 19712                         # test history + target
  assert len(sci.item_features) == 1585                   # every item has text


def test_five_core_of_bert4rec_beauty(shared_data, tmp_path):
  path = shared_data / "amazon-beauty-bert4rec/beauty.txt.gz"
  out = str(tmp_path / "beauty5")
  m = pp.preprocess(LOADERS["sequence"]([path]), out, pp.PreprocessConfig(
      min_user_interactions=5, min_item_interactions=5), input_paths=[path])
  c = m["counts"]
  # The 5-core of BERT4Rec's Beauty is S3-Rec's Beauty (same source, 5-core).
  assert (c["users"], c["items"], c["interactions"]) == (22363, 12101, 198502)
  # 5-core property on the written output: rebuild every user's full sequence.
  users, items = [], []
  for f in m["files"]["train"]:
    for b in tf.data.TFRecordDataset(os.path.join(out, f)).batch(8192).map(
        records.parse_train_examples):
      users.append(np.repeat(b["user"].numpy(), b["item"].row_lengths().numpy()))
      items.append(b["item"].flat_values.numpy())
  for split in ("valid", "test"):
    for b in tf.data.TFRecordDataset(os.path.join(out, split + ".tfrecord")).batch(
        8192).map(records.parse_eval_examples):
      users.append(b["user"].numpy())
      items.append(b["target"].flat_values.numpy())
  u, i = np.concatenate(users), np.concatenate(items)
  assert u.size == 198502
  assert np.bincount(u)[1:].min() >= 5 and np.bincount(i)[1:].min() >= 5
  assert m["source"]["inputs"][0]["sha256"] == (
      "f07a9b8df89e6f9d1158ca76b1b9818680fb9701625c2ad80f6ef99446113f43")


def test_leave_one_out_on_beauty(shared_data, tmp_path):
  path = shared_data / "amazon-beauty-bert4rec/beauty.txt.gz"
  raw = LOADERS["sequence"]([path])
  out = str(tmp_path / "beauty")
  m = pp.preprocess(raw, out, pp.PreprocessConfig(), input_paths=[path])
  vocab_u = open(os.path.join(out, "vocab/user.txt")).read().splitlines()
  vocab_i = open(os.path.join(out, "vocab/item.txt")).read().splitlines()
  # Reference: each user's items in file order, straight from the text file.
  seqs = {}
  for u, i in zip(raw.interactions["user"], raw.interactions["item"]):
    seqs.setdefault(u, []).append(i)
  evals = {}
  for split in ("valid", "test"):
    rows = {}
    for b in tf.data.TFRecordDataset(os.path.join(out, split + ".tfrecord")).batch(
        8192).map(records.parse_eval_examples):
      for user, target, hist_len in zip(b["user"].numpy(), b["target"].to_list(),
                                        b["history"].row_lengths().numpy()):
        assert vocab_u[user - 1] not in rows
        rows[vocab_u[user - 1]] = ([vocab_i[t - 1] for t in target], int(hist_len))
    evals[split] = rows
  train = {}
  for f in m["files"]["train"]:
    for b in tf.data.TFRecordDataset(os.path.join(out, f)).batch(8192).map(
        records.parse_train_examples):
      for user, its in zip(b["user"].numpy(), b["item"].to_list()):
        train[vocab_u[user - 1]] = [vocab_i[t - 1] for t in its]
  assert len(evals["test"]) == len(evals["valid"]) == 40226
  for u, s in seqs.items():
    assert evals["test"][u] == ([s[-1]], len(s) - 1)      # exactly one target
    assert evals["valid"][u] == ([s[-2]], len(s) - 2)
    assert train[u] == s[:-2]                             # never the targets
