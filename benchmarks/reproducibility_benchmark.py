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

Without a config a model trains with `--all_prefixes` and `--batch_size`;
`--configs=multi_clrec=experiments/configs/multi_clrec_s3rec_beauty.cfg`
trains it from that flagfile instead. `--extra_flags` are appended to every
training command (e.g. `--optimizer=sgd`).
"""

import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)

from benchmarks import common  # noqa: E402
from dcg_tf.training import checkpoint  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(model, data_dir, model_dir, steps, batch_size, config, extra_flags):
  """One `experiments.train` run; raises with its stderr tail on failure."""
  args = [sys.executable, "-m", "experiments.train", "--data_dir=" + data_dir,
          "--model_dir=" + model_dir, "--progress=false"]
  if config:
    args.append("--flagfile=" + config)
  else:
    args += ["--model=" + model, "--all_prefixes", "--batch_size=%d" % batch_size]
  args += ["--steps=%d" % steps] + list(extra_flags)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                        check=False)
  if proc.returncode != 0:
    raise RuntimeError("training %s failed:\n%s" % (model, proc.stderr[-3000:]))


def compare_runs(model, data_dir, work_dir, steps, batch_size, config, extra_flags):
  """Trains `model` twice; returns its difference summary."""
  dirs = [os.path.join(work_dir, "%s_run%d" % (model, k)) for k in (1, 2)]
  for model_dir in dirs:
    train(model, data_dir, model_dir, steps, batch_size, config, extra_flags)
  diff = checkpoint.checkpoint_difference(*[checkpoint.checkpoint_path(d) for d in dirs])
  worst = max(diff, key=diff.get)
  return {"float_variables": len(diff),
          "differing_variables": sum(v > 0 for v in diff.values()),
          "max_abs_difference": diff[worst],
          "worst_variable": worst if diff[worst] > 0 else None,
          "bitwise_equal": diff[worst] == 0.0}


def main(argv=None):
  parser = common.make_parser(__doc__)
  parser.add_argument("--data_dir", default="", help="processed dataset")
  parser.add_argument("--models", default="two_tower,clrec,multi_clrec")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--configs", default="",
                      help="model=flagfile pairs, comma separated")
  parser.add_argument("--extra_flags", default="",
                      help="space-separated flags added to every training run")
  parser.add_argument("--work_dir", default="", help="default: a temporary folder")
  args = common.parse(parser, argv, {"models": "two_tower", "steps": 3,
                                     "batch_size": 8})
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
    for model in [m for m in args.models.split(",") if m]:
      results[model] = compare_runs(model, data_dir, work_dir, args.steps,
                                    args.batch_size, configs.get(model),
                                    args.extra_flags.split())
      print("%-14s %2d of %2d float variables differ, max |diff| %.3g%s" % (
          model, results[model]["differing_variables"],
          results[model]["float_variables"], results[model]["max_abs_difference"],
          "" if results[model]["bitwise_equal"]
          else " (%s)" % results[model]["worst_variable"]))
  summary = {"data_dir": data_dir, "steps": args.steps, "configs": configs,
             "extra_flags": args.extra_flags, "results": results}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
