r"""Sharded flat vs sharded IVF-PQ at 10M items: build, search, Recall@50, memory.

  python -m benchmarks.index_benchmark [--quick] [--num_items=10000000] \
      [--dim=64] [--num_clusters=1000] [--spread=1.0] [--shards=4] \
      [--chunk_rows=1000000] [--num_queries=1000] [--k=50] [--nlist=N] \
      [--pq_m=M] [--pq_nbits=B] [--nprobes=16,32,64,128] [--search_threads=1] \
      [--build_threads=2] [--repeats=2] [--workdir=DIR] [--output FILE]

Issue 15 ("Faiss for 100M items"). The items are synthetic clustered Gaussian
embeddings (`benchmarks/retrieval_benchmark.py`'s `clustered_embeddings`:
centres ~ N(0, I), points = centre + N(0, spread^2 I), so product quantisation
has structure to exploit), written chunk by chunk to `items.npy` in
`--workdir` (a temporary folder by default, removed at the end) and read back
by the builder through `dcg_tf.serving.embedding_reader.NpyReader`
`--chunk_rows` rows at a time, as `experiments/build_index.py` reads an export.

Contestants, in this order (each freed before the next, so the process's peak
RSS after a contestant is its own peak; the first also carries the data
generation, which holds one chunk; `baseline_rss_mb` is the peak before any
data, i.e. the interpreter with TensorFlow and Faiss loaded):
  ivfpq_sharded  `build_index(kind="ivfpq", shards=S)`: one k-means / PQ
                 training on a sample, S shards filled from the chunks; the
                 search swept over `--nprobes`.
  flat_sharded   `build_index(kind="flat", shards=S)`: exact search, the
                 reference of Recall@k.
Both search the same `--num_queries` queries (drawn around the same centres;
`queries_digest` in the JSON), k = `--k`, with `--search_threads` Faiss
threads; times are the best of `--repeats`; builds report wall and process
CPU seconds (the CPU time is far less sensitive to other jobs). Recall@k = |approx top k ∩ exact
top k| / k, mean over the queries. `index_bytes` is the size of the index as
written by `save_index` (the shard files), next to `predicted_bytes` from the
arithmetic of docs/scale.md (`predicted_bytes` below).

With `--workdir`, the data and each contestant's labels (`labels_<name>.npy`,
at the default nprobe for IVF-PQ) and `queries.npy` are kept there, so a test
can check them against NumPy.
"""

import os
import resource
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import faiss  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.retrieval_benchmark import clustered_embeddings  # noqa: E402
from benchmarks.retrieval_benchmark import recall_at_k  # noqa: E402
from dcg_tf.serving import embedding_reader  # noqa: E402
from dcg_tf.serving import index as index_lib  # noqa: E402

QUICK = {"num_items": 20_000, "dim": 16, "num_clusters": 50, "shards": 3,
         "chunk_rows": 3_000, "num_queries": 100, "nlist": 64,
         "nprobes": "4,16", "repeats": 1, "build_threads": 1}


def parse_args(argv):
  parser = common.make_parser(__doc__)
  parser.add_argument("--num_items", type=int, default=10_000_000)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--num_clusters", type=int, default=1000)
  parser.add_argument("--spread", type=float, default=1.0,
                      help="within-cluster standard deviation (centres ~ N(0, I))")
  parser.add_argument("--shards", type=int, default=4)
  parser.add_argument("--chunk_rows", type=int, default=index_lib.DEFAULT_CHUNK_ROWS)
  parser.add_argument("--num_queries", type=int, default=1000)
  parser.add_argument("--k", type=int, default=50)
  parser.add_argument("--nlist", type=int, default=None,
                      help="default: build_index's (4 sqrt(N))")
  parser.add_argument("--pq_m", type=int, default=None,
                      help="default: build_index's (D / 4 sub-quantisers)")
  parser.add_argument("--pq_nbits", type=int, default=None,
                      help="default: build_index's (8)")
  parser.add_argument("--nprobes", default="16,32,64,128",
                      help="IVF-PQ nprobe sweep; the default nprobe is added")
  parser.add_argument("--search_threads", type=int, default=1)
  parser.add_argument("--build_threads", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--workdir", default="",
                      help="keep data, queries and labels here (default: a "
                           "temporary folder, removed)")
  return common.parse(parser, argv, QUICK)


def predicted_bytes(kind, num_items, dim, params, shards):
  """Index size by the arithmetic of docs/scale.md (bytes, headers left out).

  flat: 4 D per vector. ivfpq: per vector a code of pq_m * pq_nbits / 8 bytes
  and an int64 id; per shard the coarse centroids (nlist x D float32), the
  PQ codebooks (2^pq_nbits x D float32, all sub-quantisers together) and the
  inverted lists' sizes (nlist x int64).
  """
  if kind == "flat":
    return num_items * 4 * dim
  if kind == "ivfpq":
    code = (params["pq_m"] * params["pq_nbits"] + 7) // 8
    per_shard = (params["nlist"] * dim * 4 + (2 ** params["pq_nbits"]) * dim * 4
                 + params["nlist"] * 8)
    return num_items * (code + 8) + shards * per_shard
  raise ValueError("no size formula for %r" % kind)


def write_items(path, args):
  """Writes the [N, D] float32 items to `path` (.npy) one chunk at a time."""
  header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
            "fortran_order": False, "shape": (args.num_items, args.dim)}
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(f, header)
    for number, (start, stop) in enumerate(embedding_reader.chunk_bounds(
        0, args.num_items, args.chunk_rows)):
      block = clustered_embeddings(stop - start, args.dim, args.num_clusters,
                                   seed=1000 * args.seed + 2 + number,
                                   spread=args.spread)           # [rows, D]
      f.write(block.tobytes())


def _peak_rss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed_search(item_index, queries, k, repeats):
  best, result = float("inf"), None
  for _ in range(repeats):
    start = time.perf_counter()
    result = item_index.search(queries, k)
    best = min(best, time.perf_counter() - start)
  return best, result[1]


def run_contestant(name, kind, reader, queries, args, workdir, params):
  """Builds, saves (for the size), searches; returns (report, labels by nprobe)."""
  faiss.omp_set_num_threads(args.build_threads)
  start, start_cpu = time.perf_counter(), time.process_time()
  item_index = index_lib.build_index(reader, kind, "ip", shards=args.shards,
                                     chunk_rows=args.chunk_rows, **params)
  build_seconds = time.perf_counter() - start
  build_cpu_seconds = time.process_time() - start_cpu
  index_dir = os.path.join(workdir, "index_" + name)
  index_lib.save_index(item_index, index_dir,
                       {"export_fingerprint": "synthetic (benchmark)"})
  index_bytes = sum(os.path.getsize(os.path.join(index_dir, f))
                    for f in os.listdir(index_dir) if f.endswith(".faiss"))
  shutil.rmtree(index_dir)
  faiss.omp_set_num_threads(args.search_threads)
  nprobes = [None]
  if kind == "ivfpq":
    default = item_index.params["nprobe"]
    nprobes = sorted({int(v) for v in args.nprobes.split(",") if v} | {default})
    nprobes = [n for n in nprobes if n <= item_index.params["nlist"]]
  search, labels = [], {}
  for nprobe in nprobes:
    if nprobe is not None:
      item_index.set_search_params(nprobe=nprobe)
    seconds, labels[nprobe] = _timed_search(item_index, queries, args.k,
                                            args.repeats)
    search.append({"nprobe": nprobe, "seconds": seconds,
                   "qps": len(queries) / seconds})
  if kind == "ivfpq":
    item_index.set_search_params(nprobe=default)
  report = {
      "kind": kind, "shards": item_index.num_shards,
      "params": dict(item_index.params), "build_seconds": build_seconds,
      "build_cpu_seconds": build_cpu_seconds,
      "index_bytes": index_bytes,
      "predicted_bytes": predicted_bytes(kind, args.num_items, args.dim,
                                         item_index.params, args.shards),
      "queries_digest": common.data_digest([queries]),
      "search": search, "peak_rss_mb": _peak_rss_mb(),
  }
  return report, labels


def main(argv=None):
  args = parse_args(argv)
  own_workdir = not args.workdir
  workdir = tempfile.mkdtemp(prefix="index_benchmark_") if own_workdir else args.workdir
  os.makedirs(workdir, exist_ok=True)
  try:
    return _run(args, workdir)
  finally:
    if own_workdir:
      shutil.rmtree(workdir, ignore_errors=True)


def _run(args, workdir):
  baseline_rss_mb = _peak_rss_mb()   # the interpreter, TensorFlow and Faiss
  start = time.perf_counter()
  items_path = os.path.join(workdir, "items.npy")
  write_items(items_path, args)
  generate_seconds = time.perf_counter() - start
  queries = clustered_embeddings(args.num_queries, args.dim, args.num_clusters,
                                 seed=1000 * args.seed + 1, spread=args.spread)
  reader = embedding_reader.NpyReader(items_path)
  pq_params = {name: getattr(args, name) for name in ("nlist", "pq_m", "pq_nbits")
               if getattr(args, name) is not None}
  contestants = {}
  ivfpq, ivfpq_labels = run_contestant("ivfpq_sharded", "ivfpq", reader, queries,
                                       args, workdir, pq_params)
  contestants["ivfpq_sharded"] = ivfpq
  flat, flat_labels = run_contestant("flat_sharded", "flat", reader, queries,
                                     args, workdir, {})
  contestants["flat_sharded"] = flat
  exact = flat_labels[None]
  exact_seconds = flat["search"][0]["seconds"]
  for row in ivfpq["search"]:
    row["recall"] = recall_at_k(ivfpq_labels[row["nprobe"]], exact)
    row["speedup"] = exact_seconds / row["seconds"]
  default = ivfpq["params"]["nprobe"]
  summary = {
      "num_items": args.num_items, "dim": args.dim,
      "num_clusters": args.num_clusters, "spread": args.spread,
      "shards": args.shards, "chunk_rows": args.chunk_rows,
      "num_queries": args.num_queries, "k": args.k,
      "search_threads": args.search_threads, "build_threads": args.build_threads,
      "faiss_version": faiss.__version__,
      "generate_seconds": generate_seconds, "baseline_rss_mb": baseline_rss_mb,
      "contestants": contestants,
      "recall_at_k": next(r["recall"] for r in ivfpq["search"]
                          if r["nprobe"] == default),
      "total_seconds": time.perf_counter() - start,
  }
  if args.workdir:
    np.save(os.path.join(workdir, "queries.npy"), queries)
    np.save(os.path.join(workdir, "labels_flat_sharded.npy"), exact)
    np.save(os.path.join(workdir, "labels_ivfpq_sharded.npy"), ivfpq_labels[default])
  common.write_json(args.output, summary)
  _print(summary)
  return summary


def _print(summary):
  print("%d items x %d, %d shards, %d queries, top %d, %d search thread(s); data "
        "written in %.1f s" % (summary["num_items"], summary["dim"],
                               summary["shards"], summary["num_queries"],
                               summary["k"], summary["search_threads"],
                               summary["generate_seconds"]))
  print("| index | build s | index MB (predicted) | nprobe | QPS | Recall@%d | "
        "peak RSS MB |\n|---|---|---|---|---|---|---|" % summary["k"])
  for name, c in summary["contestants"].items():
    for row in c["search"]:
      print("| %s | %.1f | %.1f (%.1f) | %s | %.0f | %s | %.0f |" % (
          name, c["build_seconds"], c["index_bytes"] / 1e6,
          c["predicted_bytes"] / 1e6, row["nprobe"] or "-", row["qps"],
          "%.4f" % row["recall"] if "recall" in row else "exact",
          c["peak_rss_mb"]))


if __name__ == "__main__":
  main()
