"""experiments/evaluate.py end to end: train a few steps, evaluate, check the JSON.

The binaries run as subprocesses (their absl flags would clash in one process);
the reference re-ranks with NumPy from the restored towers.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import pipeline
from dcg_tf.training import checkpoint
from tests.binaries import run_module
from tests.data import fixtures





@pytest.mark.slow
def test_evaluate_binary_full_protocol_matches_numpy(tmp_path):
  data_dir = fixtures.write_tiny_dataset(str(tmp_path / "data"), num_users=60,
                                         num_items=40, seed=5)
  model_dir = str(tmp_path / "model")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data_dir,
       "--model_dir=" + model_dir, "--steps=3", "--batch_size=16",
       "--max_len=20", "--progress=false")
  output = str(tmp_path / "eval.json")
  stdout = run_module("experiments.evaluate", "--model_dir=" + model_dir,
                "--data_dir=" + data_dir, "--protocol=full", "--output=" + output,
                "--ks=1,10,20")
  with open(output) as f:
    got = json.load(f)
  assert "| HR |" in stdout and "| MRR |" in stdout
  assert got["protocol"] == "full" and got["num_users"] == 60

  # Reference: restored towers, NumPy brute force, earlier items excluded.
  model, data = checkpoint.load_trained_model(model_dir, data_dir)
  items = np.asarray(model.item_tower(tf.range(1, 41, dtype=tf.int64)))   # [N, D]
  truth = fixtures.tiny_arrays(60, 40, seed=5)
  hr10, mrr = [], []
  for batch in pipeline.eval_dataset(data, "test", batch_size=64, max_len=20):
    users = np.asarray(model.user_tower(batch, training=False))         # [B, D]
    for u, vector in zip(batch["user"].numpy(), users):
      seq = truth["sequences"][u - 1]["item"]
      target = seq[-1]
      scores = items @ vector                                          # [N]
      scores[np.setdiff1d(seq[:-1], [target]) - 1] = -np.inf
      rank = int((scores > scores[target - 1]).sum())
      hr10.append(rank < 10)
      mrr.append(1.0 / (rank + 1) if rank < 20 else 0.0)
  assert got["HR@10"] == pytest.approx(np.mean(hr10), abs=1e-6)
  assert got["MRR"] == pytest.approx(np.mean(mrr), abs=1e-6)


def test_train_validates_and_evaluate_reads_the_best_checkpoint(tmp_path):
  """--validate_every keeps the best epoch; evaluate --checkpoint=best reproduces it."""
  data_dir = fixtures.write_tiny_dataset(str(tmp_path / "data"), num_users=60,
                                         num_items=40, seed=5)
  model_dir = str(tmp_path / "model")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data_dir,
       "--model_dir=" + model_dir, "--epochs=3", "--batch_size=16", "--max_len=20",
       "--progress=false", "--validate_every=1", "--validation_protocol=full",
       "--best_metric=MRR")
  with open(os.path.join(model_dir, "validation.json")) as f:
    history = json.load(f)
  assert [r["epoch"] for r in history] == [1, 2, 3]
  mrrs = [r["metrics"]["MRR"] for r in history]
  best = [r for r in history if r.get("best")][-1]
  assert best["metrics"]["MRR"] == max(mrrs)
  output = str(tmp_path / "valid.json")
  run_module("experiments.evaluate", "--model_dir=" + model_dir, "--data_dir=" + data_dir,
       "--protocol=full", "--split=valid", "--checkpoint=best", "--output=" + output)
  with open(output) as f:
    got = json.load(f)
  assert got["checkpoint"] == "best/ckpt-%d" % best["step"]
  assert got["MRR"] == pytest.approx(best["metrics"]["MRR"], abs=1e-6)
  assert got["HR@10"] == pytest.approx(best["metrics"]["HR@10"], abs=1e-6)
