r"""Prints the top-K items for a history of raw item ids.

  python -m experiments.retrieve --export_dir=DIR --history=ITEM,ITEM,... \
      [--k=20] [--index_dir=DIR] [--keep_history] [--beta=B]

The same through Python: `dcg_tf.Retriever.from_export(DIR).retrieve([...])`.
Without `--index_dir` the search is exact; with it, the Faiss index built by
experiments/build_index.py, one file or `--shards=N` files (refused when built
from another export).
`--beta` overrides the popularity knob of an export written with `--beta`.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

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


def run(export_dir, history, k=20, index_dir=None, keep_history=False, beta=None):
  """Returns the printed lines: a header, then `rank item_id score` per item."""
  retriever = Retriever.from_export(export_dir, index_dir, beta)
  known = sum(1 for item in history if item in retriever.item_row)
  results = retriever.retrieve(history, k=k, exclude_history=not keep_history)
  lines = ["%r; history of %d items (%d known)" % (retriever, len(history), known)]
  lines += ["%3d  %-24s %.6f" % (rank, item_id, score)
            for rank, (item_id, score) in enumerate(results, 1)]
  return lines


def main(argv):
  del argv
  if not FLAGS.export_dir or FLAGS.history is None:
    raise app.UsageError("--export_dir and --history are required")
  history = [item.strip() for item in FLAGS.history.split(",") if item.strip()]
  for line in run(FLAGS.export_dir, history, FLAGS.k, FLAGS.index_dir,
                  FLAGS.keep_history, FLAGS.beta):
    print(line)


if __name__ == "__main__":
  cli.run(main)
