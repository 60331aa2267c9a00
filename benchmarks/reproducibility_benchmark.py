"""Run-to-run reproducibility: the same training command twice, weights compared.

For each model of `--models`, `python -m experiments.train` runs twice with
the same flags and seed into two fresh folders; the float variables of the two
final checkpoints (model and optimizer state) are compared with
`dcg_tf.training.checkpoint.checkpoint_difference`. Reported per model: how
many variables differ and the largest absolute difference. 0 means the two
runs are bitwise equal.

  python -m benchmarks.reproducibility_benchmark --data_dir=S3DATA \\
      --models=two_tower,clrec,multi_clrec --steps=30 --output=repro.json
  python -m benchmarks.reproducibility_benchmark --quick   # tiny generated data

With `--base_commit=REV` the first run uses the code of another commit instead
(checked out with `git worktree` into a temporary folder and run from there),
so the same command shows whether a change altered what training computes:

  python -m benchmarks.reproducibility_benchmark --data_dir=S3DATA \
      --models=two_tower,clrec --steps=30 --base_commit=660e692 --tolerance=1e-6

Variables that only one side holds (state a change added) are listed, not
compared; the run fails (exit 1) when a common variable differs by more than
`--tolerance` (without it the benchmark only reports).

Without a config a model trains with `--all_prefixes` and `--batch_size`;
`--configs=multi_clrec=experiments/configs/multi_clrec_s3rec_beauty.cfg`
trains it from that flagfile instead. `--extra_flags` are appended to every
training command (e.g. `--optimizer=sgd`).
"""

import contextlib
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)

from benchmarks import common  # noqa: E402
from dcg_tf.training import checkpoint  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(model, data_dir, model_dir, steps, batch_size, config, extra_flags,
          repo=REPO):
  """One `experiments.train` run of the code in `repo`; raises on failure."""
  args = [sys.executable, "-m", "experiments.train", "--data_dir=" + data_dir,
          "--model_dir=" + model_dir, "--progress=false"]
  if config:
    args.append("--flagfile=" + config)
  else:
    args += ["--model=" + model, "--all_prefixes", "--batch_size=%d" % batch_size]
  args += ["--steps=%d" % steps] + list(extra_flags)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=repo)
  proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True,
                        check=False)
  if proc.returncode != 0:
    raise RuntimeError("training %s failed:\n%s" % (model, proc.stderr[-3000:]))


@contextlib.contextmanager
def checkout(commit, work_dir):
  """A `git worktree` of `commit` under `work_dir`, removed afterwards."""
  path = os.path.join(work_dir, "base_" + commit[:12])
  subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", path, commit],
                 check=True)
  try:
    yield path
  finally:
    subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", path],
                   check=False)


def compare_runs(model, data_dir, work_dir, steps, batch_size, config, extra_flags,
                 first_repo=REPO):
  """Trains `model` twice (first with the code of `first_repo`); summarises."""
  dirs = [os.path.join(work_dir, "%s_run%d" % (model, k)) for k in (1, 2)]
  for model_dir, repo in zip(dirs, (first_repo, REPO)):
    train(model, data_dir, model_dir, steps, batch_size, config, extra_flags, repo)
  diff, only = checkpoint.checkpoint_difference(
      *[checkpoint.checkpoint_path(d) for d in dirs], common_only=True)
  worst = max(diff, key=diff.get)
  return {"float_variables": len(diff),
          "differing_variables": sum(v > 0 for v in diff.values()),
          "max_abs_difference": diff[worst],
          "worst_variable": worst if diff[worst] > 0 else None,
          "bitwise_equal": diff[worst] == 0.0,
          "only_in_first": only[0], "only_in_second": only[1]}


def main(argv=None):
  parser = common.make_parser(__doc__)
  parser.add_argument("--data_dir", default="", help="processed dataset")
  parser.add_argument("--models", default=None,
                      help="comma list (default two_tower,clrec,multi_clrec; "
                           "two_tower with --quick)")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--configs", default="",
                      help="model=flagfile pairs, comma separated")
  parser.add_argument("--extra_flags", default="",
                      help="space-separated flags added to every training run")
  parser.add_argument("--work_dir", default="", help="default: a temporary folder")
  parser.add_argument("--base_commit", default="",
                      help="run the first training with the code of this commit")
  parser.add_argument("--tolerance", type=float, default=None,
                      help="largest accepted |difference| (exit 1 above it); "
                           "default: report only")
  args = common.parse(parser, argv, {"steps": 3, "batch_size": 8})
  if args.models is None:
    args.models = "two_tower" if args.quick else "two_tower,clrec,multi_clrec"
  configs = dict(pair.split("=", 1) for pair in args.configs.split(",") if pair)
  with tempfile.TemporaryDirectory() as tmp:
    work_dir = args.work_dir or tmp
    data_dir = args.data_dir
    if args.quick and not data_dir:
      from tests.data import fixtures  # pylint: disable=g-import-not-at-top
      data_dir = fixtures.write_tiny_dataset(os.path.join(work_dir, "data"),
                                             num_users=20, num_items=30, seed=1)
    if not data_dir:
      parser.error("--data_dir is required (or --quick)")
    results = {}
    with contextlib.ExitStack() as stack:
      first_repo = (stack.enter_context(checkout(args.base_commit, work_dir))
                    if args.base_commit else REPO)
      for model in [m for m in args.models.split(",") if m]:
        results[model] = compare_runs(model, data_dir, work_dir, args.steps,
                                      args.batch_size, configs.get(model),
                                      args.extra_flags.split(), first_repo)
        _report(model, results[model])
  failed = [m for m, r in results.items() if args.tolerance is not None
            and r["max_abs_difference"] > args.tolerance]
  summary = {"data_dir": data_dir, "steps": args.steps, "configs": configs,
             "extra_flags": args.extra_flags, "base_commit": args.base_commit,
             "tolerance": args.tolerance, "results": results,
             "within_tolerance": not failed}
  common.write_json(args.output, summary)
  if failed:
    print("above --tolerance=%g: %s" % (args.tolerance, ", ".join(failed)))
  return summary


def _report(model, result):
  print("%-14s %2d of %2d float variables differ, max |diff| %.3g%s" % (
      model, result["differing_variables"], result["float_variables"],
      result["max_abs_difference"],
      "" if result["bitwise_equal"] else " (%s)" % result["worst_variable"]))
  for side in ("only_in_first", "only_in_second"):
    if result[side]:
      print("  %s: %s" % (side.replace("_", " "), ", ".join(result[side])))


if __name__ == "__main__":
  sys.exit(0 if main()["within_tolerance"] else 1)
