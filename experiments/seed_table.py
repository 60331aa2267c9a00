r"""Summarises evaluation JSONs over seeds: mean ± std per model, Welch t-tests.

  python -m experiments.seed_table \
      --runs=clrec=docs/results/clrec/table8_equal_negatives/clrec,sampled_softmax=... \
      --columns=popular100:HR@1,popular100:HR@10,full:HR@10 \
      --compare_to=sampled_softmax --output=table.md

Each `--runs` folder holds `seed<k>_<protocol>.json`, the `--output` files of
`experiments.evaluate` (one per seed and protocol; `seed<k>_train_seconds.txt`
beside them, if present, gives the training wall time). A column is
`PROTOCOL:METRIC`. For runs that `experiments.leaderboard` cannot make (its
runs select the epoch on validation; the BERT4Rec protocol of CLRec's Table 8
refits on training + validation events and scores once), this is the same
summary as the leaderboard's: mean ± sample standard deviation (number of
seeds), and for each model against each `--compare_to` model the difference
of means and Welch's two-sided t-test per column.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import glob
import os
import re

from absl import app
from absl import flags

from dcg_tf.evaluation import comparison

FLAGS = flags.FLAGS

flags.DEFINE_list("runs", [], "NAME=FOLDER pairs; FOLDER holds seed<k>_<protocol>.json.")
flags.DEFINE_list("columns", ["popular100:HR@10", "full:HR@10"],
                  "PROTOCOL:METRIC columns.")
flags.DEFINE_list("compare_to", [], "Reference models of the Welch t-tests.")
flags.DEFINE_string("title", "", "A heading line for the table (optional).")
flags.DEFINE_string("output", None, "Markdown file to write (default: stdout).")

_FILE_RE = re.compile(r"seed(\d+)_([A-Za-z0-9]+)\.json$")


def load_runs(folder):
  """{seed: {protocol: metrics dict}} and {seed: train seconds} of a folder."""
  import json  # pylint: disable=g-import-not-at-top
  runs, seconds = {}, {}
  for path in sorted(glob.glob(os.path.join(folder, "seed*_*.json"))):
    match = _FILE_RE.search(os.path.basename(path))
    if not match:
      continue
    with open(path) as f:
      runs.setdefault(int(match.group(1)), {})[match.group(2)] = json.load(f)
  for seed in runs:
    path = os.path.join(folder, "seed%d_train_seconds.txt" % seed)
    if os.path.exists(path):
      with open(path) as f:
        seconds[seed] = float(f.read().strip())
  return runs, seconds


def column_values(runs, column):
  """The column's value for every seed that has it, in seed order."""
  protocol, metric = column.split(":", 1)
  return [runs[s][protocol][metric] for s in sorted(runs)
          if protocol in runs[s] and metric in runs[s][protocol]]


def render(models, columns, compare_to=(), title=""):
  """Markdown: one row per model (mean ± std (n)), then the t-tests."""
  lines = ([title, ""] if title else []) + [
      "| model | " + " | ".join(columns) + " | seeds | train time |",
      "|---|" + "---|" * (len(columns) + 2)]
  for name, (runs, seconds) in models.items():
    cells = []
    for column in columns:
      values = column_values(runs, column)
      cells.append(comparison.format_summary(
          comparison.summarize(values), digits=0 if "coverage" in column else 4)
                   if values else "-")
    minutes = ("%.0f min" % (sum(seconds.values()) / len(seconds) / 60.0)
               if seconds else "-")
    lines.append("| %s | %s | %s | %s |" % (
        name, " | ".join(cells), ",".join(str(s) for s in sorted(runs)), minutes))
  if compare_to:
    lines += ["", "| model | reference | column | difference | t | p |",
              "|---|---|---|---|---|---|"]
    for reference in compare_to:
      if reference not in models:
        raise ValueError("--compare_to %s is not one of --runs (%s)"
                         % (reference, ", ".join(models)))
      for name, (runs, _) in models.items():
        if name == reference:
          continue
        for column in columns:
          a = column_values(runs, column)
          b = column_values(models[reference][0], column)
          if len(a) < 2 or len(b) < 2:
            continue
          t, p, _ = comparison.welch_t_test(a, b)
          lines.append("| %s | %s | %s | %+.4f | %.2f | %.3f |" % (
              name, reference, column, sum(a) / len(a) - sum(b) / len(b), t, p))
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  runs = cli.parse_pairs(FLAGS.runs, "runs")
  if not runs:
    raise app.UsageError("--runs is required")
  for column in FLAGS.columns:
    if ":" not in column:
      raise app.UsageError("--columns: %r is not PROTOCOL:METRIC" % column)
  models = {}
  for name, folder in runs.items():
    if not os.path.isdir(folder):
      raise app.UsageError("--runs %s=%s: no such folder" % (name, folder))
    models[name] = load_runs(folder)
    if not models[name][0]:
      raise app.UsageError("--runs %s=%s: no seed<k>_<protocol>.json in it"
                           % (name, folder))
  try:
    page = render(models, FLAGS.columns, FLAGS.compare_to, FLAGS.title)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write(page)
  else:
    print(page, end="")
  return 0


if __name__ == "__main__":
  cli.run(main)
