"""Trainer: interrupted-and-resumed runs equal uninterrupted ones (auxiliary
streams included); NaN stops."""

import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf import configs
from dcg_tf.configs import two_tower as two_tower_config
from dcg_tf.data import pipeline
from dcg_tf.models import registry
from dcg_tf.models.two_tower import TwoTowerModel

configs.import_all()
from dcg_tf.optimizers import get_optimizer
from dcg_tf.training import checkpoint
from dcg_tf.training import trainer as trainer_lib
from tests.data.fixtures import write_tiny_dataset

_PARAMS = {"embedding_dim": 8, "max_len": 6}


class _UniformItemsModel(TwoTowerModel):
  """Two-tower plus a penalty on items drawn uniformly from the catalog.

  The auxiliary batch stands for SSL-CFM's D_item (section 3.3): its items'
  embeddings get a gradient, so a misaligned stream on resume changes weights.
  """

  def auxiliary_streams(self, data, batch_size, seed, epoch):
    return {"uniform_items": pipeline.item_dataset(data, batch_size, "uniform",
                                                   seed=seed, epoch=epoch)}

  def compute_loss(self, inputs, training=False):
    outputs = super().compute_loss(inputs, training=training)
    items = inputs["aux"]["uniform_items"]["item"]                  # [B]
    vectors = self.item_tower(items, training=training)             # [B, D]
    # Spread the uniformly drawn items apart: log mean exp of their pairwise
    # inner products (the towers' vectors are unit-length, so a norm penalty
    # would be constant).
    similarity = tf.matmul(vectors, vectors, transpose_b=True)        # [B, B]
    penalty = tf.reduce_logsumexp(similarity)
    return {"loss": outputs["loss"] + 0.1 * penalty}


def _uniform_items_model(data):
  params = registry.resolve_params("two_tower", _PARAMS)
  user_tower, item_tower = two_tower_config.build_towers(params, data)
  return _UniformItemsModel(user_tower, item_tower,
                            two_tower_config.log_item_probability(data))


def _two_tower_model(data):
  return registry.build_model("two_tower", registry.resolve_params("two_tower", _PARAMS),
                              data)


def _run(data, model_dir, epochs, steps=0, seed=3, log_every=50, build=_two_tower_model,
         checkpoint_every=1000):
  trainer_lib.set_seeds(seed)
  model = build(data)
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, epochs=epochs, steps=steps,
                                     seed=seed, all_prefixes=True,
                                     checkpoint_every=checkpoint_every,
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


def test_auxiliary_stream_is_zipped_into_each_batch(data):
  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, seed=3, all_prefixes=True)
  plain = trainer_lib.training_dataset(_two_tower_model(data), data, config, epoch=1)
  assert "aux" not in next(iter(plain))
  batches = list(trainer_lib.training_dataset(_uniform_items_model(data), data, config,
                                              epoch=1))
  assert len(batches) == trainer_lib.steps_per_epoch(data, config)
  # Main batch k carries element k of the stream of the same (seed, epoch).
  stream = pipeline.item_dataset(data, 4, "uniform", seed=3, epoch=1)
  for batch, expected in zip(batches, stream):
    np.testing.assert_array_equal(batch["aux"]["uniform_items"]["item"].numpy(),
                                  expected["item"].numpy())
  main = pipeline.train_dataset(data, 4, 6, seed=3, epoch=1, all_prefixes=True)
  for batch, expected in zip(batches, main):
    np.testing.assert_array_equal(batch["target"].numpy(), expected["target"].numpy())
  # The stream matters to the loss (so the resume test below would see a
  # misaligned stream): other auxiliary items, another loss.
  model = _uniform_items_model(data)
  other = dict(batches[0], aux={"uniform_items": batches[1]["aux"]["uniform_items"]})
  assert (float(model.compute_loss(batches[0])["loss"])
          != float(model.compute_loss(other)["loss"]))


def test_a_stream_shorter_than_the_epoch_is_refused(data):
  class Short(_UniformItemsModel):
    def auxiliary_streams(self, data, batch_size, seed, epoch):
      return {"few": pipeline.item_dataset(data, batch_size, seed=seed).take(1)}

  config = trainer_lib.TrainerConfig(batch_size=4, max_len=6, all_prefixes=True)
  model = Short(*two_tower_config.build_towers(
      registry.resolve_params("two_tower", _PARAMS), data))
  with pytest.raises(ValueError, match=r"\['few'\] has 1 elements"):
    trainer_lib.training_dataset(model, data, config, epoch=0)


def test_a_model_with_streams_builds_from_an_evaluation_batch(data):
  """load_trained_model's build batch carries one element of each stream."""
  model = _uniform_items_model(data)
  eval_batch = next(iter(pipeline.eval_dataset(data, "test", batch_size=2, max_len=6)))
  batch = checkpoint._as_train_batch(eval_batch, model, data)  # pylint: disable=protected-access
  expected = next(iter(pipeline.item_dataset(data, 2, "uniform", seed=0, epoch=0)))
  np.testing.assert_array_equal(batch["aux"]["uniform_items"]["item"].numpy(),
                                expected["item"].numpy())
  np.testing.assert_array_equal(batch["target"].numpy(), eval_batch["targets"][:, 0].numpy())
  assert np.isfinite(float(model.compute_loss(batch)["loss"]))
  plain_model = _two_tower_model(data)
  plain = checkpoint._as_train_batch(eval_batch, plain_model, data)  # pylint: disable=protected-access
  assert "aux" not in plain


def test_run_with_a_stream_killed_mid_epoch_equals_uninterrupted_run(data, tmp_path):
  tf.config.experimental.enable_op_determinism()
  full, _, _ = _run(data, tmp_path / "full", epochs=2, build=_uniform_items_model)
  per_epoch = full.steps_per_epoch()
  stop_at = per_epoch + per_epoch // 2 + 1        # in the middle of epoch 1
  first, _, _ = _run(data, tmp_path / "resumed", epochs=2, steps=stop_at,
                     build=_uniform_items_model)
  assert int(first.epoch) == 1 and int(first.step_in_epoch) == per_epoch // 2 + 1
  resumed, _, _ = _run(data, tmp_path / "resumed", epochs=2, build=_uniform_items_model)
  assert int(resumed.global_step) == 2 * per_epoch
  diff = checkpoint.checkpoint_difference(
      checkpoint.checkpoint_path(str(tmp_path / "full")),
      checkpoint.checkpoint_path(str(tmp_path / "resumed")))
  assert diff and max(diff.values()) == 0.0, {k: v for k, v in diff.items() if v}


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
  with pytest.raises(FileNotFoundError, match="--validate_every"):
    checkpoint.checkpoint_path(str(tmp_path), "best")


def _truncate_data_file(prefix):
  """Cuts the `.data` file of checkpoint `prefix` in half (a crash mid-write)."""
  data_file = prefix + ".data-00000-of-00001"
  size = os.path.getsize(data_file)
  with open(data_file, "r+b") as f:
    f.truncate(size // 2)


def test_a_corrupt_latest_checkpoint_is_named_and_training_resumes_from_the_previous(
    data, tmp_path, capsys):
  tf.config.experimental.enable_op_determinism()
  full, _, _ = _run(data, tmp_path / "full", epochs=1)
  per_epoch = full.steps_per_epoch()
  stop_at = per_epoch // 2 + 1
  # A checkpoint at every step; the last one (step stop_at) is cut short.
  first, _, _ = _run(data, tmp_path / "resumed", epochs=1, steps=stop_at,
                     checkpoint_every=1)
  latest = first.manager.latest_checkpoint
  assert latest.endswith("ckpt-%d" % stop_at)
  _truncate_data_file(latest)
  capsys.readouterr()
  resumed, _, _ = _run(data, tmp_path / "resumed", epochs=1)
  err = capsys.readouterr().err
  assert resumed.corrupt_checkpoints == [latest]
  assert "checkpoint %s is corrupt" % latest in err
  assert "Resuming from %s, the newest intact checkpoint (step %d," % (
      latest[:-len(str(stop_at))] + str(stop_at - 1), stop_at - 1) in err
  # Resumed one step earlier, the run still ends where the uninterrupted one
  # ends (the resume is exact from any checkpoint).
  diff = checkpoint.checkpoint_difference(
      checkpoint.checkpoint_path(str(tmp_path / "full")),
      checkpoint.checkpoint_path(str(tmp_path / "resumed")))
  assert diff and max(diff.values()) == 0.0, {k: v for k, v in diff.items() if v}


def test_every_checkpoint_corrupt_is_an_error_naming_them(data, tmp_path):
  first, _, _ = _run(data, tmp_path, epochs=1, steps=2, checkpoint_every=1)
  for prefix in first.manager.checkpoints:
    _truncate_data_file(prefix)
  with pytest.raises(checkpoint.CorruptCheckpointError,
                     match=r"every checkpoint of .* is corrupt \(.*ckpt-2, .*ckpt-1\)"):
    _run(data, tmp_path, epochs=1)
