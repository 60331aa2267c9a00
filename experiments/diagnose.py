r"""Diagnoses a trained model: item-tower collapse and Multi-CLRec intention use.

  python -m experiments.diagnose --model_dir=DIR [--data_dir=DIR] \
      [--checkpoint=latest|best] [--split=test|valid] [--num_items_sample=2000] \
      [--seed=0] [--max_users=0] [--max_len=N] [--batch_size=512] \
      [--output=FILE.json]

Rebuilds the model of `model_dir` (`dcg_tf.training.checkpoint`) and prints
(and with `--output` writes as JSON) `dcg_tf.evaluation.diagnostics.diagnose`:
- for every model, the mean pairwise cosine, mean norm and effective rank of
  the item-tower embeddings of `--num_items_sample` distinct items drawn with
  `--seed` (a collapsed item tower has cosine near 1, effective rank near 1);
- for a Multi-CLRec user tower (CLRec section 3.2), the number of items 1..N
  that the Eq. 7 routing sends to each intention, and the number of users of
  `--split` (the first `--max_users`, 0 = all) for whom the Eq. 9 selection
  picks each intention, with the history length of training.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import os
import sys

from absl import app
from absl import flags

from dcg_tf.evaluation import diagnostics
from dcg_tf.training import checkpoint

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "A model_dir written by experiments/train.py.")
flags.DEFINE_string("data_dir", None,
                    "Processed dataset; default: the one recorded at training.")
flags.DEFINE_enum("checkpoint", "latest", list(checkpoint.CHECKPOINTS),
                  "Which weights: the end of training or the best validation epoch.")
flags.DEFINE_enum("split", "test", ["test", "valid"],
                  "Whose histories feed the Eq. 9 selection.")
flags.DEFINE_integer("num_items_sample", 2000,
                     "Distinct items sampled for the item-embedding statistics.")
flags.DEFINE_integer("seed", 0, "Seed of the item sample.")
flags.DEFINE_integer("max_users", 0, "Only the first users of --split (0 = all).")
flags.DEFINE_integer("max_len", None, "History length; default: the training one.")
flags.DEFINE_integer("batch_size", 512, "Users per user-tower batch.")
flags.DEFINE_bool("progress", True, "Progress bar on stderr.")
flags.DEFINE_string("output", None, "Optional output JSON file.")


def run(model_dir, data_dir=None, which="latest", split="test",
        num_items_sample=2000, seed=0, max_users=0, max_len=None, batch_size=512,
        progress=False):
  """Diagnoses `model_dir`; returns the JSON-ready report with provenance keys."""
  info = checkpoint.read_run_info(model_dir)
  model, data = checkpoint.load_trained_model(model_dir, data_dir, which)
  max_len = max_len or info.get("trainer", {}).get("max_len", 50)
  report = diagnostics.diagnose(model, data, split=split, max_len=max_len,
                                num_items_sample=num_items_sample, seed=seed,
                                batch_size=batch_size, max_users=max_users,
                                progress=progress)
  report.update(
      model_dir=model_dir, experiment=info.get("experiment"), data_dir=data.directory,
      dataset_fingerprint=data.fingerprint, split=split, max_len=max_len,
      max_users=max_users,
      checkpoint=os.path.relpath(checkpoint.checkpoint_path(model_dir, which),
                                 os.path.join(model_dir, "checkpoints")))
  return report


def main(argv):
  del argv
  if not FLAGS.model_dir:
    raise app.UsageError("--model_dir is required")
  if FLAGS.num_items_sample < 2:
    raise app.UsageError("--num_items_sample must be >= 2, got %d"
                         % FLAGS.num_items_sample)
  if FLAGS.max_users < 0:
    raise app.UsageError("--max_users must be >= 0, got %d" % FLAGS.max_users)
  report = run(FLAGS.model_dir, FLAGS.data_dir, FLAGS.checkpoint, FLAGS.split,
               FLAGS.num_items_sample, FLAGS.seed, FLAGS.max_users, FLAGS.max_len,
               FLAGS.batch_size, FLAGS.progress)
  if FLAGS.output:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
      json.dump(report, f, indent=2, sort_keys=True)
  print("%s (%s, %s split, max_len %d):" % (report["experiment"], report["checkpoint"],
                                           report["split"], report["max_len"]))
  print(diagnostics.to_text(report), end="")
  sys.stdout.flush()


if __name__ == "__main__":
  cli.run(main)
