"""Momentum (MoCo) key-encoder update with a huge vs a small item catalog.

Issue 9 acceptance: the momentum update with a 10M-item catalog costs at most
1.2x the update with a 10K-item catalog, in one run, because the key copy
shares the catalog arrays and catches embedding rows up lazily
(`dcg_tf.training_state.momentum_encoder.MomentumEncoder`): per step it touches
only the rows of the batch.

Model: CLRec's item tower (`ItemTower` on an `ItemEmbedding` of the id plus one
single-valued category feature, summed, l2-normalised, no projection: CLRec
appendix B.1.1) and its `MomentumEncoder` (m = 0.999), LazyAdam as the online
optimizer. One timed update is what `CLRecModel.train_step` does for the key
encoder: the key tower reads the batch's `--batch_size` targets (`call`: rows
read are caught up first), `catch_up` with the gradients of the online tables
(`--batch_size` x (`--history_len` + 1) ids, as when the user tower's history
shares the item table), and `update` after the (here skipped) optimizer step.
The gradients are computed once per batch, outside the timing.

Both catalogs see the same batches up to relabelling: each batch's ids are
drawn from the small catalog, and for the large one its distinct ids are
mapped one to one to distinct ids drawn uniformly from the large catalog, so
both updates touch the same number of distinct rows with the same
multiplicities. The two are timed in alternating rounds in one process
(`benchmarks/common.py`) and the median round is reported.

  python -m benchmarks.momentum_benchmark            # 10M vs 10K items, dim 32
  python -m benchmarks.momentum_benchmark --quick    # smoke test
  python -m benchmarks.momentum_benchmark --dense_rounds 5   # + the dense update
"""

import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf._keras import keras  # noqa: E402
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding  # noqa: E402
from dcg_tf.optimizers import LazyAdam  # noqa: E402
from dcg_tf.towers.item_tower import ItemTower  # noqa: E402
from dcg_tf.training_state.momentum_encoder import MomentumEncoder  # noqa: E402

NUM_CATEGORIES = 1000


def parse_args(argv):
  parser = common.make_parser(__doc__, rounds=15, steps_per_round=10)
  parser.add_argument("--large_items", type=int, default=10_000_000)
  parser.add_argument("--small_items", type=int, default=10_000)
  parser.add_argument("--dim", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--history_len", type=int, default=50)
  parser.add_argument("--momentum", type=float, default=0.999)
  parser.add_argument("--dense_rounds", type=int, default=0,
                      help="also time this many single dense updates "
                      "(MomentumEncoder(lazy=False): every row, the old cost) "
                      "of the large catalog, after the main rounds")
  return common.parse(parser, argv, quick=dict(
      large_items=20_000, small_items=1_000, batch_size=16, history_len=5,
      rounds=2, steps_per_round=3))


def build(num_items, dim, momentum, seed):
  """CLRec's item tower on a catalog of `num_items` and its key encoder."""
  keras.utils.set_random_seed(seed)
  category = (np.arange(num_items + 1) % NUM_CATEGORIES).astype(np.int32)
  embedding = ItemEmbedding(
      num_items, dim, combine="sum",
      features=[{"name": "category", "kind": "single",
                 "vocab_size": NUM_CATEGORIES}],
      feature_arrays={"category": category}, name="item_embedding")
  online = ItemTower(embedding, l2_normalize=True, name="item_tower")
  online(tf.constant([1], tf.int64))
  keys = MomentumEncoder(online, momentum, name="item_key_encoder")
  return online, keys


def update_fn(keys, optimizer, weights):
  """One key-encoder update as `CLRecModel.train_step` runs it."""
  def update(targets, grads):
    out = keys(targets)                                  # reads: caught up
    keys.catch_up(list(zip(grads, weights)), optimizer)  # rows of the step
    keys.update()                                        # after the step
    return out
  return tf.function(update)


def make_batches(args, count=4):
  """Per batch: (targets [B], touched ids [B * (L + 1)]) in the small catalog."""
  rng = np.random.default_rng(args.seed)
  batches = []
  for _ in range(count):
    touched = rng.integers(1, args.small_items + 1,
                           args.batch_size * (args.history_len + 1))
    batches.append((touched[:args.batch_size], touched))
  return batches


def relabel(batches, num_items, seed):
  """Maps each batch's distinct ids one to one into [1, num_items]."""
  rng = np.random.default_rng(seed + 1)
  out = []
  for targets, touched in batches:
    distinct, inverse = np.unique(touched, return_inverse=True)
    new = 1 + rng.choice(num_items, size=distinct.size, replace=False)
    touched = new[inverse]
    out.append((touched[:targets.size], touched))
  return out


def gradients(online, touched):
  """The online tables' gradients for a batch that reads `touched`."""
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(online(tf.constant(touched, tf.int64)))
  weights = online.trainable_weights
  grads = tape.gradient(loss, weights)
  assert all(isinstance(g, tf.IndexedSlices) for g in grads)
  return grads


def main(argv=None):
  args = parse_args(argv)
  sizes = {"small": args.small_items, "large": args.large_items}
  small_batches = make_batches(args)
  setups, distinct_rows = {}, {}
  for name, num_items in sizes.items():
    start = time.perf_counter()
    online, keys = build(num_items, args.dim, args.momentum, args.seed)
    optimizer = LazyAdam(1e-3)
    batches = (small_batches if name == "small"
               else relabel(small_batches, num_items, args.seed))
    inputs = [(tf.constant(targets, tf.int64), gradients(online, touched))
              for targets, touched in batches]
    step = update_fn(keys, optimizer, online.trainable_weights)
    for targets, grads in inputs:  # build, trace, warm up
      step(targets, grads).numpy()
    table = keys.key_tower.item_embedding.id_embedding.embeddings
    assert table.shape[0] == num_items + 1
    distinct_rows[name] = float(np.mean([np.unique(t).size for _, t in batches]))
    print("%s: %d items, key table %s, built in %.1f s, %.0f distinct ids per batch"
          % (name, num_items, table.shape, time.perf_counter() - start,
             distinct_rows[name]))
    setups[name] = (step, inputs)
    if name == "large" and args.dense_rounds:
      dense_keys = MomentumEncoder(online, args.momentum, lazy=False,
                                   name="dense_key_encoder")
      dense = (update_fn(dense_keys, optimizer, online.trainable_weights), inputs)
      dense[0](*inputs[0]).numpy()

  def one_round(step, inputs):
    def run():
      for i in range(args.steps_per_round):
        out = step(*inputs[i % len(inputs)])
      out.numpy()
    return run

  wall, cpu = common.alternating_rounds(
      {name: one_round(*setup) for name, setup in setups.items()}, args.rounds)
  wall = common.per_step(wall, args.steps_per_round)
  cpu = common.per_step(cpu, args.steps_per_round)
  median, median_cpu = common.median(wall), common.median(cpu)
  if args.dense_rounds:
    dense_wall, dense_cpu = common.alternating_rounds(
        {"large_dense": lambda: dense[0](*dense[1][0]).numpy()}, args.dense_rounds)
    wall.update(dense_wall)
    cpu.update(dense_cpu)
    median.update(common.median(dense_wall))
    median_cpu.update(common.median(dense_cpu))
  ratio = median["large"] / median["small"]
  ratio_cpu = median_cpu["large"] / median_cpu["small"]
  print("batch %d targets, %d ids touched, dim %d, m %g, %d rounds x %d updates"
        % (args.batch_size, args.batch_size * (args.history_len + 1), args.dim,
           args.momentum, args.rounds, args.steps_per_round))
  for name, num_items in dict(sizes, **({"large_dense": args.large_items}
                                          if args.dense_rounds else {})).items():
    print("%-6s %11d items: median update %.3f ms wall, %.3f ms CPU (wall rounds: %s)"
          % (name, num_items, 1e3 * median[name], 1e3 * median_cpu[name],
             ", ".join("%.2f" % (1e3 * t) for t in wall[name])))
  peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
  print("peak resident memory: %.1f GiB" % peak_gb)
  print("update time ratio large / small: %.2f wall, %.2f CPU (issue 9 target: <= 1.2)"
        % (ratio, ratio_cpu))
  summary = {"sizes": sizes, "batch_size": args.batch_size,
             "history_len": args.history_len, "dim": args.dim,
             "momentum": args.momentum,
             "update_seconds": wall, "median_update_seconds": median,
             "update_cpu_seconds": cpu, "median_update_cpu_seconds": median_cpu,
             "distinct_rows_per_batch": distinct_rows, "ratio": ratio,
             "ratio_cpu": ratio_cpu, "peak_rss_gib": peak_gb}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
