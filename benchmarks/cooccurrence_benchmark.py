"""Time and peak memory of MicRec's global item co-occurrence counts.

MicRec (Xie et al., Tencent) section 3.5 counts, over every training session,
how often two items co-occur. `dcg_tf.data.sessions.cooccurrence` keeps the
matrix sparse (`ItemGraph`, never N x N) and merges the pairs into the counts
chunk by chunk, so its memory is the input, the distinct pairs and one chunk,
never all pair occurrences at once. This benchmark counts `--num_interactions`
synthetic events and reports the wall and CPU seconds and the peak RSS.

Synthetic events (NumPy, `make_events`): users with geometric sequence
lengths (mean `--mean_user_len`), sessions of geometric length (mean
`--mean_session_len`; a new session is what a gap of more than one hour
starts), items drawn from a Zipf-like popularity over `--num_items`
(p_i proportional to 1 / (i + 10)^`--zipf`). Both modes of the paper's task
are timed: whole sessions (`window=None`, timestamps) and the sliding window
of 10 events (data without timestamps).

The events are generated in this process and written to .npy files; each mode
is then counted in a fresh subprocess that loads them, so its peak RSS
(`ru_maxrss`) is the counting's: Python, NumPy and TensorFlow (imported by
`dcg_tf.data.item_pairs`), the input and the counting itself; the RSS just
before counting is reported beside it (`rss_before_gb`).

  python -m benchmarks.cooccurrence_benchmark --num_interactions=10000000
  python -m benchmarks.cooccurrence_benchmark --quick        # smoke size
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from benchmarks import common  # noqa: E402

MODES = {"sessions": None, "window10": 10}


def parse_args(argv):
  parser = common.make_parser(__doc__)
  parser.add_argument("--num_interactions", type=int, default=10_000_000)
  parser.add_argument("--num_items", type=int, default=0,
                      help="items (0: num_interactions / 20)")
  parser.add_argument("--mean_user_len", type=float, default=50.0)
  parser.add_argument("--mean_session_len", type=float, default=8.0)
  parser.add_argument("--zipf", type=float, default=1.0)
  parser.add_argument("--chunk_pairs", type=int, default=1 << 23)
  parser.add_argument("--modes", default=",".join(MODES))
  parser.add_argument("--worker", default="", help=argparse_suppress())
  return common.parse(parser, argv, quick=dict(num_interactions=20_000,
                                               chunk_pairs=1 << 12))


def argparse_suppress():
  import argparse  # pylint: disable=g-import-not-at-top
  return argparse.SUPPRESS


def make_events(num_interactions, num_items, mean_user_len, mean_session_len,
                zipf, seed):
  """(items int64 [E], session key int64 [E], user row int64 [E]), grouped.

  Sessions are contiguous and numbered globally (0, 1, ...) in order; so are
  the users' rows. E is exactly `num_interactions`.
  """
  rng = np.random.default_rng(seed)
  e = int(num_interactions)
  # A new user starts with probability 1 / mean_user_len, a new session with
  # 1 / mean_session_len (always at a new user).
  new_user = rng.random(e) < 1.0 / mean_user_len
  new_user[0] = True
  new_session = new_user | (rng.random(e) < 1.0 / mean_session_len)
  rows = np.cumsum(new_user) - 1
  sessions = np.cumsum(new_session) - 1
  weights = 1.0 / (np.arange(num_items) + 10.0) ** zipf
  cumulative = np.cumsum(weights / weights.sum())
  items = 1 + np.searchsorted(cumulative, rng.random(e) * cumulative[-1])
  items = np.minimum(items, num_items)
  # Popularity unrelated to the id: a fixed random relabelling.
  items = rng.permutation(num_items)[items - 1] + 1
  return items.astype(np.int64), sessions.astype(np.int64), rows.astype(np.int64)


def _rss_gb():
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 2**20                        # KiB -> GiB
  return float("nan")


def _worker(spec):
  """Counts one mode on the saved events; prints a JSON line."""
  from dcg_tf.data.sessions import cooccurrence  # pylint: disable=g-import-not-at-top
  with open(spec) as f:
    job = json.load(f)
  items = np.load(job["items"])
  groups = np.load(job["groups"])
  before = _rss_gb()
  start, start_cpu = time.perf_counter(), time.process_time()
  graph = cooccurrence(items, groups, job["num_items"], window=job["window"],
                       chunk_pairs=job["chunk_pairs"])
  seconds = time.perf_counter() - start
  cpu = time.process_time() - start_cpu
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # GiB
  print(json.dumps({
      "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
      "rss_before_gb": round(before, 3), "peak_rss_gb": round(peak, 3),
      "distinct_pairs": graph.nnz,
      "graph_gb": round((graph.indptr.nbytes + graph.indices.nbytes
                         + graph.weights.nbytes) / 2**30, 4),
      "total_count": int(graph.weights.sum()),
      "checksum": int((graph.keys() * graph.weights).sum() % (2**61 - 1))}))


def main(argv=None):
  args = parse_args(argv)
  if args.worker:
    _worker(args.worker)
    return None
  num_items = args.num_items or max(args.num_interactions // 20, 10)
  start = time.perf_counter()
  items, sessions, rows = make_events(args.num_interactions, num_items,
                                      args.mean_user_len, args.mean_session_len,
                                      args.zipf, args.seed)
  generate_seconds = time.perf_counter() - start
  work = tempfile.mkdtemp(prefix="dcg_cooccurrence_bench_")
  results = {}
  try:
    paths = {"items": os.path.join(work, "items.npy"),
             "sessions": os.path.join(work, "sessions.npy"),
             "rows": os.path.join(work, "rows.npy")}
    np.save(paths["items"], items)
    np.save(paths["sessions"], sessions)
    np.save(paths["rows"], rows)
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
      window = MODES[mode]
      spec = os.path.join(work, mode + ".json")
      with open(spec, "w") as f:
        json.dump({"items": paths["items"],
                   "groups": paths["sessions" if window is None else "rows"],
                   "num_items": num_items, "window": window,
                   "chunk_pairs": args.chunk_pairs}, f)
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
      proc = subprocess.run(
          [sys.executable, os.path.abspath(__file__), "--worker=" + spec],
          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
      if proc.returncode != 0:
        raise RuntimeError("co-occurrence worker (%s) failed:\n%s"
                           % (mode, proc.stderr[-3000:]))
      results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
  finally:
    shutil.rmtree(work, ignore_errors=True)
  summary = {
      "num_interactions": int(items.size), "num_items": int(num_items),
      "num_users": int(rows[-1] + 1), "num_sessions": int(sessions[-1] + 1),
      "chunk_pairs": args.chunk_pairs, "generate_seconds": round(generate_seconds, 3),
      "cpus": len(os.sched_getaffinity(0)), "load_average": list(os.getloadavg()),
      "results": results}
  print(json.dumps(summary, indent=1))
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
