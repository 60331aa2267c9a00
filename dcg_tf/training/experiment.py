"""Training a registered experiment from Python: the run the binary makes.

`build_trainer` is what `python -m experiments.train` does between loading the
dataset and the first step, and the binary calls it: it resolves the
experiment's parameters, writes `model_dir/run.json` (from which
`experiments.evaluate`, `experiments.export` and
`dcg_tf.training.checkpoint.load_trained_model` rebuild the model), seeds,
builds the model and the optimizer, and returns a
`dcg_tf.training.trainer.Trainer` whose `train()` runs (or resumes) training:

  import dcg_tf
  from dcg_tf.data.dataset import ProcessedDataset
  from dcg_tf.training.experiment import build_trainer
  from dcg_tf.training.trainer import TrainerConfig

  data = ProcessedDataset.load("data")
  trainer = build_trainer("two_tower", data, "model",
                          params={"embedding_dim": 32},
                          config=TrainerConfig(epochs=2, batch_size=64))
  trainer.train()
  # then: python -m experiments.export --model_dir=model --export_dir=export

A model of your own (your `tf.keras.Model` around the package's towers) has
no registered experiment and so no run.json: export its towers with
`dcg_tf.serving.export.export_towers` (docs/notebooks/quickstart.ipynb).
"""

import contextlib
import os

import tensorflow as tf

import dcg_tf
from dcg_tf import configs
from dcg_tf import optimizers
from dcg_tf.errors import InputError
from dcg_tf.models import registry
from dcg_tf.training import checkpoint
from dcg_tf.training import distribute
from dcg_tf.training import parameter_server
from dcg_tf.training import trainer as trainer_lib


def validation_fn(data, protocol, max_len):
  """`model -> metrics` on the validation split (the trainer's `validate_fn`).

  Raises:
    InputError: an unknown protocol, or a dataset without a validation split.
  """
  # pylint: disable=g-import-not-at-top
  from dcg_tf.evaluation import evaluator
  from dcg_tf.evaluation import protocols
  if protocol not in protocols.PROTOCOLS:
    raise InputError("validation_protocol (--validation_protocol) must be one "
                     "of %s, got %r"
                     % (sorted(protocols.PROTOCOLS), protocol))
  try:
    data.eval_file("valid")
  except ValueError as e:
    raise InputError("validation (--validate_every) needs a validation split: "
                     "%s" % e) from e

  def validate(model):
    return evaluator.evaluate_model(model, data, split="valid", protocol=protocol,
                                    ks=(1, 5, 10, 20, 50), max_len=max_len,
                                    progress=False)
  return validate


def build_trainer(experiment, data, model_dir, params=None, config=None,
                  optimizer="lazy_adam", learning_rate=1e-3, train_on_valid=False,
                  validation_protocol="popular100", allow_flag_changes=False,
                  train_fraction=1.0, strategy=None):
  """Writes `model_dir/run.json` and returns a `Trainer` for the experiment.

  Args:
    experiment: a registered experiment name (`python -m experiments.train
      --list_models`; `--describe=NAME` lists its parameters).
    data: the `dcg_tf.data.dataset.ProcessedDataset` to train on.
    model_dir: the run's folder (checkpoints, logs, run.json). A folder that
      already holds this run resumes it when `train()` is called.
    params: parameter overrides (`--param` of the binary); unknown keys are an
      error. `max_len` and `seed` default to `config.max_len` and
      `config.seed`, so towers and data agree and a run's seed reaches the
      model's own random draws.
    config: a `dcg_tf.training.trainer.TrainerConfig` (default: its defaults).
    optimizer: a name for `dcg_tf.optimizers.get_optimizer`.
    learning_rate: the optimizer's learning rate.
    train_on_valid: train on the training and validation events
      (`ProcessedDataset.with_validation_in_train`); excludes validation.
    validation_protocol: with `config.validate_every`, the protocol scored on
      the validation split after every `validate_every`-th epoch.
    allow_flag_changes: resume a run whose run.json records other trainer
      settings (the change is recorded; `checkpoint.write_run_info`).
    train_fraction: train on this uniform share of the training events
      (`ProcessedDataset.with_train_fraction`, SSL-CFM's Table 3); 1 = all.
    strategy: None (one device) or a `tf.distribute.Strategy`
      (`dcg_tf.training.distribute.make_strategy`): the model and optimizer
      are created under its scope; only the chief writes run.json. With a
      `ParameterServerStrategy` the trainer is a
      `dcg_tf.training.parameter_server.ParameterServerTrainer` (checked by
      `dcg_tf.training.parameter_server.check_supported`).

  Returns:
    The `Trainer`; `trainer.model` is the model, `trainer.train()` trains.

  Raises:
    InputError: unknown experiment or parameter, validation without a
      validation split or with `train_on_valid`, or a `model_dir` that holds
      another run.
  """
  config = config or trainer_lib.TrainerConfig()
  trainer_lib.set_seeds(config.seed)
  if train_on_valid:
    if config.validate_every:
      raise InputError("train_on_valid (--train_on_valid) trains on the "
                       "validation targets, so validate_every (--validate_every) "
                       "cannot score on them; set it to 0")
    data = data.with_validation_in_train()
  data = data.with_train_fraction(train_fraction)
  configs.import_all()
  try:
    defaults = registry.get_experiment(experiment).defaults
    # Parameters the trainer also sets default to the trainer's value, so that
    # --seed varies the model's own draws (sampled negatives, augmentations)
    # too; an explicit --param still wins.
    overrides = {key: getattr(config, key) for key in ("max_len", "seed")
                 if key in defaults}
    overrides.update(params or {})
    params = registry.resolve_params(experiment, overrides)
  except KeyError as e:
    raise InputError(str(e.args[0])) from None
  parameter_servers = isinstance(
      strategy, tf.distribute.experimental.ParameterServerStrategy)
  if parameter_servers:
    parameter_server.check_supported(experiment, params)
  validate_fn = None
  if config.validate_every:
    validate_fn = validation_fn(data, validation_protocol, config.max_len)
  info = {
      "experiment": experiment,
      "experiment_module": registry.get_experiment(experiment).module,
      "params": params,
      "trainer": {"batch_size": config.batch_size, "max_len": config.max_len,
                  "epochs": config.epochs, "steps": config.steps,
                  "seed": config.seed, "all_prefixes": config.all_prefixes,
                  "last_cut": config.last_cut, "optimizer": optimizer,
                  "train_on_valid": bool(train_on_valid),
                  "train_fraction": float(train_fraction),
                  "validate_every": config.validate_every,
                  "validation_protocol": validation_protocol,
                  "best_metric": config.best_metric,
                  "learning_rate": learning_rate},
      "data_dir": os.path.abspath(data.directory),
      "dataset_fingerprint": data.fingerprint,
      "dcg_tf_version": dcg_tf.__version__,
  }
  task_modules = registry.auxiliary_task_modules(params)
  if task_modules:   # plug-in tasks to import when the run is restored
    info["auxiliary_task_modules"] = task_modules
  if strategy is not None:
    info["trainer"].update(strategy=type(strategy).__name__,
                           replicas=strategy.num_replicas_in_sync,
                           negatives=config.negatives)
  if distribute.is_chief(strategy):
    checkpoint.write_run_info(model_dir, info,
                              allow_trainer_changes=allow_flag_changes)
  scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
  with scope:
    model = registry.build_model(experiment, params, data)
    optimizer = optimizers.get_optimizer(optimizer, learning_rate)
  trainer_class = (parameter_server.ParameterServerTrainer if parameter_servers
                   else trainer_lib.Trainer)
  return trainer_class(model, optimizer, data, model_dir, config,
                       validate_fn=validate_fn, strategy=strategy)
