r"""Retrieval benchmarks of issue 3 ("Acceptance"), measured in one run.

  python benchmarks/retrieval_benchmark.py [--quick] [--num_items=1000000] \
      [--dim=64] [--num_queries=1000] [--k=50] [--search_threads=1] \
      [--build_threads=2] [--spread=1.0] [--output_json=FILE]

(1) Exact search through `dcg_tf.Retriever` (its `TopKSearcher`) against the
    same Faiss flat index called directly, on the same query batch; both
    batched and one query per call. Target: Retriever time <= 1.2x Faiss.
(2) Approximate indexes (`dcg_tf.serving.index.build_index`, IVF and HNSW) on
    synthetic clustered embeddings: Recall@k against exact search and queries
    per second relative to exact search, for a sweep of nprobe / efSearch.
    Target: Recall@50 >= 0.95 at >= 10x the exact QPS. The operating point is
    the fastest setting reaching the recall target.

Timings are the best of `--repeats` runs (robust to other processes on a
shared machine); every search runs with the same number of Faiss threads
(`--search_threads`, default 1: on an oversubscribed machine OpenMP barriers
make multi-threaded batch search erratic, which would flatter the approximate
indexes). Index builds use `--build_threads`.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import faiss  # noqa: E402
import numpy as np  # noqa: E402
from dcg_tf.serving import index as index_lib  # noqa: E402
from dcg_tf.serving.retriever import Retriever  # noqa: E402

RECALL_TARGET = 0.95
SPEEDUP_TARGET = 10.0
RATIO_TARGET = 1.2


def clustered_embeddings(num, dim, num_clusters, seed, spread):
  """Synthetic item/user embeddings: Gaussian clusters around random centres.

  Centres are N(0, I); points are centre + N(0, spread^2 I), generated in
  chunks so 1M x 64 needs no temporary copies. Items and queries share the
  centres (same `num_clusters` and centre seed), as users and items share one
  embedding space.
  """
  centres = np.random.default_rng(12345).normal(
      size=(num_clusters, dim)).astype(np.float32)
  rng = np.random.default_rng(seed)
  out = np.empty((num, dim), np.float32)
  for start in range(0, num, 100_000):
    stop = min(num, start + 100_000)
    assign = rng.integers(0, num_clusters, stop - start)
    out[start:stop] = centres[assign] + spread * rng.standard_normal(
        (stop - start, dim), dtype=np.float32)
  return out


def best_time(fn, repeats):
  best = float("inf")
  result = None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    best = min(best, time.perf_counter() - start)
  return best, result


def recall_at_k(approx, exact):
  k = exact.shape[1]
  return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)]))


def _paired_time(fn_a, fn_b, inputs, repeats):
  """Sum over `inputs` of the best-of-`repeats` time of fn_a(x) and fn_b(x).

  The two functions alternate on each input, so both see the same load, and
  short timed intervals let the minimum discard the ones hit by other jobs.
  """
  total_a = total_b = 0.0
  for x in inputs:
    best_a = best_b = float("inf")
    for _ in range(repeats):
      best_a = min(best_a, best_time(lambda: fn_a(x), 1)[0])
      best_b = min(best_b, best_time(lambda: fn_b(x), 1)[0])
    total_a += best_a
    total_b += best_b
  return total_a, total_b


def exact_overhead(items, queries, k, repeats):
  """Part (1): Retriever (TopKSearcher) vs Faiss IndexFlatIP on the same data."""
  flat = faiss.IndexFlatIP(items.shape[1])
  flat.add(items)
  retriever = Retriever(None, items, ["item%d" % i for i in range(len(items))],
                        {"metric": "ip", "multi_interest": False, "max_len": 0})
  scores_f, labels_f = flat.search(queries, k)
  scores_r, items_r = retriever.search_embeddings(queries, k)
  identical = bool(np.array_equal(items_r, labels_f + 1) and
                   np.allclose(scores_r, scores_f))
  # Batched: chunks of 100 queries (Faiss' BLAS path); single: 1 query per call.
  chunks = [queries[i:i + 100] for i in range(0, len(queries), 100)]
  single = [queries[i:i + 1] for i in range(min(len(queries), 100))]
  faiss_fn = lambda q: flat.search(q, k)
  retriever_fn = lambda q: retriever.search_embeddings(q, k)
  t_faiss, t_retr = _paired_time(faiss_fn, retriever_fn, chunks, repeats)
  t_faiss1, t_retr1 = _paired_time(faiss_fn, retriever_fn, single, repeats)
  return {
      "batch_queries": len(queries),
      "faiss_batch_s": t_faiss, "retriever_batch_s": t_retr,
      "batch_ratio": t_retr / t_faiss,
      "single_queries": len(single),
      "faiss_single_s": t_faiss1, "retriever_single_s": t_retr1,
      "single_ratio": t_retr1 / t_faiss1,
      "identical_results": identical,
      "within_target": max(t_retr / t_faiss, t_retr1 / t_faiss1) <= RATIO_TARGET,
  }, labels_f, min(t_faiss, t_retr), flat


def sweep(item_index, queries, k, exact_labels, exact_time, knob, values, repeats):
  rows = []
  for value in values:
    item_index.set_search_params(**{knob: value})
    t, (_, labels) = best_time(lambda: item_index.search(queries, k), repeats)
    rows.append({knob: value, "recall": recall_at_k(labels, exact_labels),
                 "seconds": t, "qps": len(queries) / t, "speedup": exact_time / t})
  reaching = [r for r in rows if r["recall"] >= RECALL_TARGET]
  operating = max(reaching, key=lambda r: r["speedup"]) if reaching else None
  return rows, operating


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="Small sizes for a CI smoke run (seconds).")
  parser.add_argument("--num_items", type=int, default=1_000_000)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--num_clusters", type=int, default=1000)
  parser.add_argument("--num_queries", type=int, default=1000)
  parser.add_argument("--k", type=int, default=50)
  parser.add_argument("--search_threads", type=int, default=1)
  parser.add_argument("--build_threads", type=int, default=2)
  parser.add_argument("--spread", type=float, default=1.0,
                      help="Within-cluster standard deviation (centres ~ N(0, I)).")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--kinds", default="ivf,hnsw")
  parser.add_argument("--hnsw_m", type=int, default=None,
                      help="Default: build_index's default (32).")
  parser.add_argument("--ef_construction", type=int, default=None,
                      help="Default: build_index's default (80).")
  parser.add_argument("--output_json", default=None)
  args = parser.parse_args(argv)
  if args.quick:
    args.num_items, args.dim, args.num_clusters = 10_000, 32, 50
    args.num_queries, args.repeats = 100, 2
  faiss.omp_set_num_threads(args.search_threads)

  start = time.time()
  items = clustered_embeddings(args.num_items, args.dim, args.num_clusters, seed=0,
                               spread=args.spread)
  queries = clustered_embeddings(args.num_queries, args.dim, args.num_clusters,
                                 seed=1, spread=args.spread)
  report = {"config": {k: v for k, v in vars(args).items() if k != "output_json"},
            "faiss_version": faiss.__version__}
  exact, exact_labels, exact_time, flat = exact_overhead(items, queries, args.k,
                                                         args.repeats)
  report["exact"] = exact
  report["exact_qps"] = args.num_queries / exact_time
  print("== (1) exact top-%d over %d x %d, %d search thread(s)" % (
      args.k, args.num_items, args.dim, args.search_threads), flush=True)
  print("| path | Faiss direct | Retriever | ratio |\n|---|---|---|---|")
  print("| %d queries in batches of 100 | %.4f s | %.4f s | %.3f |" % (
      exact["batch_queries"], exact["faiss_batch_s"], exact["retriever_batch_s"],
      exact["batch_ratio"]))
  print("| %d single-query calls | %.4f s | %.4f s | %.3f |" % (
      exact["single_queries"], exact["faiss_single_s"],
      exact["retriever_single_s"], exact["single_ratio"]))
  print("identical results: %s; within %.1fx: %s" % (
      exact["identical_results"], RATIO_TARGET, exact["within_target"]))

  report["approximate"] = {}
  for kind in [k for k in args.kinds.split(",") if k]:
    t0 = time.time()
    faiss.omp_set_num_threads(args.build_threads)
    if kind == "ivf":
      item_index = index_lib.build_index(items, "ivf")
      nlist = item_index.params["nlist"]
      values = {v for v in (1, 2, 4, 8, 16, 24, 32, 48, 64, 128) if v < nlist}
      if nlist <= 1024:   # every cell: exhaustive, must give recall 1.0
        values.add(nlist)
      values = sorted(values)
      knob = "nprobe"
    elif kind == "hnsw":
      hnsw_params = {"m": args.hnsw_m, "ef_construction": args.ef_construction}
      item_index = index_lib.build_index(
          items, "hnsw", **{k: v for k, v in hnsw_params.items() if v is not None})
      values = [16, 32, 64, 96, 128, 192, 256, 512]
      knob = "ef_search"
    else:
      raise SystemExit("--kinds: ivf and/or hnsw, got %r" % kind)
    build_s = time.time() - t0
    faiss.omp_set_num_threads(args.search_threads)
    # Load drifts on a shared machine: time exact search again next to the
    # sweep; the baseline is the fastest exact time seen in the run.
    exact_time = min(exact_time, sum(
        best_time(lambda: flat.search(queries[i:i + 100], args.k), 1)[0]
        for i in range(0, len(queries), 100)))
    report["exact_qps"] = args.num_queries / exact_time
    rows, operating = sweep(item_index, queries, args.k, exact_labels, exact_time,
                            knob, values, args.repeats)
    report["approximate"][kind] = {"params": dict(item_index.params),
                                   "build_s": build_s, "sweep": rows,
                                   "operating_point": operating}
    print("\n== (2) %s %s, built in %.1f s; exact (fastest so far): %.0f QPS" % (
        kind, {k: v for k, v in item_index.params.items()
               if k not in (knob, "seed")}, build_s, report["exact_qps"]))
    print("| %s | Recall@%d | QPS | speed-up vs exact |\n|---|---|---|---|"
          % (knob, args.k))
    for r in rows:
      print("| %d | %.4f | %.0f | %.1fx |" % (r[knob], r["recall"], r["qps"],
                                              r["speedup"]))
    if operating:
      print("operating point: %s=%d, Recall@%d %.4f at %.1fx exact QPS (target "
            "%.2f at %.0fx: %s)" % (
                knob, operating[knob], args.k, operating["recall"],
                operating["speedup"], RECALL_TARGET, SPEEDUP_TARGET,
                "met" if operating["speedup"] >= SPEEDUP_TARGET else "NOT met"))
    else:
      print("no setting reaches Recall@%d >= %.2f" % (args.k, RECALL_TARGET))
    sys.stdout.flush()
  report["total_s"] = time.time() - start
  if args.output_json:
    with open(args.output_json, "w") as f:
      json.dump(report, f, indent=2)
  return report


if __name__ == "__main__":
  main()
