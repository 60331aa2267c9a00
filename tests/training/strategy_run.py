"""A few training steps under a tf.distribute strategy, in a subprocess.

tests/training/test_distribute.py starts this script because logical CPU
devices must be configured before TensorFlow initialises them. It trains
`--experiment` on `--data_dir` for `--steps` global steps with
`--strategy` (mirrored: 2 logical CPUs), and with `--reference_dir` also on
one device in the same process (the chief's, under MultiWorkerMirrored); it
writes every model variable and the
logged losses of each run to `<out>.npz` / `<out>.json` (`<out>_one.*` for
the one-device run).
"""

import argparse
import json

import dcg_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow)
from dcg_tf.training import distribute


def _train(strategy, args, model_dir):
  # pylint: disable=g-import-not-at-top
  import contextlib
  from dcg_tf import configs
  from dcg_tf.data.dataset import ProcessedDataset
  from dcg_tf.models import registry
  from dcg_tf.optimizers import get_optimizer
  from dcg_tf.training import trainer as trainer_lib

  configs.import_all()
  data = ProcessedDataset.load(args.data_dir)
  config = trainer_lib.TrainerConfig(
      batch_size=args.batch_size, max_len=6, epochs=100, steps=args.steps,
      seed=1, all_prefixes=True, progress=False, log_every=1,
      negatives=args.negatives)
  trainer_lib.set_seeds(1)
  scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
  with scope:
    defaults = registry.get_experiment(args.experiment).defaults
    params = {key: value for key, value in (("max_len", 6), ("seed", 1))
              if key in defaults}
    params.update(json.loads(args.params))
    model = registry.build_model(
        args.experiment, registry.resolve_params(args.experiment, params), data)
    optimizer = get_optimizer(args.optimizer, args.learning_rate,
                              **json.loads(args.optimizer_args))
  trainer = trainer_lib.Trainer(model, optimizer, data, model_dir, config,
                                strategy=strategy)
  trainer.train()
  return trainer


def _write(trainer, out):
  import numpy as np  # pylint: disable=g-import-not-at-top
  np.savez(out + ".npz", **{"%03d:%s" % (i, v.name): v.numpy()
                            for i, v in enumerate(trainer.model.variables)})
  with open(out + ".json", "w") as f:
    json.dump({"history": trainer.history, "is_chief": trainer.is_chief}, f)


def main():
  parser = argparse.ArgumentParser()
  for name in ("strategy", "data_dir", "model_dir", "experiment", "out"):
    parser.add_argument("--" + name, required=True)
  parser.add_argument("--reference_dir", default="")
  parser.add_argument("--params", default="{}")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--negatives", default="global")
  parser.add_argument("--optimizer", default="lazy_adam")
  parser.add_argument("--optimizer_args", default="{}")
  parser.add_argument("--learning_rate", type=float, default=0.05)
  args = parser.parse_args()
  strategy = distribute.make_strategy(
      args.strategy, logical_cpus=2 if args.strategy == "mirrored" else 0)
  trainer = _train(strategy, args, args.model_dir)
  if trainer.is_chief:
    _write(trainer, args.out)
  if args.reference_dir and trainer.is_chief:
    _write(_train(None, args, args.reference_dir), args.out + "_one")


if __name__ == "__main__":
  main()
