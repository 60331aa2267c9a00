r"""Evaluates a trained model under one protocol; writes JSON, prints Markdown.

  python -m experiments.evaluate --model_dir=DIR --data_dir=DIR \
      --protocol=full|popular100|uniform100 --output=FILE.json \
      [--split=test] [--keep_train_items] [--ks=1,5,10,20,50,100,200,500] \
      [--candidates_dir=DIR] [--debias_png=FILE.png [--compare=NAME=DIR,...]] \
      [--checkpoint=latest|best] [--beta=0] [--aisl_png=FILE.png]

Rebuilds the model of `model_dir` (`dcg_tf.training.checkpoint`), computes the
item embeddings `item_tower(1..N)` in batches and runs
`dcg_tf.evaluation.evaluator.evaluate` (docs/design.md; the metric definitions
are in `dcg_tf/evaluation/metrics.py`). The sampled protocols reuse the
negatives saved next to the processed dataset (or in `--candidates_dir`), so
every model is scored on the same candidates.

With `--debias_png`, also CLRec's Table 10 and Figure 4 (aggregate diversity of
the top-10 of one sequence per training user; degree-bucket impression
histogram) for this model and the models of `--compare`, stored under
"debias" in the JSON.

With `--beta`, items are ranked by `s(u, i) + beta * log p(i)`, p the smoothed
training popularity (`dcg_tf.evaluation.popularity_correction`); the JSON
records beta and p's definition under "popularity". `--beta=0` (default) is
the plain ranking.

A multi-interest tower (MIND, ComiRec, PCL-AISL: one that returns a mask)
also gets `AINPU` (mean number of active interests K_u over the evaluated
users) and `AINPU_by_activity` (mean K_u per log2 bucket of the user's
training events) in the JSON (`dcg_tf.evaluation.interest_activity`);
`--aisl_png` plots the latter.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import os
import sys

from absl import app
from absl import flags

from dcg_tf.evaluation import debias
from dcg_tf.evaluation import evaluator
from dcg_tf.evaluation import interest_activity
from dcg_tf.evaluation import popularity_correction
from dcg_tf.evaluation import protocols
from dcg_tf.towers.encode_catalog import encode_catalog
from dcg_tf.training import checkpoint

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "A model_dir written by experiments/train.py.")
flags.DEFINE_string("data_dir", None,
                    "Processed dataset; default: the one recorded at training.")
flags.DEFINE_enum("protocol", "full", list(protocols.PROTOCOLS), "Evaluation protocol.")
flags.DEFINE_string("output", None, "Output JSON file.")
flags.DEFINE_string("split", "test", "Evaluation split: valid or test.")
flags.DEFINE_bool("keep_train_items", False,
                  "full protocol: rank the users' earlier items too.")
flags.DEFINE_list("ks", [str(k) for k in evaluator.DEFAULT_KS], "Cut-offs K.")
flags.DEFINE_integer("batch_size", 512, "Users per user-tower batch.")
flags.DEFINE_integer("max_len", None, "History length; default: the training one.")
flags.DEFINE_string("candidates_dir", None,
                    "Folder of the saved sampled negatives; default: data_dir.")
flags.DEFINE_integer("seed", None, "Seed of the sampled negatives (default fixed).")
flags.DEFINE_string("debias_png", None,
                    "Also write CLRec's Figure 4 histogram here (and Table 10).")
flags.DEFINE_list("compare", [],
                  "NAME=MODEL_DIR pairs compared with --model_dir in --debias_png.")
flags.DEFINE_enum("checkpoint", "latest", list(checkpoint.CHECKPOINTS),
                  "Which weights: the end of training or the best validation epoch "
                  "(training with --validate_every); also for --compare.")
flags.DEFINE_float("beta", 0.0,
                   "Popularity knob: rank by s(u, i) + beta * log p(i), p the "
                   "smoothed training popularity; 0 = the plain ranking.")
flags.DEFINE_float("head_fraction", 0.2,
                   "Share of items (by training count) whose targets are head in "
                   "the head_/tail_ metrics; SSL-CFM's Table 4 uses 0.1.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("aisl_png", None,
                    "Multi-interest towers: also plot the mean number of active "
                    "interests per user-activity bucket (PCL-AISL's AINPU) here.")

# Provenance keys of the output JSON, beside the metric keys.
_META_KEYS = ("protocol", "split", "model_dir", "experiment", "data_dir",
              "dataset_fingerprint", "exclude_train_items", "max_len", "debias",
              "checkpoint", "popularity", "head_fraction")


def _load(model_dir, data_dir, which="latest"):
  info = checkpoint.read_run_info(model_dir)
  model, data = checkpoint.load_trained_model(model_dir, data_dir, which)
  return info, model, data


def run(model_dir, data_dir=None, protocol="full", split="test",
        keep_train_items=False, ks=evaluator.DEFAULT_KS, batch_size=512, max_len=None,
        candidates_dir=None, seed=None, debias_png=None, compare=None,
        which="latest", beta=0.0, head_fraction=0.2, aisl_png=None):
  """Evaluates `model_dir`; returns the JSON-ready results dict."""
  if beta and debias_png:
    raise ValueError("--debias_png ranks without the popularity knob; run it "
                     "with --beta=0")
  info, model, data = _load(model_dir, data_dir, which)
  max_len = max_len or info.get("trainer", {}).get("max_len", 50)
  items = encode_catalog(model.item_tower, data.num_items)
  results = evaluator.evaluate(
      evaluator.model_user_tower_fn(model), items, data, split=split, protocol=protocol, ks=ks,
      exclude_train=not keep_train_items, max_len=max_len, batch_size=batch_size,
      candidates_dir=candidates_dir, seed=seed, popularity_beta=beta,
      head_fraction=head_fraction)
  if beta:
    results["popularity"] = popularity_correction.describe(beta)
  results.update(protocol=protocol, split=split, model_dir=model_dir,
                 experiment=info.get("experiment"), data_dir=data.directory,
                 dataset_fingerprint=data.fingerprint,
                 exclude_train_items=not keep_train_items, max_len=max_len,
                 checkpoint=os.path.relpath(checkpoint.checkpoint_path(model_dir, which),
                                            os.path.join(model_dir, "checkpoints")))
  if aisl_png:
    if "AINPU" not in results:
      raise ValueError("--aisl_png: %s (%s) is not a multi-interest model (its "
                       "user tower returns no interest mask); drop --aisl_png"
                       % (model_dir, info.get("experiment")))
    interest_activity.plot_interest_activity(
        {info.get("experiment") or os.path.basename(model_dir): results},
        aisl_png, max_interests=getattr(model.user_tower, "max_interests", None))
  if debias_png:
    models = {info.get("experiment") or os.path.basename(model_dir):
              (evaluator.model_user_tower_fn(model), items)}
    for name, other_dir in (compare or {}).items():
      _, other, other_data = _load(other_dir, data.directory, which)
      if other_data.fingerprint != data.fingerprint:
        raise ValueError("--compare %s=%s was trained on another dataset"
                         % (name, other_dir))
      models[name] = (evaluator.model_user_tower_fn(other),
                      encode_catalog(other.item_tower, data.num_items))
    results["debias"] = debias.debias_report(models, data, k=10, max_len=max_len,
                                             png_path=debias_png)
  return results


def main(argv):
  del argv
  for name in ("model_dir", "output"):
    if not getattr(FLAGS, name):
      raise app.UsageError("--%s is required" % name)
  try:
    ks = tuple(sorted({int(k) for k in FLAGS.ks}))
  except ValueError as e:
    raise app.UsageError("--ks must be integers, got %s" % FLAGS.ks) from e
  if not ks or ks[0] < 1:
    raise app.UsageError("--ks must be positive integers, got %s" % FLAGS.ks)
  results = run(FLAGS.model_dir, FLAGS.data_dir, FLAGS.protocol, FLAGS.split,
                FLAGS.keep_train_items, ks, FLAGS.batch_size, FLAGS.max_len,
                FLAGS.candidates_dir, FLAGS.seed, FLAGS.debias_png,
                cli.parse_pairs(FLAGS.compare, "compare"), FLAGS.checkpoint, FLAGS.beta,
                FLAGS.head_fraction, FLAGS.aisl_png)
  output_dir = os.path.dirname(os.path.abspath(FLAGS.output))
  os.makedirs(output_dir, exist_ok=True)
  with open(FLAGS.output, "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  print("%s on %s (%s split, %d users):" % (results["experiment"], FLAGS.protocol,
                                           FLAGS.split, results["num_users"]))
  print(evaluator.to_markdown({k: v for k, v in results.items()
                               if k not in _META_KEYS}))
  if "debias" in results:
    print("Aggregate diversity (top-10, one sequence per training user): %s"
          % results["debias"]["aggregate_diversity"])
  sys.stdout.flush()


if __name__ == "__main__":
  cli.run(main)
