"""Raw public data -> processed dataset (docs/data.md).

  python -m experiments.preprocess --format=amazon \
      --input=reviews_Books.json.gz,meta_Books.json.gz --output_dir=/tmp/books \
      --split=dien --min_user_interactions=5 --min_item_interactions=5

Prints a summary of kept and dropped rows; exits with status 2 and a one-line
message that names the file when a file has more bad lines than
--max_bad_fraction or when nothing usable is left (`experiments/cli.py`).
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import os
import shutil
import tempfile

from absl import app
from absl import flags

from dcg_tf.data import preprocess as preprocess_lib
from dcg_tf.data import synthetic
from dcg_tf.data.loaders import LOADERS
from dcg_tf.data.report import BadInputError

FORMATS = tuple(LOADERS) + ("synthetic",)

flags.DEFINE_enum("format", None, FORMATS, "Raw data format.")
flags.DEFINE_list("input", [], "Input files or folders, comma separated.")
flags.DEFINE_string("output_dir", None, "Processed dataset folder (must not exist "
                    "unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")
flags.DEFINE_enum("split", "leave_one_out", preprocess_lib.SPLITS, "Split protocol.")
flags.DEFINE_integer("min_user_interactions", 0, "k-core: minimum events per user.")
flags.DEFINE_integer("min_item_interactions", 0, "k-core: minimum events per item.")
flags.DEFINE_integer("max_history", 0, "Keep each user's last N events (0 = all).")
flags.DEFINE_integer("session_gap", 3600, "Inactivity gap (s) that starts a session.")
flags.DEFINE_float("max_bad_fraction", 0.01, "Fail when a file has more bad lines.")
flags.DEFINE_float("min_rating", None, "Explicit feedback: keep only events "
                   "rated >= this (e.g. 4 on MovieLens' 0.5-5 stars); the rest "
                   "are counted as dropped (below_min_rating). Default: all.")
flags.DEFINE_bool("dedup", True, "Drop repeated (user, item, timestamp) events.")
flags.DEFINE_integer("cutoff_timestamp", None, "time split: test cut-off (s).")
flags.DEFINE_integer("valid_cutoff_timestamp", None, "time split: valid cut-off (s).")
flags.DEFINE_float("test_days", None, "time split: last N days are test (N before "
                   "them valid).")
flags.DEFINE_float("holdout_users", 0.1, "user split: share of users for valid and "
                   "for test each.")
flags.DEFINE_integer("max_feature_len", 32, "Cap on multi-valued feature length.")
flags.DEFINE_integer("num_shards", 0, "Training shards (0 = one per 1M events).")
flags.DEFINE_bool("dien_layout", False, "Also write DIEN's files under dien/.")
flags.DEFINE_bool("strict_json", False, "amazon: json.loads every review line.")
flags.DEFINE_integer("workers", 0, "amazon: review-parsing processes (0 = auto: up "
                     "to 2 for files over 64 MB).")
flags.DEFINE_integer("seed", 0, "Seed of every random choice.")
# csv column mapping (names, or 0-based positions).
flags.DEFINE_string("csv_user", "user", "csv: user column.")
flags.DEFINE_string("csv_item", "item", "csv: item column.")
flags.DEFINE_string("csv_timestamp", None, "csv: timestamp column (seconds or dates).")
flags.DEFINE_string("csv_rating", None, "csv: rating column.")
flags.DEFINE_list("csv_item_features", [], "csv: single-valued item feature columns.")
flags.DEFINE_list("csv_multi_features", [], "csv: multi-valued item feature columns.")
flags.DEFINE_string("csv_multi_sep", "|", "csv: separator inside multi-valued cells.")
flags.DEFINE_string("csv_sep", ",", "csv: field separator; 'tab' for TSV.")
flags.DEFINE_bool("csv_header", True, "csv: the first line names the columns.")
flags.DEFINE_integer("synthetic_reviews", 100_000, "synthetic: number of reviews.")

FLAGS = flags.FLAGS


def config_from_flags():
  return preprocess_lib.PreprocessConfig(
      split=FLAGS.split, min_user_interactions=FLAGS.min_user_interactions,
      min_item_interactions=FLAGS.min_item_interactions,
      max_history=FLAGS.max_history, session_gap=FLAGS.session_gap,
      dedup=FLAGS.dedup, cutoff_timestamp=FLAGS.cutoff_timestamp,
      valid_cutoff_timestamp=FLAGS.valid_cutoff_timestamp,
      test_days=FLAGS.test_days, holdout_users=FLAGS.holdout_users,
      max_feature_len=FLAGS.max_feature_len, num_shards=FLAGS.num_shards,
      max_bad_fraction=FLAGS.max_bad_fraction, dien_layout=FLAGS.dien_layout,
      seed=FLAGS.seed, min_rating=FLAGS.min_rating)


def loader_options_from_flags(fmt):
  """Keyword arguments of the loader of `fmt` taken from the flags."""
  if fmt == "amazon":
    return {"strict_json": FLAGS.strict_json, "workers": FLAGS.workers or None}
  if fmt == "csv":
    return {"user_col": FLAGS.csv_user, "item_col": FLAGS.csv_item,
            "timestamp_col": FLAGS.csv_timestamp, "rating_col": FLAGS.csv_rating,
            "item_feature_cols": (list(FLAGS.csv_item_features) +
                                  list(FLAGS.csv_multi_features)),
            "multi_valued_cols": list(FLAGS.csv_multi_features),
            "multi_sep": FLAGS.csv_multi_sep,
            "sep": "\t" if FLAGS.csv_sep in ("tab", "\\t") else FLAGS.csv_sep,
            "header": FLAGS.csv_header}
  if fmt == "synthetic":
    return {"num_reviews": FLAGS.synthetic_reviews}
  return {}


def run(fmt, paths, output_dir, config, loader_options=None, overwrite=False):
  """Loads, preprocesses and writes; returns the manifest.

  Args:
    fmt: one of FORMATS ("synthetic" generates Amazon-2014 files of
      `loader_options["num_reviews"]` reviews in a temporary folder first).
    paths: input files/folders.
    output_dir: target folder.
    config: PreprocessConfig.
    loader_options: keyword arguments of the loader.
    overwrite: replace an existing output_dir.

  Raises:
    BadInputError naming the file (bad lines, nothing usable left).
  """
  options = dict(loader_options or {})
  folder = None
  if fmt == "synthetic":
    folder = tempfile.mkdtemp(prefix="dcg_synthetic_")
    data = synthetic.generate(options.pop("num_reviews", 100_000), seed=config.seed)
    paths = list(synthetic.write_amazon_2014(data, folder, seed=config.seed))
    fmt = "amazon"
  try:
    if not paths:
      raise BadInputError("--input is empty")
    raw = LOADERS[fmt](paths, **options)
    return preprocess_lib.preprocess(raw, output_dir, config, input_paths=paths,
                                     source_format=fmt, overwrite=overwrite)
  finally:
    if folder:
      shutil.rmtree(folder, ignore_errors=True)


def main(argv):
  del argv
  if not FLAGS.format or not FLAGS.output_dir:
    raise app.UsageError("--format and --output_dir are required")
  manifest = run(FLAGS.format, FLAGS.input, FLAGS.output_dir, config_from_flags(),
                 loader_options_from_flags(FLAGS.format), FLAGS.overwrite)
  print(preprocess_lib.summary(manifest))
  print("wrote %s" % FLAGS.output_dir)
  return 0


if __name__ == "__main__":
  cli.run(main)
