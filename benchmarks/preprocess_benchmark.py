"""Preprocessing speed and memory on synthetic Amazon-2014 reviews.

  python -m benchmarks.preprocess_benchmark --num_reviews=10000000
  python -m benchmarks.preprocess_benchmark --num_reviews=200000    # smoke size

Generates the raw files once in a subprocess (so generation memory does not
count), then loads and preprocesses them in this process exactly as
`python -m experiments.preprocess --format=amazon` does, and reports reviews/s
(reviews in the file / wall seconds of load + preprocess + write) and peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`, which includes TensorFlow's import).
Target (docs/performance.md): >= 200,000 reviews/s and < 4 GB on 2 cores for 10M.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from dcg_tf.data import preprocess as preprocess_lib  # noqa: E402
from dcg_tf.data.loaders import LOADERS  # noqa: E402

flags.DEFINE_integer("num_reviews", 10_000_000, "Synthetic reviews.")
flags.DEFINE_string("work_dir", None, "Folder for raw and processed files "
                    "(default: a temporary folder, removed afterwards).")
flags.DEFINE_bool("gzip", False, "Benchmark gzipped raw files.")
flags.DEFINE_integer("min_interactions", 5, "k-core threshold for users and items.")
FLAGS = flags.FLAGS


def _peak_rss_gb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB -> GiB


def benchmark(num_reviews, work_dir, compress=False, min_interactions=5):
  raw_dir = os.path.join(work_dir, "raw_%d%s" % (num_reviews, "_gz" if compress else ""))
  if not os.path.isdir(raw_dir):
    t = time.time()
    subprocess.run([sys.executable, "-m", "experiments.generate_synthetic",
                    "--output_dir=" + raw_dir, "--num_events=%d" % num_reviews,
                    "--formats=amazon", "--gzip=%s" % compress], check=True,
                   stdout=subprocess.DEVNULL)
    print("generated %s in %.1f s" % (raw_dir, time.time() - t))
  paths = sorted(os.path.join(raw_dir, n) for n in os.listdir(raw_dir))
  out = os.path.join(work_dir, "processed")
  t0 = time.time()
  raw = LOADERS["amazon"](paths)
  t1 = time.time()
  config = preprocess_lib.PreprocessConfig(
      split="dien", min_user_interactions=min_interactions,
      min_item_interactions=min_interactions)
  manifest = preprocess_lib.preprocess(raw, out, config, input_paths=paths,
                                       source_format="amazon", overwrite=True)
  t2 = time.time()
  reviews = manifest["input_rows"]["files"][0]["read"]
  return {
      "num_reviews": reviews,
      "raw_bytes": sum(os.path.getsize(p) for p in paths),
      "load_s": round(t1 - t0, 2), "preprocess_write_s": round(t2 - t1, 2),
      "total_s": round(t2 - t0, 2),
      "reviews_per_s": round(reviews / (t2 - t0)),
      "load_reviews_per_s": round(reviews / (t1 - t0)),
      "peak_rss_gb": round(_peak_rss_gb(), 3),
      "cpus": len(os.sched_getaffinity(0)),
      "counts": manifest["counts"],
  }


def main(argv):
  del argv
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="dcg_preprocess_bench_")
  try:
    result = benchmark(FLAGS.num_reviews, work_dir, FLAGS.gzip, FLAGS.min_interactions)
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
