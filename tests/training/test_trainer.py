"""Trainer: interrupted-and-resumed runs equal uninterrupted ones; NaN stops."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf import configs
from dcg_tf.models import registry

configs.import_all()
from dcg_tf.optimizers import get_optimizer
from dcg_tf.training import trainer as trainer_lib
from tests.data.fixtures import write_tiny_dataset

_PARAMS = {"embedding_dim": 8, "max_len": 6}


def _run(data, model_dir, epochs, steps=0, seed=3, log_every=50):
  trainer_lib.set_seeds(seed)
  params = registry.resolve_params("two_tower", _PARAMS)
  model = registry.build_model("two_tower", params, data)
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, epochs=epochs, steps=steps,
                                     seed=seed, all_prefixes=True, checkpoint_every=1000,
                                     log_every=log_every, progress=False)
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.05), data,
                                str(model_dir), config)
  metrics = trainer.train()
  return trainer, model, metrics


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  path = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=12, num_items=15)
  return ProcessedDataset.load(path)


def _weights(model):
  return {v.name: v.numpy() for v in model.variables}


def test_killed_and_restarted_run_equals_uninterrupted_run(data, tmp_path):
  tf.config.experimental.enable_op_determinism()
  full, full_model, _ = _run(data, tmp_path / "full", epochs=2)
  per_epoch = full.steps_per_epoch()
  assert int(full.global_step) == 2 * per_epoch
  # Stop in the middle of epoch 0 (as if killed after the checkpoint), then
  # start again with a fresh process-like state: new model, new optimizer.
  stop_at = per_epoch // 2 + 1
  first, _, _ = _run(data, tmp_path / "resumed", epochs=2, steps=stop_at)
  assert int(first.global_step) == stop_at and int(first.step_in_epoch) == stop_at
  resumed, resumed_model, _ = _run(data, tmp_path / "resumed", epochs=2)
  assert int(resumed.global_step) == 2 * per_epoch
  expected = _weights(full_model)
  got = _weights(resumed_model)
  assert expected.keys() == got.keys()
  for name in expected:
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)


def test_training_reduces_the_loss(data, tmp_path):
  trainer, _, _ = _run(data, tmp_path / "m", epochs=10, log_every=1)
  per_epoch = trainer.steps_per_epoch()
  losses = np.array([h["loss"] for h in trainer.history])
  assert len(losses) == 10 * per_epoch
  # The mean loss of the last epoch is below that of the first.
  assert losses[-per_epoch:].mean() < 0.8 * losses[:per_epoch].mean()


def test_nan_loss_stops_with_a_clear_message(data, tmp_path):
  params = registry.resolve_params("two_tower", _PARAMS)
  model = registry.build_model("two_tower", params, data)
  calls = tf.Variable(0, trainable=False)
  original = model.compute_loss

  def exploding(inputs, training=False):
    out = original(inputs, training=training)
    if training:
      calls.assign_add(1)
    nan = tf.constant(float("nan"))
    return {"loss": tf.where(calls >= 3, nan, out["loss"])}

  model.compute_loss = exploding
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, epochs=5, seed=0,
                                     all_prefixes=True, progress=False)
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.01), data,
                                str(tmp_path / "nan"), config)
  with pytest.raises(trainer_lib.NonFiniteLossError, match="became nan at step 3"):
    trainer.train()


def test_validation_keeps_the_weights_of_the_best_epoch(data, tmp_path):
  """The scripted metric peaks after epoch 2: checkpoints/best holds those weights."""
  from dcg_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  scripted = [0.1, 0.5, 0.3]
  snapshots = []

  def validate(model):
    snapshots.append(_weights(model))
    return {"HR@10": scripted[len(snapshots) - 1], "MRR": 0.0}

  trainer_lib.set_seeds(3)
  params = registry.resolve_params("two_tower", _PARAMS)
  model = registry.build_model("two_tower", params, data)
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, epochs=3, seed=3,
                                     all_prefixes=True, progress=False,
                                     validate_every=1, best_metric="HR@10")
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.05), data,
                                str(tmp_path), config, validate_fn=validate)
  trainer.train()
  history = trainer.validation_history()
  assert [r["epoch"] for r in history] == [1, 2, 3]
  assert [r["metrics"]["HR@10"] for r in history] == scripted
  assert [r.get("best", False) for r in history] == [True, True, False]
  assert float(trainer.best_value) == 0.5
  # Restoring "best" into a fresh model gives the weights seen after epoch 2;
  # "latest" gives the final ones, which differ.
  restored = registry.build_model("two_tower", params, data)
  restored.compute_loss(next(iter(trainer_lib.pipeline.train_dataset(
      data, batch_size=4, max_len=6, seed=3, epoch=0, all_prefixes=True))),
                        training=False)
  path = checkpoint.checkpoint_path(str(tmp_path), "best")
  tf.train.Checkpoint(model=restored).restore(path).expect_partial()
  got, best, final = _weights(restored), snapshots[1], _weights(model)
  for name in best:
    np.testing.assert_array_equal(got[name], best[name], err_msg=name)
  assert any(not np.array_equal(best[n], final[n]) for n in best)


def test_validate_every_needs_a_validate_fn(data, tmp_path):
  params = registry.resolve_params("two_tower", _PARAMS)
  model = registry.build_model("two_tower", params, data)
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, validate_every=1)
  with pytest.raises(ValueError, match="validate_fn"):
    trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.05), data, str(tmp_path),
                        config)


def test_best_checkpoint_missing_is_a_clear_error(tmp_path):
  from dcg_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  with pytest.raises(FileNotFoundError, match="--validate_every"):
    checkpoint.checkpoint_path(str(tmp_path), "best")
