r"""Trains and scores registered models on datasets over seeds; writes the board.

  python -m experiments.leaderboard \
      --datasets=s3rec_beauty=DATA/beauty,s3rec_toys=DATA/toys,ml_small=DATA/ml \
      --models=sasrec,two_tower,clrec --seeds=0,1,2 \
      --configs=experiments/configs/leaderboard \
      --work_dir=runs/leaderboard --results_dir=docs/results/leaderboard \
      --output=docs/results/leaderboard.md

Each (dataset, model, seed) is one run: `experiments.train` with the model's
flagfile `--configs/<model>.cfg` (its budget: epochs, batch, learning rate)
plus `--seed`, validating after every epoch on the validation split
(`--validation_protocol=full --best_metric=NDCG@10`, so the epoch is chosen on
validation only), then `experiments.evaluate --checkpoint=best --protocol=full`
on test: every item ranked, the user's earlier items excluded. Its metrics,
epochs and wall times go to `--results_dir/<dataset>/<model>/seed<k>.json`
(small JSON, committed), and a run whose JSON exists is not run again, so the
board is completed across sessions; a run killed half-way resumes from its
checkpoint in `--work_dir` (not committed).

The page `--output` is rebuilt from every JSON under `--results_dir` (also
alone with `--render_only`): per dataset, one row per model with mean +- std
over seeds, and the published full-ranking figures of
`--published` (a JSON file naming its sources) beside them.

The same command builds a paper's comparison tables: a "model" is the name of
a flagfile in `--configs` (so `ssl_cfm_alpha1` can be `--model=ssl_cfm
--param=ssl_weight=1`), `--ks`, `--columns` and `--eval_flag` choose what is
scored and shown, `--title` heads the page, and `--compare_to` adds Welch
t-tests of every model against reference models on `--test_columns`:

  python -m experiments.leaderboard --title="SSL-CFM, Table 2" \
      --datasets=ml_small=DATA/ml --models=ssl_baseline,ssl_rfm,ssl_cfm \
      --seeds=0,1,2,3,4 --configs=experiments/configs/ssl_cfm \
      --results_dir=docs/results/ssl_cfm/table2 --published= \
      --ks=10,50 --columns=Recall@10,Recall@50,MAP@10,MAP@50 \
      --compare_to=ssl_baseline,ssl_rfm --test_columns=Recall@50 \
      --output=docs/results/ssl_cfm/table2.md

Every record also keeps the best epoch's validation metrics (`valid`), so a
hyper-parameter is chosen from the `valid_` columns (`--columns=valid_NDCG@10`)
without a look at test.

`--protocols=full,uniform100` scores each run's best epoch under several test
protocols (`experiments.evaluate --protocol`): the metrics of `full` keep
their names, the others are prefixed with the protocol (`uniform100_HR@10`,
PCL-AISL's Table 1: the target against 100 uniformly sampled non-interacted
items). A multi-interest model's record also keeps `AINPU` (mean number of
active interests over the test users; no prefix, the same under every
protocol).
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from dcg_tf.evaluation import comparison
from dcg_tf.evaluation import protocols as eval_protocols

FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_list("datasets", [], "NAME=PROCESSED_DIR pairs.")
flags.DEFINE_list("models", [], "Registered experiment names (python -m "
                  "experiments.train --list_models).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each is one run per model.")
flags.DEFINE_string("configs", os.path.join("experiments", "configs", "leaderboard"),
                    "Folder of <model>.cfg flagfiles (one budget per model).")
flags.DEFINE_string("work_dir", os.path.join("runs", "leaderboard"),
                    "Model dirs (checkpoints; not committed).")
flags.DEFINE_string("results_dir", os.path.join("docs", "results", "leaderboard"),
                    "One JSON per finished run (committed).")
flags.DEFINE_string("output", os.path.join("docs", "results", "leaderboard.md"),
                    "The Markdown page.")
flags.DEFINE_string("published", os.path.join("experiments", "configs",
                                              "published_full_ranking.json"),
                    "Published full-ranking figures shown beside ours.")
flags.DEFINE_bool("render_only", False, "Only rebuild --output from --results_dir.")
flags.DEFINE_multi_string("extra_flag", [],
                          "Appended to every training command (e.g. --steps=5 "
                          "for a smoke run).")
flags.DEFINE_multi_string("eval_flag", [],
                          "Appended to every test evaluation (e.g. "
                          "--head_fraction=0.1).")
flags.DEFINE_string("title", "Leaderboard: full ranking, leave-one-out",
                    "The page's heading.")
flags.DEFINE_list("ks", ["10", "20", "50", "200"], "Cut-offs scored on test.")
flags.DEFINE_list("columns", ["HR@10", "HR@20", "NDCG@10", "NDCG@20", "HR@50",
                              "HR@200", "coverage@50"],
                  "Metric columns of the page (any key of the evaluation "
                  "JSON at --ks; valid_<metric> for the validation figure).")
flags.DEFINE_list("protocols", ["full"],
                  "Test protocols scored per run: full keeps the metric names, "
                  "the others prefix them (uniform100_HR@10).")
flags.DEFINE_list("compare_to", [],
                  "Reference models: Welch t-test of every other model "
                  "against each, on --test_columns.")
flags.DEFINE_list("test_columns", [], "Columns of the --compare_to t-tests "
                  "(default: the first of --columns).")

# What the board reports by default (full ranking): the published papers'
# cut-offs and the depths candidate generation serves.
KS = (10, 20, 50, 200)
# Scored in-process without training (dcg_tf.evaluation.nonneural).
NONNEURAL = ("most_popular", "transition")
# The depths at which every model is judged against the transition baseline.
DEPTHS = ("HR@10", "HR@20", "HR@50", "HR@200")


def result_path(results_dir, dataset, model, seed):
  return os.path.join(results_dir, dataset, model, "seed%d.json" % seed)


def _run(args, what, clock=None):
  """Runs `python -m args` from the repository root; raises with its stderr tail.

  Returns the wall seconds; with `clock` (a path), the seconds of every
  earlier invocation recorded there are added (see `_Clock`).
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  timer = _Clock(clock) if clock else None
  start = time.time()
  proc = subprocess.Popen([sys.executable, "-m"] + args, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  while True:
    try:
      _, stderr = proc.communicate(timeout=30)
      break
    except subprocess.TimeoutExpired:
      if timer:
        timer.save()
  seconds = timer.save() if timer else time.time() - start
  if proc.returncode != 0:
    raise RuntimeError("%s failed (exit %d):\n%s" % (what, proc.returncode,
                                                     stderr[-3000:]))
  return seconds


class _Clock:
  """Wall seconds of a training run summed over the invocations that resumed it.

  A run killed half-way and resumed by a later invocation would otherwise
  report only the last invocation's time. The total so far is written to
  `path` every 30 s (so a killed invocation loses at most 30 s of its time)
  and read back by the next one.
  """

  def __init__(self, path):
    self.path = path
    self.start = time.time()
    self.before = 0.0
    if os.path.exists(path):
      with open(path) as f:
        self.before = float(json.load(f)["train_seconds"])

  def save(self):
    total = self.before + time.time() - self.start
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    with open(self.path + ".tmp", "w") as f:
      json.dump({"train_seconds": total}, f)
    os.replace(self.path + ".tmp", self.path)
    return total


# Metrics without a cut-off that a record keeps (AINPU: multi-interest towers).
_SCALARS = ("AINPU",)


def _metrics_at(metrics, ks):
  """The metrics of an evaluation JSON at cut-offs `ks` (e.g. HR@10, tail_HR@10),
  and AINPU where the model has one."""
  return {k: v for k, v in metrics.items()
          if (k in _SCALARS or "@" in k and k.split("@")[-1].isdigit()
              and int(k.split("@")[-1]) in ks)
          and isinstance(v, (int, float))}


def score_baseline(dataset, data_dir, model, seed, ks=KS, protocols=("full",)):
  """A non-neural baseline (no training, no seed dependence) scored on test
  (the transition baseline under `full` only)."""
  from dcg_tf.data.dataset import ProcessedDataset  # pylint: disable=g-import-not-at-top
  from dcg_tf.evaluation import nonneural  # pylint: disable=g-import-not-at-top
  start = time.time()
  data = ProcessedDataset.load(data_dir)
  scored = {}
  for protocol in protocols:
    if protocol != "full" and model != "most_popular":
      continue
    metrics = nonneural.evaluate_baseline(model, data, "test", ks=ks,
                                          protocol=protocol)
    scored.update(_prefixed(_metrics_at(metrics, ks), protocol))
  return {"dataset": dataset, "model": model, "seed": seed,
          "metrics": scored,
          "num_users": metrics["num_users"], "epochs": 0, "best_epoch": 0,
          "train_seconds": 0.0, "eval_seconds": round(time.time() - start, 1),
          "config": None, "dataset_fingerprint": data.fingerprint,
          "commit": _commit()}


def _prefixed(metrics, protocol):
  """`metrics` of one protocol as a record keeps them: `full` as is, others
  prefixed with the protocol (`uniform100_HR@10`); AINPU never prefixed."""
  prefix = "" if protocol == "full" else protocol + "_"
  return {k if k in _SCALARS else prefix + k: v for k, v in metrics.items()}


def train_and_score(dataset, data_dir, model, seed, config, work_dir, extra_flags,
                    ks=KS, eval_flags=(), protocols=("full",)):
  """One run: train with validation, score the best epoch on test under each
  of `protocols`; a dict."""
  model_dir = os.path.join(work_dir, dataset, model, "seed%d" % seed)
  train_seconds = _run(
      ["experiments.train", "--flagfile=" + config, "--data_dir=" + data_dir,
       "--model_dir=" + model_dir, "--seed=%d" % seed, "--validate_every=1",
       "--validation_protocol=full", "--best_metric=NDCG@10", "--progress=false"]
      + list(extra_flags), "training %s on %s (seed %d)" % (model, dataset, seed),
      clock=os.path.join(model_dir, "train_seconds.json"))
  scored, eval_seconds = {}, 0.0
  for protocol in protocols:
    eval_path = os.path.join(model_dir, "test_%s.json" % protocol)
    eval_seconds += _run(
        ["experiments.evaluate", "--model_dir=" + model_dir,
         "--protocol=" + protocol, "--split=test", "--checkpoint=best",
         "--output=" + eval_path, "--ks=" + ",".join(str(k) for k in ks)]
        + list(eval_flags),
        "evaluating %s on %s (seed %d, %s)" % (model, dataset, seed, protocol))
    with open(eval_path) as f:
      metrics = json.load(f)
    scored.update(_prefixed(_metrics_at(metrics, ks), protocol))
  with open(os.path.join(model_dir, "validation.json")) as f:
    validation = json.load(f)
  with open(os.path.join(model_dir, "run.json")) as f:
    run_info = json.load(f)
  best = [r for r in validation if r.get("best")][-1]
  return {
      "dataset": dataset, "model": model, "seed": seed,
      "metrics": scored,
      "valid": {k: v for k, v in best["metrics"].items()
                if "@" in k and isinstance(v, (int, float))},
      "num_users": metrics["num_users"],
      "epochs": run_info["trainer"]["epochs"], "best_epoch": best["epoch"],
      "train_seconds": round(train_seconds, 1),
      "eval_seconds": round(eval_seconds, 1),
      "config": os.path.relpath(config, REPO), "extra_flags": list(extra_flags),
      "eval_flags": list(eval_flags), "protocols": list(protocols),
      "params": run_info["params"], "trainer": run_info["trainer"],
      "dataset_fingerprint": run_info["dataset_fingerprint"],
      "commit": _commit(),
  }


def _commit():
  proc = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                        capture_output=True, text=True, check=False)
  return proc.stdout.strip() or None


def write_json(path, record):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


COLUMNS = ("HR@10", "HR@20", "NDCG@10", "NDCG@20", "HR@50", "HR@200", "coverage@50")
# Flags that shape a table; the page's command repeats those not at default.
_TABLE_FLAGS = ("configs", "results_dir", "output", "published", "title", "ks",
                "protocols", "columns", "compare_to", "test_columns", "eval_flag", "extra_flag")


def reproduce_command(records, options=""):
  """The command that (re)runs every record's (dataset, model, seed)."""
  datasets = sorted({r["dataset"] for r in records})
  models = sorted({r["model"] for r in records})
  seeds = sorted({r["seed"] for r in records})
  return ("python -m experiments.leaderboard --datasets=%s --models=%s --seeds=%s%s"
          % (",".join("%s=DATA/%s" % (d, d) for d in datasets), ",".join(models),
             ",".join(str(s) for s in seeds), options))


def _value(record, column):
  """A record's figure for `column` (valid_<metric>: the validation figure)."""
  if column.startswith("valid_"):
    return record.get("valid", {}).get(column[len("valid_"):])
  return record["metrics"].get(column)


def render(records, published, command="", title=FLAGS["title"].default,
           columns=COLUMNS, results_dir="docs/results/leaderboard",
           compare_to=(), test_columns=()):
  """The Markdown page: per dataset, models x metrics (mean ± std (seeds))."""
  groups = comparison.group_records(records)
  datasets = sorted({d for d, _ in groups})
  lines = ["# %s" % title, "",
           "Generated by `experiments/leaderboard.py` from the run records in "
           "`%s/` (do not edit by hand). Every item is "
           "ranked; the user's earlier items are excluded, the test item kept. "
           "Each cell is mean ± standard deviation over seeds (number of seeds "
           "in brackets); the epoch of each run is the one with the best "
           "validation NDCG@10." % results_dir.rstrip("/"), ""]
  sampled = [p for p in eval_protocols.SAMPLED_PROTOCOLS
             if any(c.startswith(p + "_") for c in columns)]
  for protocol in sampled:
    sampling, count = eval_protocols.SAMPLED_PROTOCOLS[protocol]
    lines += ["Columns prefixed `%s_`: the test item ranked against %d "
              "negatives drawn by %s sampling from the items the user never interacted "
              "with, the same negatives for every model "
              "(`dcg_tf.evaluation.protocols`)." % (protocol, count, sampling), ""]
  if command:
    lines += ["Command (DATA/<name>: the processed datasets, docs/results.md "
              "gives their preprocessing): `%s`" % command, ""]
  for dataset in datasets:
    lines += ["## %s" % dataset, "",
              "| model | " + " | ".join(columns) + " | epochs (best / budget) | train time |",
              "|---|" + "---|" * (len(columns) + 2)]
    for (d, model), runs in sorted(groups.items()):
      if d != dataset:
        continue
      cells = []
      for column in columns:
        values = [v for v in (_value(r, column) for r in runs) if v is not None]
        cells.append(comparison.format_summary(comparison.summarize(values),
                                               digits=0 if "coverage" in column
                                               else 4) if values else "-")
      best = comparison.summarize([r["best_epoch"] for r in runs])
      minutes = comparison.summarize([r["train_seconds"] / 60.0 for r in runs])
      budget = ("no training" if model in NONNEURAL else
                "%.1f / %d" % (best["mean"], runs[0]["epochs"]))
      lines.append("| %s | %s | %s | %.1f min |" % (
          model, " | ".join(cells), budget, minutes["mean"]))
    for row in published.get(dataset, []):  # "_sources" is not a dataset
      cells = ["*%.4f*" % row[c] if c in row else "" for c in columns]
      lines.append("| *%s (published: %s)* | %s | | |" % (
          row["model"], row["source"], " | ".join(cells)))
    lines.append("")
    if any(m == "transition" for d, m in groups if d == dataset):
      lines += _against_transition(groups, dataset) + [""]
    if compare_to:
      lines += _t_tests(groups, dataset, compare_to,
                        list(test_columns) or [columns[0]]) + [""]
  return "\n".join(lines) + "\n"


def _t_tests(groups, dataset, references, columns):
  """Welch t-tests of each model against each reference model, per column."""
  lines = ["Welch t-tests (two-sided) against the reference models, over seeds:",
           "", "| model | reference | column | difference | t | p |",
           "|---|---|---|---|---|---|"]
  for reference in references:
    ref_runs = groups.get((dataset, reference))
    if not ref_runs:
      continue
    for (d, model), runs in sorted(groups.items()):
      if d != dataset or model == reference or model in NONNEURAL:
        continue
      for column in columns:
        a = [v for v in (_value(r, column) for r in runs) if v is not None]
        b = [v for v in (_value(r, column) for r in ref_runs) if v is not None]
        if len(a) < 2 or len(b) < 2:
          lines.append("| %s | %s | %s | %+.4f | | (needs 2+ seeds each) |" % (
              model, reference, column,
              (sum(a) / len(a) - sum(b) / len(b)) if a and b else float("nan")))
          continue
        t, p, _ = comparison.welch_t_test(a, b)
        lines.append("| %s | %s | %s | %+.4f | %.2f | %.3f |" % (
            model, reference, column, sum(a) / len(a) - sum(b) / len(b), t, p))
  return lines


def _against_transition(groups, dataset):
  """Which models do not beat the first-order transition baseline, per depth."""
  reference = groups.get((dataset, "transition"))
  lines = ["Against the first-order transition baseline (items that followed "
           "the user's last item): a model beats it at a depth when its mean "
           "is higher; \"clearly\" when by more than two of its standard "
           "deviations."]
  for depth in DEPTHS:
    if depth not in reference[0]["metrics"]:
      continue
    bar = reference[0]["metrics"][depth]
    below, above, clear = [], [], []
    for (d, model), runs in sorted(groups.items()):
      if d != dataset or model in NONNEURAL:
        continue
      summary = comparison.summarize([r["metrics"][depth] for r in runs])
      if summary["mean"] <= bar:
        below.append(model)
      elif summary["n"] > 1 and summary["mean"] - bar > 2 * summary["std"]:
        clear.append(model)
      else:
        above.append(model)
    lines.append("- %s (transition %.4f): clearly above: %s; above: %s; "
                 "**not above: %s**" % (depth, bar, ", ".join(clear) or "none",
                                        ", ".join(above) or "none",
                                        ", ".join(below) or "none"))
  return lines


def main(argv):
  del argv
  if not FLAGS.render_only:
    datasets = cli.parse_pairs(FLAGS.datasets, "datasets")
    if not datasets or not FLAGS.models:
      raise app.UsageError("--datasets and --models are required "
                           "(or --render_only)")
    for name, folder in datasets.items():
      if not os.path.exists(os.path.join(folder, "manifest.json")):
        raise app.UsageError("--datasets %s=%s: no processed dataset there "
                             "(run experiments.preprocess)" % (name, folder))
    configs = {}
    for model in FLAGS.models:
      if model in NONNEURAL:
        continue
      configs[model] = os.path.join(FLAGS.configs, model + ".cfg")
      if not os.path.exists(configs[model]):
        raise app.UsageError("no flagfile %s for model %s" % (configs[model], model))
    unknown = [p for p in FLAGS.protocols if p not in eval_protocols.PROTOCOLS]
    if unknown or not FLAGS.protocols:
      raise app.UsageError("--protocols=%s: choose from %s" % (
          ",".join(FLAGS.protocols), ",".join(eval_protocols.PROTOCOLS)))
    seeds = [int(s) for s in FLAGS.seeds]
    ks = tuple(sorted({int(k) for k in FLAGS.ks}))
    # A non-neural baseline is deterministic: one run (seed 0) stands for all.
    runs = [(d, m, s) for s in seeds for d in datasets for m in FLAGS.models
            if not (m in NONNEURAL and s != seeds[0])]
    todo = [(d, m, s) for d, m, s in runs
            if not os.path.exists(result_path(FLAGS.results_dir, d, m, s))]
    print("%d runs to do (%d done)" % (len(todo), len(runs) - len(todo)),
          file=sys.stderr)
    failed = []
    for number, (dataset, model, seed) in enumerate(todo, 1):
      start = time.time()
      try:
        if model in NONNEURAL:
          record = score_baseline(dataset, datasets[dataset], model, seed, ks,
                                  FLAGS.protocols)
        else:
          record = train_and_score(dataset, datasets[dataset], model, seed,
                                   configs[model], FLAGS.work_dir, FLAGS.extra_flag,
                                   ks, FLAGS.eval_flag, FLAGS.protocols)
      except RuntimeError as e:  # one failed run does not stop the board
        failed.append("%s %s seed %d" % (dataset, model, seed))
        print("[%d/%d] FAILED: %s" % (number, len(todo), e), file=sys.stderr)
        continue
      write_json(result_path(FLAGS.results_dir, dataset, model, seed), record)
      shown = " ".join("%s %.4f" % (k, record["metrics"][k])
                       for k in ("HR@10", "NDCG@10", "HR@50") if k in record["metrics"])
      print("[%d/%d] %s %s seed %d: %s (%.0f s)" % (
          number, len(todo), dataset, model, seed, shown, time.time() - start),
            file=sys.stderr)
  published = {}
  if FLAGS.published and os.path.exists(FLAGS.published):
    with open(FLAGS.published) as f:
      published = json.load(f)
  records = comparison.load_records(FLAGS.results_dir)
  options = ""
  for name in _TABLE_FLAGS:
    value, default = FLAGS[name].value, FLAGS[name].default
    if value != default:
      values = value if name in ("eval_flag", "extra_flag") else [value]
      for v in values:
        v = ",".join(v) if isinstance(v, list) else v
        options += " --%s=%s" % (name, '"%s"' % v if " " in v else v)
  page = render(records, published, command=reproduce_command(records, options),
                title=FLAGS.title, columns=FLAGS.columns,
                results_dir=FLAGS.results_dir, compare_to=FLAGS.compare_to,
                test_columns=FLAGS.test_columns)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(FLAGS.output, "w") as f:
    f.write(page)
  print("wrote %s" % FLAGS.output, file=sys.stderr)
  if not FLAGS.render_only and failed:
    print("%d runs failed: %s" % (len(failed), "; ".join(failed)), file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  cli.run(main)
