"""Time and memory of the MI table (SSL-CFM Eq. 4) over a large catalog.

Issue 12, cost: the mutual information of every pair of item fields over the
catalog (`dcg_tf.data.mutual_information.catalog_mutual_information`), which
CFM computes when the model is built, for 1M generated items and 10 fields in
bounded memory. The fields come from `synthetic.generate_correlated_fields`
(groups of 4, 3 and 3 fields with 1000, 100 and 10 values; the last field of
the first group multi-valued, up to 3 values), plus the item id as CFM adds
it (`--with_id`), so k = 11 fields and 55 pairs.

Memory: the pair counts are sparse and built per chunk of at most
`max_pairs_per_chunk` value pairs, so the working memory is the inputs, one
chunk and the distinct value pairs of one field pair (never a dense
V_i x V_j table; the id pairs have N distinct pairs). Two chunk sizes are run
one after the other on the same fields (`--chunks`, the default first): their
seconds, the peak of NumPy/Python allocations during the call (tracemalloc,
which NumPy reports to; it does not see TensorFlow's own memory) and the
largest difference between their tables (0 up to float rounding). The peak
resident set of the process (ru_maxrss, TensorFlow included since importing
dcg_tf loads it) is reported before and after.

  python -m benchmarks.mutual_information_benchmark           # 1M items
  python -m benchmarks.mutual_information_benchmark --quick   # smoke test
"""

import os
import resource
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf.data import synthetic  # noqa: E402
from dcg_tf.data.mutual_information import catalog_mutual_information  # noqa: E402

GROUP_SIZES = (4, 3, 3)
NUM_VALUES = (1000, 100, 10)
NOISE = (0.1, 0.3, 0.2)


def parse_args(argv):
  parser = common.make_parser(__doc__)
  parser.add_argument("--num_items", type=int, default=1_000_000)
  parser.add_argument("--chunks", default="4194304,262144",
                      help="max_pairs_per_chunk values to run, comma-separated")
  parser.add_argument("--with_id", type=int, default=1,
                      help="1: the item id is a field too (as CFM builds it)")
  return common.parse(parser, argv, quick=dict(num_items=3_000,
                                               chunks="4194304,1000"))


def fields(num_items, seed, with_id=True):
  catalog = synthetic.generate_correlated_fields(
      num_items, group_sizes=GROUP_SIZES, num_values=NUM_VALUES, noise=NOISE,
      seed=seed)
  out = {"item": np.arange(num_items + 1)} if with_id else {}
  out.update(catalog.features)
  return out


def _peak_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB


def main(argv=None):
  args = parse_args(argv)
  chunks = [int(c) for c in args.chunks.split(",")]
  table = fields(args.num_items, args.seed, bool(args.with_id))
  input_mib = sum(a.nbytes for a in table.values()) / 2 ** 20
  digest = common.data_digest(table)
  rss_before = _peak_rss_mib()
  results, matrices = [], []
  for chunk in chunks:
    tracemalloc.start()
    start, start_cpu = time.perf_counter(), time.process_time()
    mi = catalog_mutual_information(table, max_pairs_per_chunk=chunk)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    matrices.append(mi)
    results.append({"max_pairs_per_chunk": chunk, "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "traced_peak_mib": traced_peak / 2 ** 20,
                    "data_digest": digest, "num_fields": int(mi.shape[0])})
  difference = float(max(np.abs(m - matrices[0]).max() for m in matrices))
  k = len(table)
  print("%d items x %d fields (%s), inputs %.1f MiB, %d pairs" % (
      args.num_items, k, ", ".join(table), input_mib, k * (k - 1) // 2))
  for r in results:
    print("max_pairs_per_chunk %9d: %.2f s wall, %.2f s CPU, peak traced "
          "allocations %.1f MiB" % (r["max_pairs_per_chunk"], r["seconds"],
                                    r["cpu_seconds"], r["traced_peak_mib"]))
  rss_after = _peak_rss_mib()
  print("peak RSS of the process: %.0f MiB before the MI calls, %.0f MiB after "
        "(TensorFlow included); largest difference between the tables: %.2e"
        % (rss_before, rss_after, difference))
  summary = {"num_items": args.num_items, "num_fields": k,
             "field_names": list(table), "input_mib": input_mib,
             "results": results, "max_abs_difference": difference,
             "peak_rss_mib_before": rss_before, "peak_rss_mib_after": rss_after,
             "mutual_information": matrices[0].tolist(),
             "load_average": list(os.getloadavg())}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
