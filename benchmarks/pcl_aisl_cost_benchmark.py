"""What PCL-AISL costs at serving and per epoch (issue 14, "Serving cost").

(a) Retrieval queries per second with AISL's K_u active vectors against a
    fixed K (all K active), in one run. Both go through dcg_tf's serving path,
    `dcg_tf.Retriever.search_embeddings` -> `TopKSearcher.search` (Faiss,
    exact `IndexFlatIP` by default): each ACTIVE vector searches the index
    and the hits merge by maximum score, so an inactive slot costs no search.
    The queries are the same [Q, K, D] array for both; only the mask differs.
    The mask has K_u = the first K_u slots, with K_u drawn per query so that
    its mean is `--ainpu` (floor or ceil of it; the paper's Table 1: 3.2 of
    K = 4 on Kindle Store, 4.1 of 5 on Books). The two are timed in
    alternating rounds (`benchmarks/common.py`), `--num_queries` per round in
    batches of `--batch_queries`, and the median round is reported.
(b) The k-means prototype refresh of one epoch
    (`dcg_tf.training_state.prototypes`): Faiss spherical k-means of N
    synthetic unit key vectors into |C| clusters (`kmeans`, `--kmeans_iterations`
    as the `pcl_aisl` default 20), Eq. 13's temperatures
    (`cluster_temperatures`) and `Prototypes.assign`, at each of
    `--kmeans_items`. Encoding the catalog through the key encoder (one
    Dense layer per item) is not included. Faiss trains k-means on at most
    256 points per centroid (its default sample), then assigns all N.

  python benchmarks/pcl_aisl_cost_benchmark.py --kmeans_items=100000     # here
  python benchmarks/pcl_aisl_cost_benchmark.py --kmeans_items=100000,1000000
  python benchmarks/pcl_aisl_cost_benchmark.py --quick                  # smoke
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import faiss  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf.serving.retriever import Retriever  # noqa: E402
from dcg_tf.training_state import prototypes as prototypes_lib  # noqa: E402


def parse_args(argv):
  parser = common.make_parser(__doc__, rounds=5)
  parser.add_argument("--num_items", type=int, default=100_000,
                      help="catalog of part (a)")
  parser.add_argument("--dim", type=int, default=32, help="d (section 3.1: 32)")
  parser.add_argument("--max_interests", type=int, default=4, help="K")
  parser.add_argument("--ainpu", type=float, default=3.2,
                      help="mean K_u of the AISL queries")
  parser.add_argument("--num_queries", type=int, default=1000)
  parser.add_argument("--batch_queries", type=int, default=100)
  parser.add_argument("--k", type=int, default=50)
  parser.add_argument("--search_threads", type=int, default=1)
  parser.add_argument("--kmeans_items", default="100000",
                      help="comma list of catalog sizes of part (b)")
  parser.add_argument("--num_prototypes", type=int, default=1000, help="|C|")
  parser.add_argument("--kmeans_iterations", type=int, default=20)
  parser.add_argument("--kmeans_rounds", type=int, default=1,
                      help="refreshes timed per size (median reported)")
  return common.parse(parser, argv, quick=dict(
      num_items=2000, num_queries=60, batch_queries=20, rounds=2,
      kmeans_items="3000", num_prototypes=20, kmeans_iterations=5))


def unit_rows(num, dim, rng):
  """float32 [num, dim] with unit rows, in chunks (1M x 32 without copies)."""
  out = np.empty((num, dim), np.float32)
  for start in range(0, num, 100_000):
    stop = min(num, start + 100_000)
    out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
  out /= np.linalg.norm(out, axis=1, keepdims=True)
  return out


def aisl_mask(num_queries, max_interests, ainpu, rng):
  """bool [Q, K]: the first K_u slots, K_u in {floor, ceil}(ainpu), mean ainpu."""
  if not 1 <= ainpu <= max_interests:
    raise SystemExit("--ainpu must be in [1, K=%d], got %s" % (max_interests, ainpu))
  low = int(np.floor(ainpu))
  high_share = ainpu - low
  num_high = int(round(high_share * num_queries))
  k_u = np.full(num_queries, low, np.int64)
  k_u[rng.permutation(num_queries)[:num_high]] = min(low + 1, max_interests)
  return np.arange(max_interests)[None, :] < k_u[:, None]            # [Q, K]


def serving_qps(args, rng):
  """Part (a): QPS of K_u active vectors vs all K, same queries, one run."""
  items = unit_rows(args.num_items, args.dim, rng)                   # [N, D]
  queries = unit_rows(args.num_queries * args.max_interests, args.dim, rng)
  queries = queries.reshape(args.num_queries, args.max_interests, args.dim)  # [Q, K, D]
  masks = {"aisl": aisl_mask(args.num_queries, args.max_interests, args.ainpu, rng),
           "fixed_k": np.ones((args.num_queries, args.max_interests), bool)}
  retriever = Retriever(None, items, ["item%d" % i for i in range(args.num_items)],
                        {"metric": "ip", "multi_interest": True, "max_len": 0})
  batches = range(0, args.num_queries, args.batch_queries)
  results = {}

  def runner(name):
    def run():
      results[name] = [retriever.search_embeddings(
          queries[lo:lo + args.batch_queries], args.k,
          query_mask=masks[name][lo:lo + args.batch_queries]) for lo in batches]
    return run

  wall, cpu = common.alternating_rounds(
      {name: runner(name) for name in masks}, args.rounds)
  seconds, cpu_seconds = common.median(wall), common.median(cpu)
  qps = {name: args.num_queries / s for name, s in seconds.items()}
  return {
      "num_items": args.num_items, "dim": args.dim, "k": args.k,
      "max_interests": args.max_interests,
      "ainpu": float(masks["aisl"].sum(1).mean()),
      "vectors_searched": {n: int(m.sum()) for n, m in masks.items()},
      "queries_digest": {n: common.data_digest(queries) for n in masks},
      "median_round_s": seconds, "median_round_cpu_s": cpu_seconds, "qps": qps,
      "qps_ratio_aisl_over_fixed": qps["aisl"] / qps["fixed_k"],
      # Process CPU seconds (one Faiss thread): far less sensitive to other
      # jobs on a shared machine than wall time.
      "cpu_ratio_fixed_over_aisl": cpu_seconds["fixed_k"] / cpu_seconds["aisl"],
      "rounds": args.rounds,
  }, items, queries, masks, results


def kmeans_refresh(num_items, args, rng):
  """Part (b): seconds of one prototype refresh at `num_items` key vectors."""
  keys = unit_rows(num_items, args.dim, rng)                         # [N, D]
  state = prototypes_lib.Prototypes(args.num_prototypes, args.dim, num_items)
  rows = []
  for epoch in range(args.kmeans_rounds):
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    centroids, assignments = prototypes_lib.kmeans(
        keys, args.num_prototypes, seed=epoch, iterations=args.kmeans_iterations)
    t1 = time.perf_counter()
    taus = prototypes_lib.cluster_temperatures(keys, centroids, assignments)
    t2 = time.perf_counter()
    state.assign(centroids, taus, assignments)
    t3 = time.perf_counter()
    rows.append({"kmeans_s": t1 - t0, "temperatures_s": t2 - t1,
                 "assign_s": t3 - t2, "total_s": t3 - t0,
                 "total_cpu_s": time.process_time() - cpu0})
  median = {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
  return dict(num_items=num_items, num_prototypes=args.num_prototypes,
              iterations=args.kmeans_iterations, dim=args.dim,
              rounds=args.kmeans_rounds, **median)


def main(argv=None):
  args = parse_args(argv)
  kmeans_threads = faiss.omp_get_max_threads()
  faiss.omp_set_num_threads(args.search_threads)
  rng = np.random.default_rng(args.seed)
  serving, *_ = serving_qps(args, rng)
  print("== (a) exact top-%d over %d x %d, K = %d, %d queries, %d Faiss thread(s)"
        % (args.k, args.num_items, args.dim, args.max_interests, args.num_queries,
           args.search_threads))
  print("| queries | vectors searched | median round (wall) | CPU | QPS |\n"
        "|---|---|---|---|---|")
  for name, label in (("aisl", "AISL, AINPU %.2f" % serving["ainpu"]),
                      ("fixed_k", "fixed K = %d" % args.max_interests)):
    print("| %s | %d | %.3f s | %.3f s | %.0f |" % (
        label, serving["vectors_searched"][name], serving["median_round_s"][name],
        serving["median_round_cpu_s"][name], serving["qps"][name]))
  print("QPS ratio AISL / fixed K: %.2f wall, %.2f CPU (K / AINPU = %.2f)" % (
      serving["qps_ratio_aisl_over_fixed"], serving["cpu_ratio_fixed_over_aisl"],
      args.max_interests / serving["ainpu"]))
  faiss.omp_set_num_threads(kmeans_threads)
  refresh = [kmeans_refresh(int(n), args, rng) for n in args.kmeans_items.split(",")]
  print("\n== (b) prototype refresh per epoch: |C| = %d, %d iterations, d = %d, "
        "%d Faiss thread(s)" % (args.num_prototypes, args.kmeans_iterations,
                                args.dim, faiss.omp_get_max_threads()))
  print("| items | k-means | Eq. 13 temperatures | assign | total (wall) | "
        "total (CPU) |\n|---|---|---|---|---|---|")
  for r in refresh:
    print("| %d | %.2f s | %.3f s | %.3f s | %.2f s | %.2f s |" % (
        r["num_items"], r["kmeans_s"], r["temperatures_s"], r["assign_s"],
        r["total_s"], r["total_cpu_s"]))
  summary = {"config": vars(args), "faiss_version": faiss.__version__,
             "faiss_threads_kmeans": faiss.omp_get_max_threads(),
             "serving": serving, "prototype_refresh": refresh}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
