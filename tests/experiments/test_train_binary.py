"""`python -m experiments.train`: outputs, resume by re-running, clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.data.fixtures import write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "experiments.train", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=12, num_items=15)


def test_train_writes_traceable_outputs_and_resumes(data_dir, tmp_path):
  model_dir = str(tmp_path / "model")
  common = ["--model=two_tower", "--data_dir=" + data_dir, "--model_dir=" + model_dir,
            "--batch_size=4", "--max_len=6", "--embedding_dim=8", "--all_prefixes",
            "--epochs=3", "--progress=false"]
  first = _train(*common, "--steps=4")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "done: step 4" in first.stdout
  with open(os.path.join(model_dir, "run.json")) as f:
    run = json.load(f)
  with open(os.path.join(data_dir, "manifest.json"), "rb") as f:
    import hashlib  # pylint: disable=g-import-not-at-top
    assert run["dataset_fingerprint"] == hashlib.sha256(f.read()).hexdigest()
  assert run["experiment"] == "two_tower" and run["params"]["embedding_dim"] == 8
  with open(os.path.join(model_dir, "flags.txt")) as f:
    assert "--embedding_dim=8" in f.read()
  assert os.path.exists(os.path.join(model_dir, "checkpoints", "checkpoint"))
  assert os.listdir(os.path.join(model_dir, "logs"))  # TensorBoard events
  # The same command with a larger bound continues from step 4.
  second = _train(*common, "--steps=6")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "Resuming from" in second.stderr and "(step 4," in second.stderr
  assert "done: step 6" in second.stdout
  # Restoring the model imports its own paper's builders and no other.
  assert run["experiment_module"] == "dcg_tf.configs.two_tower"
  probe = subprocess.run(
      [sys.executable, "-c",
       "import sys, dcg_tf\n"
       "from dcg_tf.training import checkpoint\n"
       "checkpoint.load_trained_model(%r)\n"
       "print(sorted(m for m in sys.modules if m.startswith('dcg_tf.configs.')))"
       % model_dir],
      cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
      capture_output=True, text=True, timeout=300, check=False)
  assert probe.returncode == 0, probe.stderr[-3000:]
  assert probe.stdout.split("\n")[-2] == "['dcg_tf.configs.two_tower']"


def test_unknown_parameter_is_a_usage_error(data_dir, tmp_path):
  result = _train("--model=two_tower", "--data_dir=" + data_dir,
                  "--model_dir=" + str(tmp_path / "m"), "--param=no_such_thing=3")
  assert result.returncode != 0
  assert "has no parameter 'no_such_thing'" in result.stderr


def test_other_experiment_in_same_model_dir_is_refused(data_dir, tmp_path):
  model_dir = str(tmp_path / "m")
  args = ["--data_dir=" + data_dir, "--model_dir=" + model_dir, "--batch_size=4",
          "--max_len=6", "--embedding_dim=8", "--all_prefixes", "--steps=1",
          "--progress=false"]
  assert _train("--model=two_tower", *args).returncode == 0
  result = _train("--model=two_tower", *args, "--embedding_dim=16")
  assert result.returncode != 0 and "different params" in result.stderr


def test_train_on_valid_trains_on_the_validation_events_too(data_dir, tmp_path):
  from tests.data.fixtures import tiny_arrays  # pylint: disable=g-import-not-at-top
  common = ["--model=two_tower", "--data_dir=" + data_dir, "--batch_size=1",
            "--max_len=6", "--embedding_dim=8", "--all_prefixes", "--epochs=1",
            "--progress=false"]
  refused = _train(*common, "--model_dir=" + str(tmp_path / "r"), "--train_on_valid",
                   "--validate_every=1")
  assert refused.returncode != 0 and "--validate_every" in refused.stderr
  lengths = [len(s["item"]) for s in tiny_arrays(12, 15, 0)["sequences"]]
  # Batch 1, one epoch of every prefix: one step per (history, target) pair.
  plain = _train(*common, "--model_dir=" + str(tmp_path / "p"))
  assert plain.returncode == 0, plain.stderr[-3000:]
  assert "done: step %d," % sum(max(n - 3, 0) for n in lengths) in plain.stdout
  model_dir = str(tmp_path / "f")
  folded = _train(*common, "--model_dir=" + model_dir, "--train_on_valid")
  assert folded.returncode == 0, folded.stderr[-3000:]
  assert "done: step %d," % sum(n - 2 for n in lengths) in folded.stdout
  with open(os.path.join(model_dir, "run.json")) as f:
    assert json.load(f)["trainer"]["train_on_valid"] is True
  # Resuming without the fold would change the data under the trained model.
  resumed = _train(*common, "--model_dir=" + model_dir, "--epochs=2")
  assert resumed.returncode != 0 and "train_on_valid=True" in resumed.stderr
  # Reloading applies the same fold, and the validation split refuses to score
  # a model that trained on it.
  from dcg_tf.evaluation import evaluator  # pylint: disable=g-import-not-at-top
  from dcg_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  model, data = checkpoint.load_trained_model(model_dir)
  assert data.validation_in_train
  with pytest.raises(ValueError, match="evaluate on test"):
    evaluator.evaluate_model(model, data, split="valid")
  assert evaluator.evaluate_model(model, data, split="test", progress=False)["num_users"] == 12


def test_train_fraction_trains_on_the_down_sample_and_reloads_it(data_dir, tmp_path):
  from dcg_tf.data.dataset import ProcessedDataset  # pylint: disable=g-import-not-at-top
  from dcg_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  common = ["--model=two_tower", "--data_dir=" + data_dir, "--batch_size=1",
            "--max_len=6", "--embedding_dim=8", "--all_prefixes", "--epochs=1",
            "--progress=false"]
  model_dir = str(tmp_path / "tenth")
  run = _train(*common, "--model_dir=" + model_dir, "--train_fraction=0.5")
  assert run.returncode == 0, run.stderr[-3000:]
  # Batch 1, every prefix: one step per (history, target) pair of the kept
  # events (dataset.with_train_fraction is tested in tests/data).
  half = ProcessedDataset.load(data_dir).with_train_fraction(0.5)
  lengths = np.diff(half.train_sequences().offsets)
  assert "done: step %d," % int(np.maximum(lengths - 1, 0).sum()) in run.stdout
  with open(os.path.join(model_dir, "run.json")) as f:
    assert json.load(f)["trainer"]["train_fraction"] == 0.5
  resumed = _train(*common, "--model_dir=" + model_dir, "--epochs=2")
  assert resumed.returncode != 0 and "train_fraction=0.5" in resumed.stderr
  _, data = checkpoint.load_trained_model(model_dir)
  np.testing.assert_array_equal(data.item_count, half.item_count)


def test_rerun_with_other_training_flags_is_refused_unless_allowed(data_dir, tmp_path):
  model_dir = str(tmp_path / "m")
  common = ["--model=two_tower", "--data_dir=" + data_dir, "--model_dir=" + model_dir,
            "--max_len=6", "--embedding_dim=8", "--all_prefixes", "--progress=false"]
  assert _train(*common, "--batch_size=4", "--steps=2").returncode == 0
  with open(os.path.join(model_dir, "run.json")) as f:
    before = json.load(f)
  with open(os.path.join(model_dir, "flags.txt")) as f:
    flags_before = f.read()
  refused = _train(*common, "--batch_size=2", "--learning_rate=0.01", "--steps=3")
  lines = [line for line in refused.stderr.splitlines() if line.strip()]
  assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-3000:]
  assert "--batch_size=4 (now 2)" in lines[0]
  assert "--learning_rate=0.001 (now 0.01)" in lines[0]
  assert "--allow_flag_changes" in lines[0]
  # Nothing was overwritten with values the run never used.
  with open(os.path.join(model_dir, "run.json")) as f:
    assert json.load(f) == before
  with open(os.path.join(model_dir, "flags.txt")) as f:
    assert f.read() == flags_before
  # More steps alone is the normal resume and needs no permission.
  more = _train(*common, "--batch_size=4", "--steps=3")
  assert more.returncode == 0, more.stderr[-3000:]
  allowed = _train(*common, "--batch_size=2", "--learning_rate=0.01", "--steps=4",
                   "--allow_flag_changes")
  assert allowed.returncode == 0, allowed.stderr[-3000:]
  assert "done: step 4" in allowed.stdout
  with open(os.path.join(model_dir, "run.json")) as f:
    after = json.load(f)
  assert after["trainer"]["batch_size"] == 2
  assert after["trainer"]["learning_rate"] == 0.01
  assert after["trainer_changes"] == [{
      "from_checkpoint": "ckpt-3",
      "changed": {"batch_size": {"before": 4, "after": 2},
                  "learning_rate": {"before": 0.001, "after": 0.01}}}]


def test_param_values_true_false_none_in_any_case():
  # --param=x=false must not reach a builder as the (truthy) string "false".
  probe = subprocess.run(
      [sys.executable, "-c",
       "from experiments.train import _parse_value as p\n"
       "print([p(t) for t in ('false', 'False', 'TRUE', 'none', '[64]', '0.5', "
       "'sum')])"],
      cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
      capture_output=True, text=True, timeout=300, check=False)
  assert probe.returncode == 0, probe.stderr[-2000:]
  assert probe.stdout.strip().splitlines()[-1] == \
      "[False, False, True, None, [64], 0.5, 'sum']"
