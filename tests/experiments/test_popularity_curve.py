"""experiments/popularity_curve.py at tiny size: the beta grid against NumPy.

The binaries run as subprocesses (absl flags); the reference re-ranks with
NumPy from the restored towers: score + beta * log p, p(i) = (count(i) + 1) /
(S + N), the user's earlier items excluded, the target kept.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import pipeline
from dcg_tf.training import checkpoint
from tests.binaries import run_module
from tests.data import fixtures

BETAS = (-2.0, 0.0, 3.0)


def _reference(model, data, split, beta, truth, cut):
  """HR@10 and coverage@10 of `split` by NumPy brute force."""
  items = np.asarray(model.item_tower(tf.range(1, 41, dtype=tf.int64)))  # [N, D]
  counts = np.asarray(data.item_count, np.float64)[1:]
  log_p = np.log((counts + 1.0) / (counts.sum() + counts.size))
  hits, top = [], []
  for batch in pipeline.eval_dataset(data, split, batch_size=64, max_len=20):
    users = np.asarray(model.user_tower(batch, training=False))           # [B, D]
    for u, vector in zip(batch["user"].numpy(), users):
      seq = truth["sequences"][u - 1]["item"]
      target = seq[cut]
      scores = items.astype(np.float64) @ vector + beta * log_p           # [N]
      scores[np.setdiff1d(seq[:cut], [target]) - 1] = -np.inf
      order = np.argsort(-scores, kind="stable")[:10] + 1
      hits.append(target in order)
      top.extend(order.tolist())
  return float(np.mean(hits)), len(set(top))


def test_popularity_curve_matches_numpy_and_chooses_beta_on_valid(tmp_path):
  data_dir = fixtures.write_tiny_dataset(str(tmp_path / "data"), num_users=60,
                                         num_items=40, seed=5)
  model_dir = str(tmp_path / "model")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data_dir,
             "--model_dir=" + model_dir, "--steps=3", "--batch_size=16",
             "--max_len=20", "--progress=false")
  output, png = str(tmp_path / "curve.json"), str(tmp_path / "curve.png")
  stdout = run_module("experiments.popularity_curve",
                      "--models=a=%s,b=%s" % (model_dir, model_dir),
                      "--data_dir=" + data_dir,
                      "--betas=" + ",".join("%g" % b for b in BETAS),
                      "--output=" + output, "--png=" + png)
  with open(output) as f:
    report = json.load(f)
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "beta chosen on valid" in stdout
  assert report["betas"] == list(BETAS) and report["selected_on"] == "valid"
  assert "alpha = 1" in report["popularity"]["definition"]

  model, data = checkpoint.load_trained_model(model_dir, data_dir)
  truth = fixtures.tiny_arrays(60, 40, seed=5)
  result = report["models"]["a"]
  assert result == report["models"]["b"]
  for split, cut in (("valid", -2), ("test", -1)):
    for point, beta in zip(result[split], BETAS):
      hr, coverage = _reference(model, data, split, beta, truth, cut)
      assert point["beta"] == beta and point["num_users"] == 60
      assert point["HR@10"] == pytest.approx(hr, abs=1e-9)
      assert point["coverage@10"] == coverage
  # Chosen on valid: the largest validation HR@10 (ties: the smallest |beta|).
  valid = result["valid"]
  best = max(p["HR@10"] for p in valid)
  assert result["chosen_beta"] == min((p["beta"] for p in valid
                                       if p["HR@10"] == best), key=abs)
  assert result["test_at_chosen_beta"]["beta"] == result["chosen_beta"]
