"""Shared setup of the model tests: a tiny processed dataset, a small model of
a registered experiment, and the first training batch the trainer feeds it."""

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.models import registry
from dcg_tf.training import trainer as trainer_lib
from tests.data.fixtures import write_tiny_dataset

configs.import_all()

SMALL = {"embedding_dim": 8, "max_len": 6}


def tiny_data(tmp_path_factory, num_users=12, num_items=15, **kwargs):
  """A `ProcessedDataset` of `write_tiny_dataset` (kwargs: its seed, ...)."""
  path = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=num_users,
                            num_items=num_items, **kwargs)
  return ProcessedDataset.load(path)


def small_model(data, name, small=None, **params):
  """Experiment `name` built on `data` with `small` (default `SMALL`) + params."""
  params = dict(SMALL if small is None else small, **params)
  return registry.build_model(name, registry.resolve_params(name, params), data)


def first_batch(model, data, batch_size=6, seed=0, max_len=6):
  """The first batch of epoch 0 of `model`'s training dataset (all prefixes)."""
  config = trainer_lib.TrainerConfig(batch_size=batch_size, max_len=max_len,
                                     seed=seed, all_prefixes=True)
  return next(iter(trainer_lib.training_dataset(model, data, config, 0)))
