"""build_trainer: the Python training API makes the binary's run.

A model trained from Python has the run.json the binary writes for the same
settings (so `experiments.export` and `experiments.evaluate` accept it), and
the same weights.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.errors import InputError
from dcg_tf.serving import export as export_lib
from dcg_tf.training import checkpoint
from dcg_tf.training.experiment import build_trainer
from dcg_tf.training.trainer import TrainerConfig
from tests.binaries import run_module
from tests.data import fixtures

MAX_LEN = 6
NUM_ITEMS = 40


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  directory = fixtures.write_tiny_dataset(str(tmp_path_factory.mktemp("data")),
                                          num_users=30, num_items=NUM_ITEMS, seed=2)
  return ProcessedDataset.load(directory)


def _config():
  return TrainerConfig(epochs=3, steps=3, batch_size=16, max_len=MAX_LEN,
                       progress=False)


def _read(path):
  with open(path) as f:
    return json.load(f)


def test_python_run_exports_with_the_binary(data, tmp_path):
  model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
  trainer = build_trainer("two_tower", data, model_dir,
                          params={"embedding_dim": 16}, config=_config())
  trainer.train()
  assert int(trainer.global_step) == 3
  info = _read(os.path.join(model_dir, "run.json"))
  assert info["experiment"] == "two_tower"
  assert info["params"]["embedding_dim"] == 16
  assert info["params"]["max_len"] == MAX_LEN   # taken from the config
  assert info["trainer"]["optimizer"] == "lazy_adam"
  stdout = run_module("experiments.export", "--model_dir=" + model_dir,
                      "--export_dir=" + export_dir)
  assert "Exported %d items x 16 dims" % NUM_ITEMS in stdout
  # The export holds the weights trained here: item row r = item r + 1.
  matrix = np.load(os.path.join(export_dir, export_lib.EMBEDDINGS_FILE),
                   allow_pickle=False)
  expected = trainer.model.item_tower(
      tf.range(1, NUM_ITEMS + 1, dtype=tf.int64)).numpy()
  assert np.abs(matrix - expected).max() < 1e-5


@pytest.mark.slow
def test_python_run_equals_the_binary_run(data, tmp_path):
  binary_dir, python_dir = str(tmp_path / "binary"), str(tmp_path / "python")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data.directory,
             "--model_dir=" + binary_dir, "--epochs=3", "--steps=3", "--batch_size=16",
             "--max_len=%d" % MAX_LEN, "--progress=false", "--embedding_dim=16")
  build_trainer("two_tower", data, python_dir, params={"embedding_dim": 16},
                config=_config()).train()
  assert (_read(os.path.join(python_dir, "run.json"))
          == _read(os.path.join(binary_dir, "run.json")))
  difference = checkpoint.checkpoint_difference(
      checkpoint.checkpoint_path(binary_dir), checkpoint.checkpoint_path(python_dir))
  # Same initial weights and data: a different seed or batch order would move
  # weights by ~1e-2 after 3 steps. Float summation order can differ between
  # the pytest process and a fresh one (measured up to 3.6e-7 on a loaded
  # machine), so the bound is float noise, not bitwise equality.
  assert difference and max(difference.values()) < 1e-5


def test_bad_experiment_and_parameter_are_input_errors(data, tmp_path):
  with pytest.raises(InputError, match="unknown experiment 'no_such'"):
    build_trainer("no_such", data, str(tmp_path / "a"), config=_config())
  with pytest.raises(InputError, match="has no parameter 'colour'"):
    build_trainer("two_tower", data, str(tmp_path / "b"), params={"colour": 1},
                  config=_config())
  assert not os.path.exists(str(tmp_path / "a"))   # nothing written when refused


def test_run_seed_reaches_the_models_own_draws_unless_overridden(data, tmp_path):
  # sampled_softmax draws its negatives with params["seed"]: with --seed=3 and
  # no --param=seed, the recorded params hold 3; an explicit param wins.
  config = _config()
  config.seed = 3
  trainer = build_trainer("sampled_softmax", data, str(tmp_path / "a"), config=config)
  with open(os.path.join(str(tmp_path / "a"), "run.json")) as f:
    assert json.load(f)["params"]["seed"] == 3
  assert trainer.model is not None
  build_trainer("sampled_softmax", data, str(tmp_path / "b"), params={"seed": 7},
                config=config)
  with open(os.path.join(str(tmp_path / "b"), "run.json")) as f:
    assert json.load(f)["params"]["seed"] == 7
