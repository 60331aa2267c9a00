r"""Throughput of the tf.data pipelines (dcg_tf.data.pipeline) on synthetic data.

  python -m benchmarks.pipeline_benchmark [--num_users=100000] [--quick]

Writes a processed dataset of `num_users` synthetic users (power-law sequence
lengths, ~20 events per user on average) with `dcg_tf.data.records` into a
temporary folder, then measures:
  - records writing (users/s, events/s),
  - the first pass over the shards (`ProcessedDataset.train_sequences`),
  - `train_dataset` examples/s with history length `max_len` (one cut per user
    per epoch, and all prefixes),
  - `eval_dataset` and `item_dataset` rows/s.
Target (issue 2): >= 50,000 training examples/s with max_len 50 on 2 cores.
"""

import json
import os
import shutil
import tempfile
import time

from absl import app
from absl import flags

import dcg_tf  # noqa: F401  (Keras 2 before tensorflow)
import numpy as np
import tensorflow as tf

from dcg_tf.data import pipeline
from dcg_tf.data import records
from dcg_tf.data.dataset import ProcessedDataset

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_users", 100_000, "Synthetic users.")
flags.DEFINE_integer("num_items", 50_000, "Synthetic items.")
flags.DEFINE_integer("num_shards", 8, "Training shards.")
flags.DEFINE_integer("batch_size", 1024, "Batch size.")
flags.DEFINE_integer("max_len", 50, "History length.")
flags.DEFINE_integer("epochs", 3, "Epochs of train_dataset to time (after a warm-up).")
flags.DEFINE_bool("quick", False, "Smoke test: 5,000 users, 1 epoch.")
flags.DEFINE_integer("seed", 0, "Seed.")


def write_dataset(directory, num_users, num_items, num_shards, seed):
  """A processed dataset (design.md layout) with leave-one-out valid/test."""
  rng = np.random.default_rng(seed)
  # Lengths: 3 + Pareto-like tail, mean ~20, capped at 500.
  lengths = np.minimum(3 + (rng.pareto(1.5, num_users) * 9).astype(np.int64), 500)
  total = int(lengths.sum())
  popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
  items = 1 + rng.choice(num_items, size=total, p=popularity / popularity.sum())
  gaps = np.where(rng.random(total) < 0.2, 7200, 60) + rng.integers(0, 60, total)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  cum = np.cumsum(gaps)
  timestamps = 1_400_000_000 + cum - np.repeat(cum[offsets[:-1]], lengths)
  new_session = np.concatenate([[0], np.diff(timestamps) > 3600])
  new_session[offsets[:-1]] = 0
  csum = np.cumsum(new_session)
  sessions = csum - np.repeat(csum[offsets[:-1]], lengths)
  position = np.arange(total) - np.repeat(offsets[:-1], lengths)
  users = np.arange(1, num_users + 1)
  category = np.zeros(num_items + 1, np.int32)
  category[1:] = 1 + np.arange(num_items) % 100

  is_train = position < np.repeat(lengths - 2, lengths)
  train_offsets = np.concatenate([[0], np.cumsum(lengths - 2)])
  start = time.perf_counter()
  records.write_train_shards(directory, num_shards, users, train_offsets,
                             items[is_train], timestamps[is_train],
                             sessions[is_train],
                             {"category": category[items[is_train]].astype(np.int64)})
  write_s = time.perf_counter() - start
  for split, back in (("valid", 2), ("test", 1)):
    is_hist = position < np.repeat(lengths - back, lengths)
    is_target = position == np.repeat(lengths - back, lengths)
    records.write_eval_records(
        os.path.join(directory, split + ".tfrecord"), users,
        np.concatenate([[0], np.cumsum(lengths - back)]), items[is_hist],
        timestamps[is_hist], sessions[is_hist], np.arange(num_users + 1),
        items[is_target], timestamps[is_target])
  np.savez(os.path.join(directory, "catalog.npz"),
           item_count=np.bincount(items[is_train], minlength=num_items + 1),
           category=category)
  os.makedirs(os.path.join(directory, "vocab"))
  for name, count in (("user", num_users), ("item", num_items), ("category", 100)):
    with open(os.path.join(directory, "vocab", name + ".txt"), "w") as f:
      f.write("".join("%s%d\n" % (name, k) for k in range(1, count + 1)))
  with open(os.path.join(directory, "manifest.json"), "w") as f:
    json.dump({"format_version": records.FORMAT_VERSION,
               "schema": {"item_features": [{"name": "category", "kind": "single",
                                             "vocab_size": 100, "max_len": 1}],
                          "user_features": []}}, f)
  return write_s, int(train_offsets[-1])


def _rate(dataset, num_batches, count_key):
  """Rows/s over `num_batches` batches after one warm-up batch."""
  iterator = iter(dataset)
  next(iterator)
  rows = 0
  start = time.perf_counter()
  for _ in range(num_batches):
    try:
      batch = next(iterator)
    except StopIteration:
      break
    rows += int(batch[count_key].shape[0])
  return rows / (time.perf_counter() - start), rows


def main(argv):
  del argv
  num_users = 5_000 if FLAGS.quick else FLAGS.num_users
  epochs = 1 if FLAGS.quick else FLAGS.epochs
  directory = tempfile.mkdtemp(prefix="dcg_pipeline_bench_")
  try:
    write_s, train_events = write_dataset(directory, num_users, FLAGS.num_items,
                                          FLAGS.num_shards, FLAGS.seed)
    print("write_train_shards: %d users, %d events in %.2f s (%.0f users/s, "
          "%.0f events/s)" % (num_users, train_events, write_s,
                              num_users / write_s, train_events / write_s))
    data = ProcessedDataset.load(directory)
    start = time.perf_counter()
    seqs = data.train_sequences()
    read_s = time.perf_counter() - start
    print("first pass over %d shards: %.2f s (%.0f users/s)"
          % (len(data.train_files), read_s, seqs.users.size / read_s))

    bs, max_len = FLAGS.batch_size, FLAGS.max_len
    per_epoch = int((np.diff(seqs.offsets) >= 2).sum()) // bs
    ds = pipeline.train_dataset(data, bs, max_len, seed=FLAGS.seed, repeat=True)
    rate, rows = _rate(ds, per_epoch * epochs - 1, "target")
    print("train_dataset (one cut per user, max_len %d, batch %d): %.0f examples/s "
          "over %d examples" % (max_len, bs, rate, rows))
    ds = pipeline.train_dataset(data, bs, max_len, seed=FLAGS.seed, all_prefixes=True)
    rate, rows = _rate(ds, 20 if FLAGS.quick else 300, "target")
    print("train_dataset (all prefixes): %.0f examples/s over %d examples"
          % (rate, rows))
    ds = pipeline.eval_dataset(data, "test", bs, max_len)
    rate, rows = _rate(ds, num_users // bs - 1, "user")
    print("eval_dataset: %.0f users/s over %d users" % (rate, rows))
    for sampling in ("uniform", "popularity"):
      ds = pipeline.item_dataset(data, 4096, sampling, seed=FLAGS.seed)
      rate, rows = _rate(ds, 200, "item")
      print("item_dataset (%s, batch 4096): %.0f items/s" % (sampling, rate))
  finally:
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
  tf.get_logger().setLevel("ERROR")
  app.run(main)
