"""Writes synthetic raw data in the formats the loaders read.

  python -m experiments.generate_synthetic --output_dir=/tmp/syn \
      --num_events=100000 --formats=amazon,sequence,movielens

amazon: reviews_Synthetic.json + meta_Synthetic.json (2014 formats);
sequence: synthetic.txt (`user item` lines); movielens: movielens/ratings.csv,
movies.csv, tags.csv; correlated: correlated.csv, the events plus 8 item
fields in 3 groups of planted mutual information (SSL-CFM; group 0's latent
is the item's category modulo 16, so behaviour depends on it), preprocessed
with

  python -m experiments.preprocess --format=csv --input=OUT/correlated.csv \
      --csv_timestamp=timestamp --csv_multi_features=g0_f2 \
      --csv_item_features=g0_f0,g0_f1,g1_f0,g1_f1,g1_f2,g2_f0,g2_f1 \
      --output_dir=DATA

With `DCG_TF_TINY=1` in the environment, at most `TINY_EVENTS` events are
written whatever `--num_events` says (a note goes to stderr): every command
of README.md and docs/ then runs on a tiny dataset in seconds, which is how
CI runs them as written (tests/test_doc_commands.py).
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import os
import sys

from absl import app
from absl import flags

from dcg_tf.data import synthetic

flags.DEFINE_string("output_dir", None, "Folder for the raw files.")
flags.DEFINE_integer("num_events", 100_000, "Approximate number of events.")
flags.DEFINE_integer("num_users", 0, "Users (0 = num_events / 12).")
flags.DEFINE_integer("num_items", 0, "Items (0 = num_events / 25).")
flags.DEFINE_bool("exact", False, "Exactly --num_events events, --num_users users "
                  "and --num_items items, each item in at least one event "
                  "(both counts must be set).")
flags.DEFINE_list("formats", ["amazon", "sequence", "movielens"], "Formats to write.")
flags.DEFINE_bool("gzip", False, "amazon: write .json.gz files.")
flags.DEFINE_integer("seed", 0, "Random seed.")
FLAGS = flags.FLAGS

TINY_ENV = "DCG_TF_TINY"
TINY_EVENTS = 5000


def tiny():
  """True when `DCG_TF_TINY` asks for tiny data (see the module doc)."""
  return os.environ.get(TINY_ENV, "").lower() not in ("", "0", "false", "no")


def generate(output_dir, num_events, formats, num_users=0, num_items=0, seed=0,
             compress=False, exact=False):
  """Generates and writes; returns the list of written paths."""
  data = synthetic.generate(num_events, num_users=num_users or None,
                            num_items=num_items or None, exact=exact, seed=seed)
  os.makedirs(output_dir, exist_ok=True)
  written = []
  for fmt in formats:
    if fmt == "amazon":
      written += synthetic.write_amazon_2014(data, output_dir, compress=compress,
                                             seed=seed)
    elif fmt == "sequence":
      written.append(synthetic.write_sequence_pairs(
          data, os.path.join(output_dir, "synthetic.txt")))
    elif fmt == "movielens":
      written.append(synthetic.write_movielens(
          data, os.path.join(output_dir, "movielens"), seed=seed))
    elif fmt == "correlated":
      fields = synthetic.generate_correlated_fields(
          data.num_items, seed=seed, latents={0: data.item_category % 16})
      written.append(synthetic.write_correlated_csv(
          data, fields, os.path.join(output_dir, "correlated.csv")))
    else:
      raise app.UsageError("unknown format %r (amazon, sequence, movielens, "
                           "correlated)" % fmt)
  return written


def main(argv):
  del argv
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required")
  num_events = FLAGS.num_events
  if FLAGS.exact and not (FLAGS.num_users and FLAGS.num_items):
    raise app.UsageError("--exact needs --num_users and --num_items")
  if tiny() and num_events > TINY_EVENTS:
    print("%s=%s: %d events instead of %d" % (TINY_ENV, os.environ[TINY_ENV],
                                             TINY_EVENTS, num_events), file=sys.stderr)
    num_events = TINY_EVENTS
  for path in generate(FLAGS.output_dir, num_events, FLAGS.formats,
                       FLAGS.num_users, FLAGS.num_items, FLAGS.seed, FLAGS.gzip,
                       FLAGS.exact):
    print(path)
  return 0


if __name__ == "__main__":
  cli.run(main)
