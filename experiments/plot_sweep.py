r"""A metric against one hyper-parameter, per model family, from run records.

SSL-CFM Figures 6 (Recall@50 against alpha, CFM vs SO) and 7 (against dr,
CFM vs FD), the baseline as a dashed line:

  python -m experiments.plot_sweep --results_dir=docs/results/ssl_cfm/sweeps \
      --dataset=ml_small --param=ssl_weight --models=ssl_cfm,spread_out \
      --baseline=ssl_baseline --metric=Recall@50 \
      --output=docs/results/ssl_cfm/figure6_ml_small.json \
      --png=docs/results/ssl_cfm/figure6_ml_small.png
  python -m experiments.plot_sweep --results_dir=docs/results/ssl_cfm/sweeps \
      --dataset=ml_small --param=dropout_rate --models=ssl_cfm,feature_dropout \
      --baseline=ssl_baseline --metric=Recall@50 \
      --output=docs/results/ssl_cfm/figure7_ml_small.json \
      --png=docs/results/ssl_cfm/figure7_ml_small.png

The records are those `experiments.leaderboard` writes under `--results_dir`
(`<dataset>/<model>/seed<k>.json`, e.g. from the grid flagfiles
experiments/configs/ssl_cfm/ssl_cfm_alpha*.cfg, spread_out_alpha*.cfg,
ssl_cfm_dr*.cfg, feature_dropout_dr*.cfg). A family's points are its records
that differ from the family's own record only in `--param`
(`dcg_tf.evaluation.sweep.series`); each point is the mean with a +- one
standard deviation error bar over seeds (the number of seeds in the JSON).
`--metric=Recall@50` plots the test figure (the paper's curves);
`--metric=valid_Recall@50` the validation figure, on which alpha and dr are
chosen.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import os
import sys

from absl import app
from absl import flags

from dcg_tf.evaluation import comparison
from dcg_tf.evaluation import sweep

FLAGS = flags.FLAGS

flags.DEFINE_string("results_dir", None, "Folder of leaderboard run records.")
flags.DEFINE_string("dataset", None, "Dataset name of the records.")
flags.DEFINE_string("param", "ssl_weight", "The swept parameter (a params key).")
flags.DEFINE_list("models", ["ssl_cfm", "spread_out"],
                  "Model families, one curve each.")
flags.DEFINE_string("baseline", "ssl_baseline",
                    "Model drawn as a dashed line (empty: none).")
flags.DEFINE_string("metric", "Recall@50", "A key of the records' metrics "
                    "(test), or valid_<key> (the best epoch's validation).")
flags.DEFINE_enum("x_scale", "auto", ["auto", "linear", "log"],
                  "auto: log when every x > 0 and max / min >= 10.")
flags.DEFINE_string("output", None, "Output JSON (the plotted values).")
flags.DEFINE_string("png", None, "Output PNG.")


def build(records, dataset, param, models, metric, baseline_model=None):
  """The plotted values: {"dataset", "param", "metric", "series", "baseline"}."""
  report = {"dataset": dataset, "param": param, "metric": metric,
            "error_bars": "mean +- sample std (ddof=1) over seeds",
            "series": {m: sweep.series(records, dataset, m, param, metric)
                       for m in models},
            "baseline": None}
  if baseline_model:
    report["baseline"] = dict(
        sweep.baseline(records, dataset, baseline_model, metric),
        model=baseline_model)
  return report


def x_scale(report, scale="auto"):
  if scale != "auto":
    return scale
  xs = [p["x"] for points in report["series"].values() for p in points]
  if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
    return "log"
  return "linear"


def plot(report, path, scale="auto"):
  """Error-bar curves per family and the baseline as a dashed line."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axis = pyplot.subplots(figsize=(5.5, 4))
  for name, points in report["series"].items():
    axis.errorbar([p["x"] for p in points], [p["mean"] for p in points],
                  yerr=[p["std"] for p in points], marker="o", capsize=3,
                  label=name)
  base = report["baseline"]
  if base:
    axis.axhline(base["mean"], linestyle="--", color="gray",
                 label="%s (%s)" % (base["model"],
                                    comparison.format_summary(base)))
  axis.set_xscale(x_scale(report, scale))
  xs = sorted({p["x"] for points in report["series"].values() for p in points})
  axis.set_xticks(xs, minor=False)
  axis.set_xticks([], minor=True)
  axis.set_xticklabels(["%g" % x for x in xs])
  axis.set_xlabel(report["param"])
  metric = report["metric"]
  axis.set_ylabel(metric[len("valid_"):] + " (validation)"
                  if metric.startswith("valid_") else metric + " (test)")
  axis.set_title("%s: %s against %s" % (report["dataset"], report["metric"],
                                        report["param"]))
  axis.grid(True, alpha=0.3)
  axis.legend(fontsize=8)
  cli.save_png(figure, path)


def main(argv):
  del argv
  if not FLAGS.results_dir or not FLAGS.dataset:
    raise app.UsageError("--results_dir and --dataset are required")
  if not os.path.isdir(FLAGS.results_dir):
    raise FileNotFoundError(2, "No such results folder", FLAGS.results_dir)
  records = comparison.load_records(FLAGS.results_dir)
  try:
    report = build(records, FLAGS.dataset, FLAGS.param, FLAGS.models,
                   FLAGS.metric, FLAGS.baseline or None)
  except ValueError as e:
    raise app.UsageError("%s (records under %s)" % (e, FLAGS.results_dir))
  if FLAGS.output:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
      json.dump(report, f, indent=1, sort_keys=True)
  if FLAGS.png:
    plot(report, FLAGS.png, FLAGS.x_scale)
  print("| model | %s | %s (mean ± std (seeds)) |" % (FLAGS.param, FLAGS.metric))
  print("|---|---:|---:|")
  for name, points in report["series"].items():
    for p in points:
      print("| %s | %g | %s |" % (name, p["x"], comparison.format_summary(p)))
  if report["baseline"]:
    print("| %s (baseline) | | %s |" % (report["baseline"]["model"],
                                         comparison.format_summary(report["baseline"])))
  sys.stdout.flush()


if __name__ == "__main__":
  cli.run(main)
