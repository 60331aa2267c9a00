r"""Prints the top-K items for a history of raw item ids.

  python -m experiments.retrieve --export_dir=DIR --history=ITEM,ITEM,... \
      [--k=20] [--index_dir=DIR] [--keep_history] [--beta=B]
  python -m experiments.retrieve --export_dir=DIR --history_file=FILE \
      --output=OUT.json [--k=20] [--index_dir=DIR] [--batch_size=256]

The same through Python: `dcg_tf.Retriever.from_export(DIR).retrieve([...])`.
Without `--index_dir` the search is exact; with it, the Faiss index built by
experiments/build_index.py, one file or `--shards=N` files (refused when built
from another export).
`--beta` overrides the popularity knob of an export written with `--beta`.
`--history_file` answers many users at once: one history per line (raw item
ids, comma-separated, oldest first), searched `--batch_size` lines at a time
(`Retriever.retrieve_batch`); `--output` receives a JSON list with one entry
per line, `{"items": [...], "scores": [...]}`, and a one-line summary is
printed.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import time

from absl import app
from absl import flags

from dcg_tf.serving.retriever import Retriever

FLAGS = flags.FLAGS

flags.DEFINE_string("export_dir", None, "An export written by experiments/export.py.")
flags.DEFINE_string("history", None, "Comma-separated raw item ids, oldest first.")
flags.DEFINE_integer("k", 20, "Number of items to print.", lower_bound=1)
flags.DEFINE_string("index_dir", None, "Faiss index from experiments/build_index.py.")
flags.DEFINE_bool("keep_history", False, "Allow the history's items in the results.")
flags.DEFINE_float("beta", None, "Popularity knob (default: the export's).")
flags.DEFINE_string("history_file", None,
                    "Instead of --history: a file of histories, one per line.")
flags.DEFINE_string("output", None, "With --history_file: the JSON results file.")
flags.DEFINE_integer("batch_size", 256, "With --history_file: lines per search.",
                     lower_bound=1)


def run(export_dir, history, k=20, index_dir=None, keep_history=False, beta=None):
  """Returns the printed lines: a header, then `rank item_id score` per item."""
  retriever = Retriever.from_export(export_dir, index_dir, beta)
  known = sum(1 for item in history if item in retriever.item_row)
  results = retriever.retrieve(history, k=k, exclude_history=not keep_history)
  lines = ["%r; history of %d items (%d known)" % (retriever, len(history), known)]
  lines += ["%3d  %-24s %.6f" % (rank, item_id, score)
            for rank, (item_id, score) in enumerate(results, 1)]
  return lines


def run_file(export_dir, history_file, output, k=20, index_dir=None,
             keep_history=False, beta=None, batch_size=256):
  """Answers every line of `history_file` into `output`; returns the summary line."""
  with open(history_file, encoding="utf-8") as f:
    histories = [[item.strip() for item in line.split(",") if item.strip()]
                 for line in f if line.strip()]
  retriever = Retriever.from_export(export_dir, index_dir, beta)
  start = time.perf_counter()
  results = []
  for lo in range(0, len(histories), batch_size):
    results += retriever.retrieve_batch(histories[lo:lo + batch_size], k=k,
                                        exclude_history=not keep_history)
  seconds = time.perf_counter() - start
  with open(output, "w", encoding="utf-8") as f:
    json.dump([{"items": [item for item, _ in row],
                "scores": [score for _, score in row]} for row in results], f)
  return "%r; %d histories, top %d each, in %.2f s (%.0f users/s); wrote %s" % (
      retriever, len(histories), k, seconds, len(histories) / max(seconds, 1e-9),
      output)


def main(argv):
  del argv
  if FLAGS.history_file:
    if not FLAGS.export_dir or not FLAGS.output or FLAGS.history is not None:
      raise app.UsageError("--history_file needs --export_dir and --output, "
                           "and no --history")
    print(run_file(FLAGS.export_dir, FLAGS.history_file, FLAGS.output, FLAGS.k,
                   FLAGS.index_dir, FLAGS.keep_history, FLAGS.beta,
                   FLAGS.batch_size))
    return
  if not FLAGS.export_dir or FLAGS.history is None:
    raise app.UsageError("--export_dir and --history are required")
  history = [item.strip() for item in FLAGS.history.split(",") if item.strip()]
  for line in run(FLAGS.export_dir, history, FLAGS.k, FLAGS.index_dir,
                  FLAGS.keep_history, FLAGS.beta):
    print(line)


if __name__ == "__main__":
  cli.run(main)
