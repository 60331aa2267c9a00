"""Steps per second of dense keras Adam vs dcg_tf LazyAdam on a large embedding table.

keras Adam's sparse branch decays the moments of every row and moves every row
at each step (O(vocabulary)); LazyAdam reads and writes only the rows in the
batch (O(batch)). Both train the same model on the same batches in one run:
an embedding table of `--num_rows` x `--dim` (dcg_tf FeatureEmbedding, sparse
gradients) followed by a Dense(1), mean squared error on random targets.
Each optimizer runs a warm-up step, then exactly `--steps` timed steps over
the same cycle of batches; the summary reports, per optimizer, the update
count its `iterations` reached and a digest of the batches it was fed.

  python -m benchmarks.optimizer_benchmark                 # 1M rows (docs/performance.md)
  python -m benchmarks.optimizer_benchmark --quick         # smoke test, tiny sizes
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf._keras import keras  # noqa: E402
from dcg_tf.layers.embeddings.feature_embedding import FeatureEmbedding  # noqa: E402
from dcg_tf.optimizers import get_optimizer  # noqa: E402


def parse_args(argv):
  parser = common.make_parser(__doc__)
  parser.add_argument("--num_rows", type=int, default=1_000_000)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--batch_size", type=int, default=1024)
  parser.add_argument("--steps", type=int, default=30,
                      help="timed steps of each optimizer (after one warm-up)")
  return common.parse(parser, argv, quick=dict(
      num_rows=10_000, batch_size=64, steps=3))


def build_model(num_rows, dim, seed):
  keras.utils.set_random_seed(seed)
  ids = keras.Input(shape=(), dtype="int64")
  x = FeatureEmbedding(num_rows, dim, name="table")(ids)   # [B, D]
  output = keras.layers.Dense(1)(x)                        # [B, 1]
  return keras.Model(ids, output[:, 0])


def measure(optimizer_name, args, batches):
  """Steps/s of one optimizer on a freshly built model, after a warm-up step."""
  model = build_model(args.num_rows, args.dim, args.seed)
  optimizer = get_optimizer(optimizer_name, 1e-3)
  optimizer.build(model.trainable_variables)

  @tf.function
  def step(ids, target):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(model(ids, training=True) - target))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  step(*batches[0]).numpy()  # trace + warm-up
  fed = [batches[i % len(batches)] for i in range(args.steps)]
  start, start_cpu = time.perf_counter(), time.process_time()
  for batch in fed:
    loss = step(*batch)
  loss.numpy()
  elapsed = time.perf_counter() - start
  cpu = time.process_time() - start_cpu  # less sensitive to other jobs than wall time
  steps = int(optimizer.iterations.numpy()) - 1  # updates made, less the warm-up
  return {"optimizer": optimizer_name, "steps": steps, "seconds": elapsed,
          "steps_per_second": steps / elapsed, "cpu_seconds": cpu,
          "steps_per_cpu_second": steps / cpu,
          "data_digest": common.data_digest(
              [tuple(t.numpy() for t in batch) for batch in fed])}


def main(argv=None):
  args = parse_args(argv)
  rng = np.random.default_rng(args.seed)
  # Ids 1..num_rows-1 uniformly (row 0 is padding in dcg_tf tables).
  batches = [(tf.constant(rng.integers(1, args.num_rows, args.batch_size), tf.int64),
              tf.constant(rng.normal(size=args.batch_size), tf.float32))
             for _ in range(8)]
  results = [measure(name, args, batches) for name in ("adam", "lazy_adam")]
  ratio = results[1]["steps_per_second"] / results[0]["steps_per_second"]
  ratio_cpu = results[1]["steps_per_cpu_second"] / results[0]["steps_per_cpu_second"]
  print("table %d x %d, batch %d ids, float32, %s"
        % (args.num_rows, args.dim, args.batch_size, tf.__version__))
  print("%-10s %6s %8s %9s %12s" % ("optimizer", "steps", "seconds", "steps/s",
                                     "steps/CPU s"))
  for r in results:
    print("%-10s %6d %8.2f %9.1f %12.1f" % (r["optimizer"], r["steps"], r["seconds"],
                                           r["steps_per_second"],
                                           r["steps_per_cpu_second"]))
  print("lazy_adam / adam speed-up: %.1fx wall, %.1fx CPU" % (ratio, ratio_cpu))
  summary = {"num_rows": args.num_rows, "dim": args.dim, "batch_size": args.batch_size,
             "results": results, "speedup": ratio, "speedup_cpu": ratio_cpu}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
