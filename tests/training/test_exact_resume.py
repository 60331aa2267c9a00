"""Every registered model resumes exactly, dropout and sampled negatives included.

A run stopped at a step inside an epoch (as if killed after its checkpoint)
and started again with a new model, optimizer and Trainer on the same
model_dir must end with the checkpoint an uninterrupted run ends with, bit for
bit: every random draw of training (dropout masks, sampled negatives, u2u
splits) comes from a generator whose state is in the checkpoint, or from
stateless ops keyed by (seed, epoch, step).
"""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.layers.resumable_dropout import ResumableDropout
from dcg_tf.models import registry
from dcg_tf.optimizers import get_optimizer
from dcg_tf.training import checkpoint
from dcg_tf.training import trainer as trainer_lib
from tests.data.fixtures import write_tiny_dataset

configs.import_all()

# Small sizes for every model; a key is set only where the model has it.
# clrec co-trains u2u, whose split draws from the model's own generator.
_SMALL = {"embedding_dim": 8, "max_len": 6, "queue_size": 16, "u2u_queue_size": 16,
          "u2u_weight": 0.5, "main_queue_size": 16, "secondary_queue_size": 16,
          "num_intentions": 4, "importance_hidden_units": [8]}
# Dropout on (the item tower's head drops only with hidden units; the CLRec
# encoders have a head only with item_projection).
_DROPOUT = {"dropout": 0.3, "hidden_units": [8], "item_projection": True}


def _params(name):
  defaults = registry.resolve_params(name)
  overrides = {k: v for k, v in dict(_SMALL, **_DROPOUT).items() if k in defaults}
  return registry.resolve_params(name, overrides)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  path = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=12, num_items=15)
  return ProcessedDataset.load(path)


def _train(name, data, model_dir, steps=0):
  trainer_lib.set_seeds(5)
  model = registry.build_model(name, _params(name), data)
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, epochs=1, steps=steps,
                                     seed=5, all_prefixes=True, checkpoint_every=1000,
                                     log_every=1000, progress=False)
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.05), data,
                                str(model_dir), config)
  trainer.train()
  return trainer, model


# sasrec (dropout by default, in attention and blocks) runs always; the others
# (about 10-20 s each) are slow.
_MODELS = [name if name == "sasrec" else pytest.param(name, marks=pytest.mark.slow)
           for name in sorted(registry.list_experiments())]


@pytest.mark.parametrize("name", _MODELS)
def test_run_stopped_inside_an_epoch_resumes_to_the_uninterrupted_checkpoint(
    name, data, tmp_path):
  tf.config.experimental.enable_op_determinism()
  full, model = _train(name, data, tmp_path / "full")
  per_epoch = full.steps_per_epoch()
  assert per_epoch >= 4
  if "dropout" in _params(name):
    # The dropout path is exercised: some layer drops with rate 0.3.
    rates = [layer.rate for layer in model.submodules
             if isinstance(layer, ResumableDropout)]
    assert 0.3 in rates, (name, rates)
  stop_at = per_epoch // 2 + 1
  first, _ = _train(name, data, tmp_path / "resumed", steps=stop_at)
  assert int(first.step_in_epoch) == stop_at
  resumed, _ = _train(name, data, tmp_path / "resumed")
  assert int(resumed.global_step) == per_epoch
  difference = checkpoint.checkpoint_difference(
      checkpoint.checkpoint_path(str(tmp_path / "full")),
      checkpoint.checkpoint_path(str(tmp_path / "resumed")))
  assert difference and all(v == 0.0 for v in difference.values()), (
      name, {k: v for k, v in difference.items() if v})
