"""EpochCallback: one refresh per epoch whether a run is resumed or not."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.configs import two_tower as two_tower_config
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.models import registry
from dcg_tf.models.two_tower import TwoTowerModel
from dcg_tf.optimizers import get_optimizer
from dcg_tf.training import checkpoint
from dcg_tf.training import trainer as trainer_lib
from dcg_tf.training.callbacks import EpochCallback
from tests.data.fixtures import write_tiny_dataset

NUM_ITEMS = 15
EPOCHS = 2
_PARAMS = {"embedding_dim": 8, "max_len": 6}


class _CatalogMean(EpochCallback):
  """Stores the mean item vector at the start of each epoch (a one-prototype
  stand-in for PCL's k-means refresh), and counts the refreshes."""

  def refresh(self, epoch):
    model = self.model
    ids = tf.range(1, self.data.num_items + 1, dtype=tf.int64)          # [N]
    vectors = model.item_tower(ids, training=False)                    # [N, D]
    model.catalog_mean.assign(tf.reduce_mean(vectors, axis=0))         # [D]
    model.refresh_count.assign_add(1.0)
    # A value from the data and the epoch: sum over refreshes of N * (e + 1).
    model.epoch_signature.assign_add(float(self.data.num_items * (epoch + 1)))


class _PrototypeModel(TwoTowerModel):
  """Two-tower whose loss pulls target vectors to the epoch's catalog mean."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    dim = _PARAMS["embedding_dim"]
    self.refreshed_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False,
                                       name="refreshed_epoch")
    self.catalog_mean = tf.Variable(tf.zeros([dim]), trainable=False,
                                    name="catalog_mean")
    self.refresh_count = tf.Variable(0.0, trainable=False, name="refresh_count")
    self.epoch_signature = tf.Variable(0.0, trainable=False, name="epoch_signature")

  def training_callbacks(self, data, seed):
    return [_CatalogMean(data, self.refreshed_epoch, seed)]

  def compute_loss(self, inputs, training=False):
    outputs = super().compute_loss(inputs, training=training)
    target = self.item_tower(tf.cast(inputs["target"], tf.int64), training=training)  # [B, D]
    pull = tf.reduce_mean(tf.reduce_sum(tf.square(target - self.catalog_mean), -1))
    return {"loss": outputs["loss"] + 0.5 * pull}


def _model(data):
  towers = two_tower_config.build_towers(
      registry.resolve_params("two_tower", _PARAMS), data)
  return _PrototypeModel(*towers, two_tower_config.log_item_probability(data))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  path = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=12,
                            num_items=NUM_ITEMS)
  return ProcessedDataset.load(path)


def _run(data, model_dir, steps=0, validate_fn=None):
  trainer_lib.set_seeds(3)
  model = _model(data)
  config = trainer_lib.TrainerConfig(
      batch_size=4, max_len=6, epochs=EPOCHS, steps=steps, seed=3, all_prefixes=True,
      checkpoint_every=1000, progress=False, validate_every=1 if validate_fn else 0)
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.05), data,
                                str(model_dir), config, validate_fn=validate_fn)
  trainer.train()
  return trainer, model


def _assert_same_checkpoint(dir_a, dir_b):
  diff = checkpoint.checkpoint_difference(checkpoint.checkpoint_path(str(dir_a)),
                                          checkpoint.checkpoint_path(str(dir_b)))
  assert "model/catalog_mean/.ATTRIBUTES/VARIABLE_VALUE" in diff
  assert max(diff.values()) == 0.0, {k: v for k, v in diff.items() if v}


def _assert_refreshed_every_epoch_once(model):
  assert int(model.refreshed_epoch) == EPOCHS - 1
  assert float(model.refresh_count) == EPOCHS
  # N * (1 + 2) = 15 * 3 = 45: epochs 0 and 1 each refreshed once.
  assert float(model.epoch_signature) == NUM_ITEMS * 3


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
  """The reference run: its folder, steps per epoch and item vectors per epoch."""
  tf.config.experimental.enable_op_determinism()
  item_vectors = []

  def validate(model):   # after each epoch: the next epoch's refresh input
    ids = tf.range(1, NUM_ITEMS + 1, dtype=tf.int64)
    item_vectors.append(model.item_tower(ids, training=False).numpy())
    return {"HR@10": 0.0}

  model_dir = tmp_path_factory.mktemp("full")
  trainer, model = _run(data, model_dir, validate_fn=validate)
  return model_dir, trainer.steps_per_epoch(), model, item_vectors


def test_uninterrupted_run_refreshes_at_each_epoch_start(uninterrupted):
  _, _, model, item_vectors = uninterrupted
  _assert_refreshed_every_epoch_once(model)
  # The last refresh (start of epoch 1) saw the weights after epoch 0.
  np.testing.assert_allclose(model.catalog_mean.numpy(), item_vectors[0].mean(0),
                             rtol=1e-6, atol=1e-7)


def test_resumed_mid_epoch_does_not_refresh_again(data, tmp_path, uninterrupted):
  # Killed in the middle of epoch 0: its refresh is in the checkpoint, so the
  # resumed run must not refresh again (it would read mid-epoch weights).
  full_dir, per_epoch, _, _ = uninterrupted
  first, partial = _run(data, tmp_path, steps=per_epoch // 2)
  assert int(first.epoch) == 0 and int(first.step_in_epoch) == per_epoch // 2
  assert int(partial.refreshed_epoch) == 0 and float(partial.refresh_count) == 1
  _, resumed = _run(data, tmp_path)
  _assert_refreshed_every_epoch_once(resumed)
  _assert_same_checkpoint(full_dir, tmp_path)


def test_resumed_at_an_epoch_boundary_refreshes_once(data, tmp_path, uninterrupted):
  # Killed exactly at the end of epoch 0: epoch 1's refresh has not run, so
  # the resumed run runs it once.
  full_dir, per_epoch, _, _ = uninterrupted
  first, partial = _run(data, tmp_path, steps=per_epoch)
  assert int(first.epoch) == 1 and int(first.step_in_epoch) == 0
  assert int(partial.refreshed_epoch) == 0 and float(partial.refresh_count) == 1
  _, resumed = _run(data, tmp_path)
  _assert_refreshed_every_epoch_once(resumed)
  _assert_same_checkpoint(full_dir, tmp_path)


def test_model_fit_runs_the_callbacks(data):
  trainer_lib.set_seeds(3)
  model = _model(data)
  model.compile(optimizer=get_optimizer("lazy_adam", 0.05))
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, seed=3, all_prefixes=True)
  ds = trainer_lib.training_dataset(model, data, config, epoch=0).take(2)
  model.fit(ds, epochs=2, verbose=0, callbacks=model.training_callbacks(data, seed=3))
  assert int(model.refreshed_epoch) == 1 and float(model.refresh_count) == 2


def test_refreshed_epoch_must_be_a_variable_of_the_model(data):
  callback = _CatalogMean(data, tf.Variable(-1, dtype=tf.int64, trainable=False))
  with pytest.raises(ValueError, match="not a variable of the training model"):
    callback.set_model(_model(data))
