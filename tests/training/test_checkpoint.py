"""load_trained_model: a run.json written before a parameter was removed loads;\na corrupt checkpoint is named in one line."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.data import pipeline
from dcg_tf.models import registry
from dcg_tf.training import checkpoint
from tests.data.fixtures import write_tiny_dataset


def test_old_run_json_with_the_removed_loss_param_loads(tmp_path):
  configs.import_all()
  data_dir = write_tiny_dataset(str(tmp_path / "data"), num_users=8, num_items=10)
  data = ProcessedDataset.load(data_dir)
  params = registry.resolve_params("two_tower", {"embedding_dim": 8,
                                                 "max_len": 6})
  # two_tower no longer has a `loss` parameter (it had one value).
  with pytest.raises(KeyError, match="no parameter 'loss'"):
    registry.resolve_params("two_tower", {"loss": "in_batch_softmax"})
  model = registry.build_model("two_tower", params, data)
  batch = next(iter(pipeline.train_dataset(data, batch_size=4, max_len=6,
                                           seed=0)))
  model.compute_loss(batch, training=False)   # creates the variables
  model_dir = str(tmp_path / "model")
  tf.train.Checkpoint(model=model).save(
      os.path.join(model_dir, "checkpoints", "ckpt"))
  # A run.json as the code before the removal wrote it.
  old_params = dict(params, loss="in_batch_softmax")
  with open(os.path.join(model_dir, "run.json"), "w") as f:
    json.dump({"experiment": "two_tower",
               "experiment_module": "dcg_tf.configs.two_tower",
               "params": old_params, "trainer": {"max_len": 6},
               "data_dir": data_dir, "dataset_fingerprint": data.fingerprint}, f)
  with pytest.warns(UserWarning, match="loss.*no longer has; they are ignored"):
    restored, _ = checkpoint.load_trained_model(model_dir)
  # Same architecture, weights restored (a fresh model draws other values).
  assert len(model.weights) == len(restored.weights) > 0
  for saved, got in zip(model.weights, restored.weights):
    np.testing.assert_array_equal(got.numpy(), saved.numpy(), err_msg=saved.name)


def test_split_known_params():
  configs.import_all()
  defaults = registry.resolve_params("two_tower")
  known, removed = registry.split_known_params(
      "two_tower", dict(defaults, loss="x", gone=1))
  assert known == defaults and removed == ["gone", "loss"]
  # A parameter added after the run was written takes its default (clrec's
  # num_negatives=None: every live candidate, the behaviour before it).
  old = registry.resolve_params("clrec")
  del old["num_negatives"]
  known, removed = registry.split_known_params("clrec", old)
  assert known["num_negatives"] is None and removed == []
  assert known == registry.resolve_params("clrec")


def _saved_model_dir(tmp_path):
  """A two_tower model_dir (run.json + one checkpoint); returns (dir, prefix)."""
  configs.import_all()
  data_dir = write_tiny_dataset(str(tmp_path / "data"), num_users=8, num_items=10)
  data = ProcessedDataset.load(data_dir)
  params = registry.resolve_params("two_tower", {"embedding_dim": 8, "max_len": 6})
  model = registry.build_model("two_tower", params, data)
  batch = next(iter(pipeline.train_dataset(data, batch_size=4, max_len=6, seed=0)))
  model.compute_loss(batch, training=False)
  model_dir = str(tmp_path / "model")
  prefix = tf.train.Checkpoint(model=model).save(
      os.path.join(model_dir, "checkpoints", "ckpt"))
  checkpoint.write_run_info(model_dir, {
      "experiment": "two_tower", "experiment_module": "dcg_tf.configs.two_tower",
      "params": params, "trainer": {"max_len": 6}, "data_dir": data_dir,
      "dataset_fingerprint": data.fingerprint})
  return model_dir, prefix


def test_verify_checkpoint_finds_a_truncated_or_altered_data_file(tmp_path):
  model_dir, prefix = _saved_model_dir(tmp_path)
  checkpoint.verify_checkpoint(prefix)   # intact: no error
  data_file = prefix + ".data-00000-of-00001"
  with open(data_file, "rb") as f:
    content = f.read()
  # One byte changed in the middle: the CRC32C of its tensor no longer matches.
  altered = bytearray(content)
  altered[len(altered) // 2] ^= 0xFF
  with open(data_file, "wb") as f:
    f.write(bytes(altered))
  with pytest.raises(checkpoint.CorruptCheckpointError,
                     match="checkpoint %s is corrupt" % prefix):
    checkpoint.verify_checkpoint(prefix)
  # Cut in half, as a crash in the middle of a write leaves it.
  with open(data_file, "wb") as f:
    f.write(content[:len(content) // 2])
  with pytest.raises(checkpoint.CorruptCheckpointError) as raised:
    checkpoint.verify_checkpoint(prefix)
  assert "\n" not in str(raised.value)
  # Evaluate and export restore through load_trained_model: one-line InputError.
  with pytest.raises(checkpoint.CorruptCheckpointError,
                     match="checkpoint %s is corrupt.*experiments.train" % prefix):
    checkpoint.load_trained_model(model_dir)
  assert issubclass(checkpoint.CorruptCheckpointError, checkpoint.InputError)


def test_a_tuple_parameter_resumes_its_own_run(tmp_path):
  # `--param=item_cl_weights=1.0,0.1` parses to the tuple (1.0, 0.1), which
  # run.json stores as the list [1.0, 0.1]: the rerun is the same run. A
  # different value is still refused.
  info = {"experiment": "two_tower", "params": {"item_cl_weights": (1.0, 0.1)},
          "trainer": {}, "dataset_fingerprint": "abc"}
  model_dir = str(tmp_path / "run")
  checkpoint.write_run_info(model_dir, info)
  checkpoint.write_run_info(model_dir, info)
  other = dict(info, params={"item_cl_weights": (1.0, 0.3)})
  with pytest.raises(checkpoint.InputError, match="different params"):
    checkpoint.write_run_info(model_dir, other)
