"""Training throughput of CLRec's cached queue vs sampled softmax (Table 5 in spirit).

CLRec (Zhou et al., KDD'21) section 4.2.1 / Table 5: the queue reuses the
representation computed when an item was a positive, while sampled softmax
encodes the features of its L negatives at every step. Here three models train
side by side on the same feature-rich synthetic catalog, with the same
encoders, batch and number of negatives (`--negatives`, 2,560 with batch 256):
  - clrec_cached: `CLRecModel(queue="cached")` (Figure 1c),
  - clrec_raw:    `CLRecModel(queue="raw")`, re-encoding the queued ids (1b),
  - sampled_softmax: `SampledSoftmaxModel`, popularity proposal (Eq. 2).
Encoders: CLRec's `CLRecUserTower` and an `ItemTower` over an `ItemEmbedding`
that sums the id and feature embeddings, then an MLP (`--item_hidden`) that
stands for an expensive item encoder: only g(y) runs it, history clicks use
the embedding sum (appendix B.1.1).
Catalog: `--items` items with Zipf popularity, each with `--single_features`
single-valued features (default 6: with the id, the seven categorical features
of appendix A) and optionally `--multi_features` multi-valued features of
`--tokens` tokens (e.g. title tokens). Sampled softmax encodes each distinct
sampled id once per step (fewer than 2,560 under Zipf popularity); the raw
queue re-encodes all its slots.
Each model's `train_step` runs as a `tf.function` with LazyAdam; the models
are timed in alternating rounds and the median round is reported as training
examples per second (the fastest round beside it).
Target: clrec_cached >= 2x sampled_softmax.

  python -m benchmarks.clrec_throughput_benchmark          # full size
  python -m benchmarks.clrec_throughput_benchmark --quick  # smoke test
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf._keras import keras  # noqa: E402
from dcg_tf.towers.clrec_user_tower import CLRecUserTower  # noqa: E402
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding  # noqa: E402
from dcg_tf.towers.item_tower import ItemTower  # noqa: E402
from dcg_tf.training_state.samplers import unigram  # noqa: E402
from dcg_tf.models.baselines import SampledSoftmaxModel  # noqa: E402
from dcg_tf.models.clrec import CLRecModel  # noqa: E402
from dcg_tf.optimizers import LazyAdam  # noqa: E402

MODELS = ("clrec_cached", "clrec_raw", "sampled_softmax")


def parse_args(argv):
  parser = common.make_parser(__doc__, rounds=7, steps_per_round=5)
  parser.add_argument("--items", type=int, default=100_000)
  # Appendix A: item id + six categorical features (categories, seller, brand...).
  parser.add_argument("--single_features", type=int, default=6)
  parser.add_argument("--multi_features", type=int, default=0)
  parser.add_argument("--tokens", type=int, default=16)
  parser.add_argument("--vocab", type=int, default=10_000)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--item_hidden", default="1024,1024",
                      help="hidden layers of the item tower's MLP (comma list)")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--negatives", type=int, default=2560)
  parser.add_argument("--history_len", type=int, default=50)
  return common.parse(parser, argv, quick=dict(
      items=2_000, vocab=500, tokens=8, dim=16, item_hidden="32", batch_size=16,
      negatives=64, history_len=8, rounds=2, steps_per_round=2))


def make_catalog(args, rng):
  """Feature arrays [N+1] / [N+1, F] (row 0 padding) and their specs."""
  n = args.items + 1
  arrays, specs = {}, []
  for f in range(args.single_features):
    name = "single_%d" % f
    arrays[name] = rng.integers(1, args.vocab + 1, size=n).astype(np.int32)
    specs.append({"name": name, "kind": "single", "vocab_size": args.vocab})
  for f in range(args.multi_features):
    name = "multi_%d" % f
    values = rng.integers(1, args.vocab + 1, size=(n, args.tokens))
    lengths = rng.integers(1, args.tokens + 1, size=(n, 1))
    arrays[name] = np.where(np.arange(args.tokens) < lengths, values, 0).astype(np.int32)
    specs.append({"name": name, "kind": "multi", "vocab_size": args.vocab})
  for array in arrays.values():
    array[0] = 0
  return arrays, specs


def build_towers(args, arrays, specs):
  embedding = ItemEmbedding(num_items=args.items, dim=args.dim, features=specs,
                            feature_arrays=arrays, combine="sum")
  hidden = [int(h) for h in str(args.item_hidden).split(",") if h.strip()]
  item_tower = ItemTower(embedding, hidden_units=hidden,
                         output_dim=args.dim, l2_normalize=True)
  user_tower = CLRecUserTower(embedding, max_len=args.history_len)
  return user_tower, item_tower


def build_model(name, args, arrays, specs, counts):
  keras.utils.set_random_seed(args.seed)
  user_tower, item_tower = build_towers(args, arrays, specs)
  if name == "sampled_softmax":
    model = SampledSoftmaxModel(user_tower, item_tower, unigram(counts),
                                num_negatives=args.negatives, seed=args.seed)
  else:
    model = CLRecModel(user_tower, item_tower, queue=name.split("_")[1],
                       queue_size=args.negatives, seed=args.seed)
  model.compile(optimizer=LazyAdam(1e-3))
  return model


def make_batches(args, rng, probabilities, count):
  """Batches whose items follow the popularity distribution (as real clicks)."""
  batches = []
  for _ in range(count):
    items = rng.choice(args.items + 1, p=probabilities,
                       size=(args.batch_size, args.history_len + 1))
    lengths = rng.integers(1, args.history_len + 1, size=args.batch_size)
    mask = np.arange(args.history_len)[None, :] < lengths[:, None]
    times = np.cumsum(rng.integers(1, 3600, size=items.shape), axis=1)
    batches.append({
        "user": tf.constant(np.arange(args.batch_size) + 1, tf.int64),
        "history": tf.constant(np.where(mask, items[:, :-1], 0), tf.int64),
        "history_mask": tf.constant(mask),
        "history_timestamp": tf.constant(np.where(mask, times[:, :-1], 0), tf.int64),
        "target": tf.constant(items[:, -1], tf.int64),
        "target_timestamp": tf.constant(times[:, -1], tf.int64),
    })
  return batches


def main(argv=None):
  args = parse_args(argv)
  rng = np.random.default_rng(args.seed)
  arrays, specs = make_catalog(args, rng)
  # Zipf-like popularity, so that queues and proposals see realistic repeats.
  counts = np.concatenate([[0], np.floor(1e6 / np.arange(1, args.items + 1) ** 1.0
                                         + 1)]).astype(np.int64)
  probabilities = counts / counts.sum()
  batches = make_batches(args, rng, probabilities, args.steps_per_round)
  models, steps, fed = {}, {}, {}
  for name in MODELS:
    models[name] = build_model(name, args, arrays, specs, counts)
    steps[name] = tf.function(models[name].train_step)
    fed[name] = []
    # Trace and fill the queues (negatives / batch steps) before timing.
    for i in range(max(2, args.negatives // args.batch_size)):
      steps[name](batches[i % len(batches)])
      fed[name].append(i % len(batches))

  def one_round(name):
    def run():
      for i, batch in enumerate(batches):
        loss = steps[name](batch)["loss"]
        fed[name].append(i)
      loss.numpy()
    return run

  round_seconds, round_cpu_seconds = common.alternating_rounds(
      {name: one_round(name) for name in MODELS}, args.rounds)
  examples = args.batch_size * args.steps_per_round
  throughput = {name: examples / float(np.median(s))
                for name, s in round_seconds.items()}
  # Also the fastest round (least disturbed by other load on a shared machine)
  # and examples per CPU-second (insensitive to it).
  best = {name: examples / float(np.min(s)) for name, s in round_seconds.items()}
  per_cpu = {name: examples / t for name, t in common.median(round_cpu_seconds).items()}
  summary = {
      "args": vars(args),
      # Per model: updates made (optimizer.iterations) and the digest of the
      # batches it was fed, in order (warm-up included).
      "steps": {name: int(models[name].optimizer.iterations.numpy())
                for name in MODELS},
      "data_digest": {name: common.data_digest(
          [{k: v.numpy() for k, v in batches[i].items()} for i in fed[name]])
                      for name in MODELS},
      "round_seconds": round_seconds,
      "round_cpu_seconds": round_cpu_seconds,
      "examples_per_cpu_second": per_cpu,
      "cpu_ratio_cached_vs_sampled_softmax":
          per_cpu["clrec_cached"] / per_cpu["sampled_softmax"],
      "examples_per_second": throughput,
      "best_round_examples_per_second": best,
      "best_round_ratio_cached_vs_sampled_softmax":
          best["clrec_cached"] / best["sampled_softmax"],
      "ratio_cached_vs_sampled_softmax":
          throughput["clrec_cached"] / throughput["sampled_softmax"],
      "ratio_raw_vs_sampled_softmax":
          throughput["clrec_raw"] / throughput["sampled_softmax"],
  }
  print("%-16s %14s %18s %16s" % ("model", "examples/s", "best round ex/s",
                                   "ex/CPU-second"))
  for name in MODELS:
    print("%-16s %14.1f %18.1f %16.1f" % (name, throughput[name], best[name],
                                          per_cpu[name]))
  print("cached / sampled_softmax = %.2fx (target >= 2x); raw / sampled_softmax "
        "= %.2fx" % (summary["ratio_cached_vs_sampled_softmax"],
                     summary["ratio_raw_vs_sampled_softmax"]))
  print("per CPU-second: cached / sampled_softmax = %.2fx"
        % summary["cpu_ratio_cached_vs_sampled_softmax"])
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
