r"""End-to-end scale rehearsal on one machine: every binary, one stage each.

  python -m benchmarks.scale_rehearsal [--num_users=1000000] \
      [--num_items=1000000] [--num_interactions=10000000] [--model=two_tower] \
      [--batch_size=1024] [--max_len=20] [--embedding_dim=64] [--shards=4] \
      [--chunk_rows=250000] [--sample_users=1000] [--k=50] [--workdir=DIR] \
      [--keep] [--output=FILE] [--quick]

Issue 15. Runs the real binaries as subprocesses, in order:
  generate      experiments.generate_synthetic --formats=amazon --exact: exactly
                --num_interactions events, --num_users users, --num_items
                items (each in at least one event);
  preprocess    experiments.preprocess --format=amazon, leave-one-out, no
                k-core (so the manifest counts are the generated counts);
  train         experiments.train --epochs=1 --last_cut (one example per user,
                cut at its last training event);
  export        experiments.export (towers + item_embeddings.npy);
  build_index   experiments.build_index --index=ivfpq --shards=N --chunk_rows=R;
  retrieve      experiments.retrieve --history_file: the top k of the IVF-PQ
                index for a sample of users, whose histories are read from the
                raw reviews (below).
Nothing is imported from dcg_tf here, so this process stays small.

Per stage: wall seconds, CPU seconds (user + system) and peak RSS of the
stage's process, both from `os.wait4` on the child: its rusage covers the
child and the descendants it waited for (the preprocess workers), and its
`ru_maxrss` is the largest single process among them, not a sum. Beside it,
`peak_tree_rss_mb` is the peak of the summed RSS of the child and all its
descendants, sampled every `--poll_seconds` from /proc (a sampled peak can
miss a short spike). The load average before and after each stage is
recorded, since the machine may be shared.

Training throughput: `loop_examples_per_s` is the trainer's own steps/s over
the epoch loop (its last progress line: tf.function tracing and checkpoint
writes included, process start and dataset load not) times the batch size;
`stage_examples_per_s` is the examples of the epoch (steps x batch size:
one cut per user, the last partial batch dropped) over the train stage's
wall time.

The sampled users: `--sample_users` random byte offsets of the reviews file
(which the generator writes grouped by user, in time order); from each, the
user after the one the offset falls in is read whole, so a user's chance
does not depend on its own history length. Its whole history (raw item ids,
oldest first) is the query; the history's items are excluded from the k
results (the retrieve binary's default).

Writes `--output` (JSON, `benchmarks.common.write_json`) and prints a table.
`--workdir` (default: a temporary folder) is removed at the end unless
`--keep`; the stage logs are in its `logs/`.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from benchmarks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("generate", "preprocess", "train", "export", "build_index", "retrieve")
QUICK = {"num_users": 600, "num_items": 400, "num_interactions": 6000,
         "batch_size": 128, "max_len": 10, "embedding_dim": 16, "shards": 2,
         "chunk_rows": 150, "nlist": 8, "pq_m": 4, "sample_users": 40, "k": 10,
         "checkpoint_every": 1000, "poll_seconds": 0.1}


def parse_args(argv):
  parser = common.make_parser(__doc__)
  parser.add_argument("--num_users", type=int, default=1_000_000)
  parser.add_argument("--num_items", type=int, default=1_000_000)
  parser.add_argument("--num_interactions", type=int, default=10_000_000)
  parser.add_argument("--model", default="two_tower",
                      help="a registered experiment (experiments.train --list_models)")
  parser.add_argument("--param", action="append", default=[],
                      help="extra experiments.train --param=key=value (repeatable)")
  parser.add_argument("--batch_size", type=int, default=1024)
  parser.add_argument("--max_len", type=int, default=20)
  parser.add_argument("--embedding_dim", type=int, default=64)
  parser.add_argument("--checkpoint_every", type=int, default=500)
  parser.add_argument("--shards", type=int, default=4)
  parser.add_argument("--chunk_rows", type=int, default=250_000)
  parser.add_argument("--nlist", type=int, default=None,
                      help="default: build_index's (4 sqrt(N))")
  parser.add_argument("--pq_m", type=int, default=None,
                      help="default: build_index's (D / 4)")
  parser.add_argument("--nprobe", type=int, default=None,
                      help="default: build_index's")
  parser.add_argument("--sample_users", type=int, default=1000)
  parser.add_argument("--k", type=int, default=50)
  parser.add_argument("--poll_seconds", type=float, default=0.5)
  parser.add_argument("--workdir", default="",
                      help="default: a temporary folder, removed unless --keep")
  parser.add_argument("--keep", action="store_true", help="keep --workdir")
  return common.parse(parser, argv, QUICK)


# === Measuring one child ===


def _process_tree_rss(root_pid):
  """Summed RSS in bytes of `root_pid` and all its descendants (from /proc)."""
  parent, rss = {}, {}
  page = os.sysconf("SC_PAGE_SIZE")
  for name in os.listdir("/proc"):
    if not name.isdigit():
      continue
    try:
      with open("/proc/%s/stat" % name) as f:
        stat = f.read()
    except OSError:
      continue                                   # exited meanwhile
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
    parent[int(name)] = int(fields[1])           # ppid
    rss[int(name)] = int(fields[21]) * page      # rss in pages
  tree, frontier = {root_pid}, [root_pid]
  children = {}
  for pid, ppid in parent.items():
    children.setdefault(ppid, []).append(pid)
  while frontier:
    for child in children.get(frontier.pop(), []):
      if child not in tree:
        tree.add(child)
        frontier.append(child)
  return sum(rss.get(pid, 0) for pid in tree)


def run_stage(name, command, log_dir, poll_seconds):
  """Runs `command` from the repository root; returns its measurements.

  Raises:
    RuntimeError naming the stage and its log when it fails.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("DCG_TF_TINY", None)           # the sizes are the flags' sizes
  out_path = os.path.join(log_dir, name + ".out")
  err_path = os.path.join(log_dir, name + ".err")
  load_start = os.getloadavg()
  start = time.perf_counter()
  with open(out_path, "w") as out, open(err_path, "w") as err:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
    peak = [0]
    done = threading.Event()

    def poll():
      while not done.is_set():
        try:
          peak[0] = max(peak[0], _process_tree_rss(proc.pid))
        except (OSError, ValueError, IndexError):
          pass
        done.wait(poll_seconds)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
  if proc.returncode != 0:
    with open(err_path) as f:
      tail = f.read()[-3000:]
    raise RuntimeError("stage %s failed (exit %d): %s\n%s\n(log: %s)" % (
        name, proc.returncode, " ".join(command), tail, err_path))
  with open(out_path) as f:
    stdout = f.read()
  with open(err_path) as f:
    stderr = f.read()
  return {"command": " ".join(command[2:]),
          "wall_s": round(wall, 2),
          "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
          "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),     # KiB -> MiB
          "peak_tree_rss_mb": round(peak[0] / 2**20, 1),
          "load_avg_start": [round(x, 2) for x in load_start],
          "load_avg_end": [round(x, 2) for x in os.getloadavg()]}, stdout, stderr


# === Helpers ===


def folder_bytes(path):
  """Bytes of the files under `path` (a file: its size)."""
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files)


def sample_histories(reviews_path, num_users, seed):
  """Whole histories (raw item ids, oldest first) of up to `num_users` users.

  See the module doc: from each random byte offset, the user after the one
  the offset falls in. Returns a list of (user id, [item ids]).
  """
  size = os.path.getsize(reviews_path)
  rng = np.random.default_rng(seed)
  offsets = np.sort(rng.integers(0, size, num_users))
  found = {}
  with open(reviews_path, "rb") as f:
    for offset in offsets:
      f.seek(int(offset))
      f.readline()                                   # the rest of a cut line
      line = f.readline()
      if not line:
        continue
      skipped = json.loads(line)["reviewerID"]
      user, items = None, []
      for line in f:
        review = json.loads(line)
        if user is None and review["reviewerID"] == skipped:
          continue
        if user is None:
          user = review["reviewerID"]
        elif review["reviewerID"] != user:
          break
        items.append(review["asin"])
      if user is not None and user not in found:
        found[user] = items
  return list(found.items())


def _trainer_rate(stderr):
  """(steps done, steps/s) from the trainer's last progress line."""
  matches = re.findall(r"\] (\d+)/\S+ ([\d.]+) steps/s", stderr)
  if not matches:
    raise RuntimeError("no progress line in the train stage's stderr:\n"
                       + stderr[-2000:])
  steps, rate = matches[-1]
  return int(steps), float(rate)


def _commands(args, work):
  py = [sys.executable, "-m"]
  raw, data = os.path.join(work, "raw"), os.path.join(work, "data")
  model, export = os.path.join(work, "model"), os.path.join(work, "export")
  index = os.path.join(work, "index")
  reviews = os.path.join(raw, "reviews_Synthetic.json")
  meta = os.path.join(raw, "meta_Synthetic.json")
  index_params = ["--%s=%d" % (name, getattr(args, name))
                  for name in ("nlist", "pq_m", "nprobe")
                  if getattr(args, name) is not None]
  return {
      "generate": py + [
          "experiments.generate_synthetic", "--output_dir=" + raw,
          "--formats=amazon", "--exact", "--num_events=%d" % args.num_interactions,
          "--num_users=%d" % args.num_users, "--num_items=%d" % args.num_items,
          "--seed=%d" % args.seed],
      "preprocess": py + [
          "experiments.preprocess", "--format=amazon",
          "--input=%s,%s" % (reviews, meta), "--output_dir=" + data,
          "--split=leave_one_out", "--min_user_interactions=0",
          "--min_item_interactions=0", "--seed=%d" % args.seed],
      "train": py + [
          "experiments.train", "--model=" + args.model, "--data_dir=" + data,
          "--model_dir=" + model, "--epochs=1", "--last_cut",
          "--batch_size=%d" % args.batch_size, "--max_len=%d" % args.max_len,
          "--embedding_dim=%d" % args.embedding_dim,
          "--checkpoint_every=%d" % args.checkpoint_every,
          "--seed=%d" % args.seed] + ["--param=" + p for p in args.param],
      "export": py + ["experiments.export", "--model_dir=" + model,
                      "--export_dir=" + export],
      "build_index": py + [
          "experiments.build_index", "--export_dir=" + export, "--index=ivfpq",
          "--shards=%d" % args.shards, "--chunk_rows=%d" % args.chunk_rows,
          "--output_dir=" + index] + index_params,
      "retrieve": py + [
          "experiments.retrieve", "--export_dir=" + export, "--index_dir=" + index,
          "--history_file=" + os.path.join(work, "histories.txt"),
          "--output=" + os.path.join(work, "retrieved.json"), "--k=%d" % args.k],
  }, {"raw": raw, "data": data, "model": model, "export": export,
      "index": index, "reviews": reviews}


def check_retrieval(retrieved, histories, item_ids, k):
  """Counts of users whose k results are distinct catalog items outside the history."""
  catalog = set(item_ids)
  full = 0
  for row, (_, history) in zip(retrieved, histories):
    items = row["items"]
    if (len(items) == k and len(set(items)) == k and catalog.issuperset(items)
        and not set(items) & set(history)):
      full += 1
  return {"users": len(retrieved), "users_with_k_distinct_items": full,
          "min_returned": min(len(r["items"]) for r in retrieved),
          "max_returned": max(len(r["items"]) for r in retrieved)}


# === The rehearsal ===


def rehearse(args, work):
  logs = os.path.join(work, "logs")
  os.makedirs(logs, exist_ok=True)
  commands, paths = _commands(args, work)
  stages, outputs = {}, {}
  started = time.perf_counter()
  for name in STAGES:
    if name == "retrieve":
      t = time.perf_counter()
      histories = sample_histories(paths["reviews"], args.sample_users, args.seed)
      with open(os.path.join(work, "histories.txt"), "w") as f:
        f.write("".join(",".join(items) + "\n" for _, items in histories))
      sample_seconds = time.perf_counter() - t
    print("[%s] %s ..." % (time.strftime("%H:%M:%S"), name), flush=True)
    stages[name], stdout, stderr = run_stage(name, commands[name], logs,
                                             args.poll_seconds)
    outputs[name] = (stdout, stderr)
    print("[%s] %s: %.1f s wall, %.1f s CPU, peak RSS %.0f MB" % (
        time.strftime("%H:%M:%S"), name, stages[name]["wall_s"],
        stages[name]["cpu_s"], stages[name]["peak_rss_mb"]), flush=True)
  total = time.perf_counter() - started

  with open(os.path.join(paths["data"], "manifest.json")) as f:
    manifest = json.load(f)
  steps, steps_per_s = _trainer_rate(outputs["train"][1])
  examples = steps * args.batch_size          # the partial batch is dropped
  with open(os.path.join(paths["export"], "item_ids.txt")) as f:
    item_ids = f.read().split()
  with open(os.path.join(work, "retrieved.json")) as f:
    retrieved = json.load(f)
  rate = re.search(r"\(([\d.]+) users/s\)", outputs["retrieve"][0])
  checkpoints = os.path.join(paths["model"], "checkpoints")
  return {
      "params": {name: getattr(args, name) for name in (
          "num_users", "num_items", "num_interactions", "model", "param",
          "batch_size", "max_len", "embedding_dim", "checkpoint_every", "shards",
          "chunk_rows", "nlist", "pq_m", "nprobe", "sample_users", "k", "seed",
          "poll_seconds")},
      "machine": {"cpus": len(os.sched_getaffinity(0)),
                  "mem_total_gb": round(os.sysconf("SC_PHYS_PAGES")
                                        * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
                  "platform": platform.platform(),
                  "python": platform.python_version()},
      "stages": stages,
      "counts": {"generated": {"users": args.num_users, "items": args.num_items,
                               "interactions": args.num_interactions},
                 "manifest": manifest["counts"]},
      "train": {"steps": steps, "loop_steps_per_s": steps_per_s,
                "loop_examples_per_s": round(steps_per_s * args.batch_size),
                "examples": examples,
                "stage_examples_per_s": round(examples / stages["train"]["wall_s"])},
      "sizes_bytes": {"raw": folder_bytes(paths["raw"]),
                      "processed": folder_bytes(paths["data"]),
                      "checkpoint": folder_bytes(checkpoints),
                      "export": folder_bytes(paths["export"]),
                      "item_embeddings": folder_bytes(os.path.join(
                          paths["export"], "item_embeddings.npy")),
                      "index": folder_bytes(paths["index"])},
      "retrieval": dict(check_retrieval(retrieved, histories, item_ids, args.k),
                        sample_seconds=round(sample_seconds, 2),
                        users_per_s=float(rate.group(1)) if rate else None),
      "total_wall_s": round(total, 2),
  }


def table(summary):
  """The per-stage table (Markdown) and the throughput lines."""
  lines = ["| stage | wall s | CPU s | peak RSS (largest process) | peak RSS "
           "(process tree, sampled) | load avg (1 min) start/end |",
           "|---|---|---|---|---|---|"]
  for name, s in summary["stages"].items():
    lines.append("| %s | %.1f | %.1f | %.0f MB | %.0f MB | %.1f / %.1f |" % (
        name, s["wall_s"], s["cpu_s"], s["peak_rss_mb"], s["peak_tree_rss_mb"],
        s["load_avg_start"][0], s["load_avg_end"][0]))
  train = summary["train"]
  lines.append("train: %d steps, %.2f steps/s in the loop = %d examples/s; "
               "%d examples / stage wall = %d examples/s" % (
                   train["steps"], train["loop_steps_per_s"],
                   train["loop_examples_per_s"], train["examples"],
                   train["stage_examples_per_s"]))
  lines.append("sizes: " + ", ".join("%s %.1f MB" % (k, v / 1e6) for k, v in
                                     summary["sizes_bytes"].items()))
  r = summary["retrieval"]
  lines.append("retrieval: %d of %d sampled users got %d distinct items"
               % (r["users_with_k_distinct_items"], r["users"], summary["params"]["k"]))
  return "\n".join(lines)


def main(argv=None):
  args = parse_args(argv)
  work = args.workdir or tempfile.mkdtemp(prefix="dcg_scale_rehearsal_")
  os.makedirs(work, exist_ok=True)
  try:
    summary = rehearse(args, work)
  finally:
    if not args.keep:
      shutil.rmtree(work, ignore_errors=True)
  common.write_json(args.output, summary)
  print(table(summary))
  return summary


if __name__ == "__main__":
  main()
