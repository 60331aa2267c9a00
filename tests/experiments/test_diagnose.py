"""experiments/diagnose.py end to end on a Multi-CLRec model trained a few steps.

The binaries run as subprocesses (their absl flags would clash in one process);
the reference recomputes routing, selection and item statistics with NumPy
from the restored model.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import pipeline
from dcg_tf.evaluation import diagnostics
from dcg_tf.training import checkpoint
from tests.binaries import run_module
from tests.data import fixtures

N, U, H = 40, 60, 4




def test_diagnose_binary_multi_clrec_matches_restored_model(tmp_path):
  data_dir = fixtures.write_tiny_dataset(str(tmp_path / "data"), num_users=U,
                                         num_items=N, seed=5)
  model_dir = str(tmp_path / "model")
  run_module("experiments.train", "--model=multi_clrec", "--data_dir=" + data_dir,
       "--model_dir=" + model_dir, "--steps=3", "--batch_size=8", "--max_len=10",
       "--progress=false", "--param=num_intentions=%d" % H,
       "--param=main_queue_size=8", "--param=secondary_queue_size=8",
       "--param=embedding_dim=8", "--param=importance_hidden_units=[8]")
  output = str(tmp_path / "diagnose.json")
  stdout = run_module("experiments.diagnose", "--model_dir=" + model_dir,
                "--num_items_sample=30", "--seed=3", "--batch_size=16",
                "--progress=false", "--output=" + output)
  with open(output) as f:
    got = json.load(f)
  assert "mean pairwise cosine" in stdout and "items per intention" in stdout
  assert got["experiment"] == "multi_clrec" and got["checkpoint"] == "ckpt-3"
  assert got["max_len"] == 10 and got["split"] == "test"

  model, data = checkpoint.load_trained_model(model_dir)
  # Item statistics on the same seeded sample, with NumPy.
  ids = diagnostics.sample_item_ids(N, 30, seed=3)
  x = np.asarray(model.item_tower(tf.constant(ids), training=False), np.float64)
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  cos = unit @ unit.T
  sigma = np.linalg.svd(x, compute_uv=False)
  p = sigma / sigma.sum()
  items = got["item_embeddings"]
  assert items["num_sampled"] == 30
  assert items["mean_pairwise_cosine"] == pytest.approx(
      (cos.sum() - np.trace(cos)) / (30 * 29), abs=1e-5)
  assert items["effective_rank"] == pytest.approx(np.exp(-np.sum(p * np.log(p))),
                                                  rel=1e-4)
  assert items["mean_norm"] == pytest.approx(1.0, abs=1e-5)   # l2-normalised tower

  # Routing (Eq. 7) of every item: argmax of the routing logits.
  intentions = got["intentions"]
  logits = np.asarray(model.user_tower.item_routing_logits(
      tf.range(1, N + 1, dtype=tf.int64)))                          # [N, H]
  routed = np.bincount(logits.argmax(-1), minlength=H)
  assert sum(intentions["items_per_intention"]) == N
  assert intentions["items_per_intention"] == routed.tolist()
  assert intentions["occupied_intentions"] == int(np.count_nonzero(routed))
  assert intentions["largest_intention_share"] == pytest.approx(routed.max() / N)

  # Selection (Eq. 9) of every test user: argmax of the soft weights w.
  selected = np.concatenate([
      np.asarray(model.user_tower.interests(batch)["weights"]).argmax(-1)
      for batch in pipeline.eval_dataset(data, "test", batch_size=64, max_len=10)])
  assert intentions["num_users"] == U and sum(intentions["selected_intention"]) == U
  assert intentions["selected_intention"] == np.bincount(selected, minlength=H).tolist()
  assert intentions["most_selected_share"] == pytest.approx(
      np.bincount(selected, minlength=H).max() / U)
