"""`python -m experiments.train --model=ssl_cfm`: trains, resumes exactly, restores."""

import os
import subprocess
import sys

import pytest

from dcg_tf.training import checkpoint
from tests.data.fixtures import write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "experiments.train", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ssl_cfm_trains_three_steps_and_resumes_exactly(tmp_path):
  data_dir = write_tiny_dataset(str(tmp_path / "tiny"), num_users=12, num_items=15)
  common = ["--model=ssl_cfm", "--data_dir=" + data_dir, "--batch_size=4",
            "--max_len=6", "--embedding_dim=8", "--all_prefixes", "--epochs=3",
            "--progress=false", "--param=ssl_private_layers=1"]
  resumed = str(tmp_path / "resumed")
  first = _train(*common, "--model_dir=" + resumed, "--steps=3")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "done: step 3" in first.stdout and "ssl_loss=" in first.stdout
  second = _train(*common, "--model_dir=" + resumed, "--steps=5")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "(step 3," in second.stderr and "done: step 5" in second.stdout
  straight = str(tmp_path / "straight")
  whole = _train(*common, "--model_dir=" + straight, "--steps=5")
  assert whole.returncode == 0, whole.stderr[-3000:]
  # The masks, value dropout and SSL items of steps 3 and 4 are keyed by
  # (seed, step) and (seed, epoch, batch): the resumed weights are the same.
  difference = checkpoint.checkpoint_difference(
      checkpoint.checkpoint_path(resumed), checkpoint.checkpoint_path(straight))
  assert any("field_masking" in key for key in difference)
  assert max(difference.values()) == 0.0, {k: v for k, v in difference.items() if v}
  # The trained model restores from its run.json (MI recomputed from the catalog).
  probe = subprocess.run(
      [sys.executable, "-c",
       "import dcg_tf\n"
       "from dcg_tf.training import checkpoint\n"
       "model, _ = checkpoint.load_trained_model(%r)\n"
       "print(type(model).__name__, model.masking.num_masked)" % resumed],
      cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
      capture_output=True, text=True, timeout=300, check=False)
  assert probe.returncode == 0, probe.stderr[-3000:]
  assert probe.stdout.split("\n")[-2] == "SSLCFMModel 2"
