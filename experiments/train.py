r"""Trains a registered experiment on a processed dataset.

  python -m experiments.train --model=sasrec --data_dir=DIR --model_dir=DIR \
      [--flagfile=experiments/configs/sasrec_beauty.cfg] [--epochs=N] \
      [--param=key=value ...]
  python -m experiments.train --list_models     # the registered experiments
  python -m experiments.train --describe=NAME   # NAME's --param keys

Killed and started again with the same command, it resumes from the last
checkpoint (model, optimizer slots, queues, step, epoch, position in the epoch,
random generator); a larger --epochs or --steps continues a finished run. A
rerun with other training flags (batch size, learning rate, seed, ...) is
refused with the list of differences unless --allow_flag_changes, which
records the change in run.json (`trainer_changes`). `model_dir` receives
`flags.txt`, `run.json` (experiment, parameters, dataset fingerprint),
`checkpoints/` and TensorBoard `logs/`. The run is built by
`dcg_tf.training.experiment.build_trainer`, the same call a Python user makes
(docs/training.md).

With `--validate_every=N` the model is evaluated on the validation split
(`--validation_protocol`, default popular100) every N epochs; the metrics go to
TensorBoard (`valid/`) and `validation.json`, and the epoch with the best
`--best_metric` (default HR@10) is kept in `checkpoints/best`, which
`experiments.evaluate` and `experiments.export` read with `--checkpoint=best`
(model selection on validation, as SASRec and BERT4Rec do).

`--strategy=mirrored` (with `--logical_cpus=N` on a machine without
accelerators) or `--strategy=multi_worker` (one process per worker, each with
its TF_CONFIG) trains under `tf.distribute`: `--batch_size` is the global
batch, split over the replicas, and `--negatives=global` (default) gathers
the in-batch and queue negatives from every replica so that the loss is the
one-device loss (docs/scale.md, "Training past one machine").
`--strategy=parameter_server` is one binary for every task of its TF_CONFIG:
the "worker" and "ps" tasks start their servers and join, the "chief" trains
(`--model=two_tower`), its tables of at least `--ps_min_rows` rows cut into
`--ps_shards` shards on the servers; the chief writes the checkpoints,
run.json and flags.txt, and resumes when started again.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import ast
import json
import os
import sys

from absl import app
from absl import flags

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.models import registry
from dcg_tf.training import checkpoint
from dcg_tf.training import distribute
from dcg_tf.training import experiment as experiment_lib
from dcg_tf.training import parameter_server
from dcg_tf.training import trainer as trainer_lib

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "Registered experiment name, e.g. two_tower, sasrec, clrec.")
flags.DEFINE_string("data_dir", None, "Processed dataset (experiments/preprocess.py).")
flags.DEFINE_string("model_dir", None, "Where checkpoints, logs and run.json go.")
flags.DEFINE_integer("epochs", 1, "Epochs to train.")
flags.DEFINE_integer("steps", 0, "Stop after this many global steps (0: no bound).")
flags.DEFINE_integer("batch_size", 256, "Training batch size.")
flags.DEFINE_integer("max_len", 50, "History length (most recent items kept).")
flags.DEFINE_float("learning_rate", 1e-3, "Optimizer learning rate.")
flags.DEFINE_string("optimizer", "lazy_adam",
                    "lazy_adam | lazy_adagrad | adam | adagrad | sgd (lazy_* update "
                    "embedding rows sparsely).")
flags.DEFINE_integer("seed", 0, "Seed for data order, initialisation and sampling.")
flags.DEFINE_bool("all_prefixes", False,
                  "Emit every prefix of each training sequence instead of one random "
                  "cut point per user per epoch.")
flags.DEFINE_bool("last_cut", False,
                  "One example per user cut at its last training event: with models "
                  "that train on every history position (sasrec's all_positions), "
                  "every training event is a target each epoch.")
flags.DEFINE_float("train_fraction", 1.0,
                   "Train on this uniform share of the training events, the same "
                   "events for every model and seed (SSL-CFM's Table 3: 0.1); "
                   "evaluation uses the full valid/test splits.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("train_on_valid", False,
                  "Fold the validation targets into training (BERT4Rec's final "
                  "fit, which the CLRec paper's Table 8 follows): choose epochs "
                  "on validation first, then refit with this flag and score on "
                  "test. Excludes --validate_every.")
flags.DEFINE_integer("checkpoint_every", 500, "Save a checkpoint every N steps.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_integer("validate_every", 0,
                     "Evaluate on the validation split every N epochs (and after the "
                     "last); 0: never. Metrics go to TensorBoard (valid/) and "
                     "model_dir/validation.json.")
flags.DEFINE_string("validation_protocol", "popular100",
                    "Protocol of the validation: full, popular100 or uniform100.")
flags.DEFINE_string("best_metric", "HR@10",
                    "With --validate_every: keep the weights of the epoch with the "
                    "highest value of this validation metric in checkpoints/best "
                    "(evaluate/export --checkpoint=best); empty: do not keep.")
# Common model parameters, shortcuts for --param=name=value.
flags.DEFINE_string("user_encoder", None, "Override: mean | sasrec | clrec.")
flags.DEFINE_integer("embedding_dim", None, "Override the embedding size.")
flags.DEFINE_float("temperature", None, "Override the softmax temperature.")
flags.DEFINE_integer("queue_size", None, "Override the queue size (CLRec).")
flags.DEFINE_multi_string("param", [], "Experiment parameter override key=value "
                          "(value parsed as a Python literal when possible).")
flags.DEFINE_bool("list_models", False, "List registered experiments and exit.")
flags.DEFINE_string("describe", None,
                    "Print experiment NAME's --param keys with their defaults and "
                    "meanings, and exit.")
flags.DEFINE_bool("allow_flag_changes", False,
                  "Resume a model_dir whose run.json records other training flags "
                  "(batch size, learning rate, seed, ...; more --epochs or --steps "
                  "need no permission); the change is recorded in run.json "
                  "under trainer_changes.")

flags.DEFINE_enum("strategy", "none", list(distribute.STRATEGIES),
                  "tf.distribute strategy: none (one device), mirrored (the "
                  "devices of this machine), multi_worker (one process per "
                  "worker, cluster in TF_CONFIG), parameter_server (one "
                  "process per task of TF_CONFIG: \"worker\" and \"ps\" "
                  "tasks serve, the \"chief\" trains; two_tower only). "
                  "docs/scale.md.")
flags.DEFINE_integer("ps_shards", 0,
                     "With --strategy=parameter_server: row shards of each "
                     "table of at least --ps_min_rows rows, on different "
                     "servers (0: one per \"ps\" task).")
flags.DEFINE_integer("ps_min_rows", 100000,
                     "With --strategy=parameter_server: a float variable "
                     "with at least this many rows (an embedding table) is "
                     "sharded; smaller ones stay whole on one server.")
flags.DEFINE_integer("logical_cpus", 0,
                     "With --strategy=mirrored: split the CPU into this many "
                     "logical devices and mirror over them (0: the default "
                     "devices).")
flags.DEFINE_enum("negatives", "global", ["global", "replica"],
                  "Under a strategy with several replicas: in-batch and queue "
                  "negatives from the global batch (the one-device loss) or "
                  "from each replica's own rows.")

_SHORTCUTS = ("user_encoder", "embedding_dim", "temperature", "queue_size")


_WORDS = {"true": True, "false": False, "none": None}


def _parse_value(text):
  """A Python literal (never eval), true/false/none in any case, else the text.

  `--param=x=false` must not reach a builder as the string "false" (which
  reads as True).
  """
  if text.lower() in _WORDS:
    return _WORDS[text.lower()]
  try:
    return ast.literal_eval(text)  # literals only, never eval
  except (ValueError, SyntaxError):
    return text


def parse_overrides():
  """Experiment parameters from the shortcut flags and --param=key=value."""
  overrides = {}
  for name in _SHORTCUTS:
    if getattr(FLAGS, name) is not None:
      overrides[name] = getattr(FLAGS, name)
  for item in FLAGS.param:
    if "=" not in item:
      raise app.UsageError("--param expects key=value, got %r" % item)
    key, value = item.split("=", 1)
    overrides[key.strip()] = _parse_value(value.strip())
  return overrides


def describe(name):
  """The text of --describe=NAME: one line per parameter (after import_all)."""
  try:
    rows = registry.describe(name)
  except KeyError as e:
    raise app.UsageError(str(e.args[0])) from e
  experiment = registry.get_experiment(name)
  rows = [(key, json.dumps(default), meaning) for key, default, meaning in rows]
  key_width = max(len(key) for key, _, _ in rows)
  value_width = max(len(value) for _, value, _ in rows)
  lines = ["%s: %s" % (name, experiment.description.split("\n")[0]),
           "--param keys (default, meaning):"]
  lines += ["  %-*s  %-*s  %s" % (key_width, key, value_width, value, meaning)
            for key, value, meaning in rows]
  return "\n".join(lines)


def main(argv):
  del argv
  # Before any TensorFlow op: a strategy sets up the devices and the cluster.
  strategy = None
  if FLAGS.strategy == "parameter_server" and not (FLAGS.list_models or
                                                   FLAGS.describe):
    task_type, task_id = distribute.task()
    if task_type in ("worker", "ps"):   # a server of the cluster: no training
      parameter_server.serve(json.loads(os.environ["TF_CONFIG"])["cluster"],
                             [(task_type, task_id)])
      return 0
    if FLAGS.model:   # refused before the chief connects to the cluster
      parameter_server.check_supported(FLAGS.model)
  if not (FLAGS.list_models or FLAGS.describe):
    strategy = distribute.make_strategy(
        FLAGS.strategy, logical_cpus=FLAGS.logical_cpus,
        ps_shards=FLAGS.ps_shards, ps_min_rows=FLAGS.ps_min_rows)
  configs.import_all()
  if FLAGS.list_models:
    for name in registry.list_experiments():
      print("%-26s %s" % (name, registry.get_experiment(name).description.split("\n")[0]))
    return 0
  if FLAGS.describe:
    print(describe(FLAGS.describe))
    return 0
  for name in ("model", "data_dir", "model_dir"):
    if not getattr(FLAGS, name):
      raise app.UsageError("--%s is required" % name)
  data = ProcessedDataset.load(FLAGS.data_dir)
  config = trainer_lib.TrainerConfig(
      batch_size=FLAGS.batch_size, max_len=FLAGS.max_len, epochs=FLAGS.epochs,
      steps=FLAGS.steps, seed=FLAGS.seed, all_prefixes=FLAGS.all_prefixes,
      last_cut=FLAGS.last_cut, checkpoint_every=FLAGS.checkpoint_every,
      progress=FLAGS.progress, validate_every=FLAGS.validate_every,
      best_metric=FLAGS.best_metric if FLAGS.validate_every else "",
      negatives=FLAGS.negatives)
  # The same run as from Python: run.json, seeds, model, optimizer, Trainer.
  trainer = experiment_lib.build_trainer(
      FLAGS.model, data, FLAGS.model_dir, params=parse_overrides(), config=config,
      optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate,
      train_on_valid=FLAGS.train_on_valid,
      validation_protocol=FLAGS.validation_protocol,
      allow_flag_changes=FLAGS.allow_flag_changes,
      train_fraction=FLAGS.train_fraction, strategy=strategy)
  if not distribute.is_chief(strategy):
    return _train(trainer)
  # After run.json: a refused rerun leaves the run's flags.txt untouched.
  with open(os.path.join(FLAGS.model_dir, "flags.txt"), "w") as f:
    f.write(FLAGS.flags_into_string())
  params = checkpoint.read_run_info(FLAGS.model_dir)["params"]
  print("Training %s on %s (%d users, %d items) into %s" % (
      FLAGS.model, FLAGS.data_dir, data.num_users, data.num_items, FLAGS.model_dir),
        file=sys.stderr)
  print("parameters: %s" % json.dumps(params, sort_keys=True), file=sys.stderr)
  return _train(trainer)


def _train(trainer):
  try:
    metrics = trainer.train()
  except trainer_lib.NonFiniteLossError as e:
    print("ERROR: %s" % e, file=sys.stderr)
    return 1
  print("done: step %d, %s" % (int(trainer.global_step),
                               ", ".join("%s=%.4f" % kv for kv in metrics.items())))
  return 0


if __name__ == "__main__":
  cli.run(main)
