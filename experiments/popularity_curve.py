r"""The accuracy / diversity curve of the serving-time popularity knob.

  python -m experiments.popularity_curve \
      --models=clrec=runs/clrec_select,sampled_softmax=runs/sampled_softmax_select \
      --data_dir=DATA --checkpoint=best --output=runs/popularity_curve.json \
      --png=docs/results/clrec_popularity_curve_beauty.png \
      [--betas=-0.04,-0.02,0,0.01,0.02,0.035,0.05,0.07,0.1] [--k=10] \
      [--select_metric=HR@10]

For each model, items are ranked over the whole catalog (the `full` protocol,
the user's earlier items excluded) by `s(u, i) + beta * log p(i)`, p the
smoothed training popularity (`dcg_tf.evaluation.popularity_correction`), at
every beta of the grid, on the validation split and on the test split
(`dcg_tf.evaluation.evaluator.evaluate_betas`: users encoded once per split).
beta is chosen on validation only (the largest `--select_metric`; ties: the
smallest |beta|), and the test figures at that beta are reported beside the
whole test curve.

beta is in the units of the model's scores: for a cosine model trained at
temperature T, beta = T adds back the whole log p(y) that CLRec's
Theorem 1 takes out of its logits.

The validation split cannot score a model trained with `--train_on_valid`
(its validation targets are training events): choose beta with the model
trained on training events only (the Table 8 protocol's step 1), then apply it
to the final fit with `experiments.evaluate --beta`.

Writes `--output` (JSON: every point, the chosen beta, p's definition) and
`--png` (HR@k against coverage@k, one curve per model, points labelled by
beta; validation and test side by side).
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import os
import sys

from absl import app
from absl import flags

import numpy as np

from dcg_tf.evaluation import evaluator
from dcg_tf.evaluation import popularity_correction
from dcg_tf.towers.encode_catalog import encode_catalog
from dcg_tf.training import checkpoint

FLAGS = flags.FLAGS

DEFAULT_BETAS = ("-0.04", "-0.02", "0", "0.01", "0.02", "0.035", "0.05", "0.07",
                 "0.1")
SPLITS = ("valid", "test")

flags.DEFINE_list("models", [], "NAME=MODEL_DIR pairs (experiments/train.py runs).")
flags.DEFINE_string("data_dir", None,
                    "Processed dataset; default: the one recorded at training.")
flags.DEFINE_list("betas", list(DEFAULT_BETAS), "The beta grid.")
flags.DEFINE_integer("k", 10, "Cut-off of the curve (HR@k, coverage@k).")
flags.DEFINE_string("select_metric", None,
                    "Validation metric maximised to choose beta; default HR@<k>.")
flags.DEFINE_enum("checkpoint", "latest", list(checkpoint.CHECKPOINTS),
                  "Which weights of every model.")
flags.DEFINE_integer("batch_size", 512, "Users per user-tower batch.")
flags.DEFINE_string("output", None, "Output JSON file.")
flags.DEFINE_string("png", None, "Output PNG (HR@k against coverage@k).")


def choose_beta(points, metric):
  """The beta of `points` (dicts with "beta" and `metric`) with the largest
  metric; ties go to the smallest |beta|, then to the first listed."""
  best = max(range(len(points)),
             key=lambda i: (points[i][metric], -abs(points[i]["beta"]), -i))
  return points[best]["beta"]


def curve(model_dir, data_dir, betas, k, which="latest", batch_size=512):
  """{"valid": [points], "test": [points]} of one model; a point per beta."""
  info = checkpoint.read_run_info(model_dir)
  model, data = checkpoint.load_trained_model(model_dir, data_dir, which)
  if getattr(data, "validation_in_train", False):
    raise ValueError(
        "%s was trained with its validation events (--train_on_valid), so the "
        "valid split cannot choose beta; run this on the model trained on "
        "training events only, then evaluate the final fit with "
        "python -m experiments.evaluate --beta=<chosen>" % model_dir)
  max_len = info.get("trainer", {}).get("max_len", 50)
  items = encode_catalog(model.item_tower, data.num_items)         # [N, D]
  ks = tuple(sorted({1, k}))
  keys = ("HR@%d" % k, "NDCG@%d" % k, "coverage@%d" % k, "popularity@%d" % k)
  out = {"experiment": info.get("experiment"), "model_dir": model_dir,
         "data_dir": data.directory, "dataset_fingerprint": data.fingerprint}
  for split in SPLITS:
    results = evaluator.evaluate_betas(
        evaluator.model_user_tower_fn(model), items, data, betas, split=split,
        protocol="full", ks=ks, max_len=max_len, batch_size=batch_size,
        progress=False)
    out[split] = [dict({key: r[key] for key in keys}, beta=float(beta),
                       num_users=r["num_users"])
                  for beta, r in zip(betas, results)]
  return out


def run(models, data_dir=None, betas=DEFAULT_BETAS, k=10, select_metric=None,
        which="latest", batch_size=512, png=None):
  """Curves of every model, the validation-chosen beta; the JSON-ready dict."""
  betas = [float(b) for b in betas]
  select_metric = select_metric or "HR@%d" % k
  report = {"betas": betas, "k": k, "select_metric": select_metric,
            "selected_on": "valid", "checkpoint": which,
            "popularity": {key: value for key, value
                           in popularity_correction.describe(0.0).items()
                           if key != "beta"},
            "models": {}}
  for name, model_dir in models.items():
    result = curve(model_dir, data_dir, betas, k, which, batch_size)
    chosen = choose_beta(result["valid"], select_metric)
    result["chosen_beta"] = chosen
    result["test_at_chosen_beta"] = next(p for p in result["test"]
                                         if p["beta"] == chosen)
    report["models"][name] = result
  if png:
    plot(report, png)
  return report


def plot(report, path):
  """HR@k against coverage@k, one curve per model and split, beta labels."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  k = report["k"]
  figure, axes = pyplot.subplots(1, len(SPLITS), figsize=(6 * len(SPLITS), 4.5))
  for axis, split in zip(np.atleast_1d(axes), SPLITS):
    for name, result in report["models"].items():
      points = result[split]
      x = [p["coverage@%d" % k] for p in points]
      y = [p["HR@%d" % k] for p in points]
      line, = axis.plot(x, y, marker="o", label=name)
      for p, xi, yi in zip(points, x, y):
        axis.annotate("%g" % p["beta"], (xi, yi), textcoords="offset points",
                      xytext=(4, 4), fontsize=7)
        if p["beta"] == result["chosen_beta"]:
          axis.plot([xi], [yi], marker="*", markersize=14, color=line.get_color())
    axis.set_xlabel("coverage@%d (distinct items in all top-%d lists)" % (k, k))
    axis.set_ylabel("full-ranking HR@%d" % k)
    axis.set_title("%s split; star: beta chosen on valid" % split)
    axis.grid(True, alpha=0.3)
    axis.legend()
  figure.suptitle("score + beta log p(item): accuracy against diversity")
  cli.save_png(figure, path)


def main(argv):
  del argv
  if not FLAGS.models or not FLAGS.output:
    raise app.UsageError("--models and --output are required")
  try:
    betas = [float(b) for b in FLAGS.betas]
  except ValueError as e:
    raise app.UsageError("--betas must be numbers, got %s" % FLAGS.betas) from e
  report = run(cli.parse_pairs(FLAGS.models, "models"), FLAGS.data_dir, betas, FLAGS.k,
               FLAGS.select_metric, FLAGS.checkpoint, FLAGS.batch_size, FLAGS.png)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(FLAGS.output, "w") as f:
    json.dump(report, f, indent=2, sort_keys=True)
  k = FLAGS.k
  for name, result in report["models"].items():
    print("%s: beta chosen on valid = %g" % (name, result["chosen_beta"]))
    print("| split | beta | HR@%d | coverage@%d | popularity@%d |" % (k, k, k))
    print("|---|---:|---:|---:|---:|")
    for split in SPLITS:
      for p in result[split]:
        print("| %s | %g | %.4f | %d | %.4f |" % (
            split, p["beta"], p["HR@%d" % k], p["coverage@%d" % k],
            p["popularity@%d" % k]))
  sys.stdout.flush()


if __name__ == "__main__":
  cli.run(main)
