"""experiments/cli.py: every binary is quiet and reports bad input in one line.

Each case runs a binary as a subprocess with a bad input a user will meet and
asserts what the user sees: exactly one non-empty line on stderr, starting with
`error:` and naming the culprit, exit status 2, no traceback and no help text.
The fast cases need no trained model; the slow ones train, export and index a
tiny model once (module fixture) and then break one piece of it.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.binaries import REPO
from tests.binaries import run_module
from tests.data import fixtures


def _run(*args, env=None):
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
  full_env.pop("DCG_TF_VERBOSE", None)
  full_env.update(env or {})
  return subprocess.run([sys.executable, "-m"] + list(args), cwd=REPO, env=full_env,
                        capture_output=True, text=True, timeout=300, check=False)


def _assert_one_line_error(proc, *fragments):
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith("error: "), lines
  for fragment in fragments:
    assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return fixtures.write_tiny_dataset(str(tmp_path_factory.mktemp("data") / "d"),
                                     num_users=12, num_items=15)


def test_list_models_prints_nothing_on_stderr():
  proc = _run("experiments.train", "--list_models")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stderr == ""
  assert "two_tower" in proc.stdout


def test_verbose_environment_variable_keeps_the_tensorflow_logs():
  # The C++ start-up lines (oneDNN, cuda drivers) are what DCG_TF_VERBOSE=1
  # restores; at least one of them appears on a CPU machine.
  proc = _run("experiments.train", "--list_models", env={"DCG_TF_VERBOSE": "1"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stderr.strip(), "DCG_TF_VERBOSE=1 should keep TensorFlow's logs"


FAST_CASES = {
    # name: (argv with {data} for the tiny dataset, fragments of the line)
    "train_unknown_model": (
        ["experiments.train", "--model=no_such_model", "--data_dir={data}",
         "--model_dir={tmp}/m"], ["unknown experiment", "no_such_model"]),
    "train_missing_data_dir": (
        ["experiments.train", "--model=two_tower", "--data_dir={tmp}/nowhere",
         "--model_dir={tmp}/m"], ["nowhere", "no such folder"]),
    "evaluate_no_run_json": (
        ["experiments.evaluate", "--model_dir={tmp}", "--output={tmp}/e.json"],
        ["run.json"]),
    "retrieve_k_below_one": (
        ["experiments.retrieve", "--export_dir={tmp}", "--history=a", "--k=0"],
        ["--k"]),
    "preprocess_missing_input": (
        ["experiments.preprocess", "--format=amazon", "--input={tmp}/nope.json",
         "--output_dir={tmp}/p"], ["nope.json"]),
    "generate_synthetic_unknown_flag": (
        ["experiments.generate_synthetic", "--format=amazon", "--output_dir={tmp}/r"],
        ["format", "formats"]),
}


@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_bad_input_is_one_line_and_exit_2(case, data_dir, tmp_path):
  argv, fragments = FAST_CASES[case]
  argv = [a.format(data=data_dir, tmp=tmp_path) for a in argv]
  _assert_one_line_error(_run(*argv), *fragments)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
  """A two_tower model_dir, its export and a flat index (a few steps)."""
  root = tmp_path_factory.mktemp("trained")
  model_dir, export_dir = str(root / "model"), str(root / "export")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data_dir,
             "--model_dir=" + model_dir, "--steps=2", "--batch_size=4",
             "--max_len=6", "--embedding_dim=8", "--all_prefixes", "--progress=false")
  run_module("experiments.export", "--model_dir=" + model_dir,
             "--export_dir=" + export_dir)
  run_module("experiments.build_index", "--export_dir=" + export_dir, "--index=flat")
  # A copy of the dataset whose manifest (hence fingerprint) differs.
  other_data = str(root / "other_data")
  shutil.copytree(data_dir, other_data)
  with open(os.path.join(other_data, "manifest.json")) as f:
    manifest = json.load(f)
  manifest["note"] = "another dataset"
  with open(os.path.join(other_data, "manifest.json"), "w") as f:
    json.dump(manifest, f)
  # A copy of the export whose fingerprint differs from the index's.
  other_export = str(root / "other_export")
  shutil.copytree(export_dir, other_export, ignore=shutil.ignore_patterns("index_*"))
  with open(os.path.join(other_export, "export.json")) as f:
    content = json.load(f)
  content["export_fingerprint"] = "0" * 64
  with open(os.path.join(other_export, "export.json"), "w") as f:
    json.dump(content, f)
  # A copy of the model_dir whose latest checkpoint's .data file is cut in half.
  corrupt_model = str(root / "corrupt_model")
  shutil.copytree(model_dir, corrupt_model)
  latest = os.path.join(corrupt_model, "checkpoints", "ckpt-2.data-00000-of-00001")
  with open(latest, "r+b") as f:
    f.truncate(os.path.getsize(latest) // 2)
  return {"data": data_dir, "model": model_dir, "export": export_dir,
          "other_data": other_data, "other_export": other_export, "root": str(root),
          "corrupt_model": corrupt_model}


SLOW_CASES = {
    "evaluate_dataset_fingerprint_mismatch": (
        ["experiments.evaluate", "--model_dir={model}", "--data_dir={other_data}",
         "--output={root}/e.json"], ["fingerprint", "not the one"]),
    "train_dataset_fingerprint_mismatch": (
        ["experiments.train", "--model=two_tower", "--data_dir={other_data}",
         "--model_dir={model}", "--max_len=6", "--embedding_dim=8",
         "--batch_size=4"], ["dataset_fingerprint"]),
    "retrieve_index_fingerprint_mismatch": (
        ["experiments.retrieve", "--export_dir={other_export}",
         "--index_dir={export}/index_flat", "--history=a"],
        ["export_fingerprint", "build_index"]),
    "export_into_non_empty_dir": (
        ["experiments.export", "--model_dir={model}", "--export_dir={export}"],
        ["not empty"]),
    "evaluate_corrupt_checkpoint": (
        ["experiments.evaluate", "--model_dir={corrupt_model}", "--output={root}/c.json"],
        ["checkpoints/ckpt-2 is corrupt", "Read less bytes"]),
    "export_corrupt_checkpoint": (
        ["experiments.export", "--model_dir={corrupt_model}",
         "--export_dir={root}/corrupt_export"],
        ["checkpoints/ckpt-2 is corrupt", "experiments.train"]),
    "diagnose_no_run_json": (
        ["experiments.diagnose", "--model_dir={root}"], ["run.json"]),
    "build_index_no_export": (
        ["experiments.build_index", "--export_dir={root}"], ["export.json"]),
    "leaderboard_no_dataset": (
        ["experiments.leaderboard", "--datasets=x={root}/nowhere",
         "--models=two_tower"], ["nowhere"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_bad_input_against_a_trained_model_is_one_line(case, trained):
  argv, fragments = SLOW_CASES[case]
  argv = [a.format(**trained) for a in argv]
  _assert_one_line_error(_run(*argv), *fragments)


def test_describe_prints_each_parameter_with_default_and_meaning():
  proc = _run("experiments.train", "--describe=two_tower")
  assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("two_tower: Mean-pooling user tower")
  # dcg_tf/configs/two_tower.py: temperature 0.1 for two_tower.
  row = next(line.split(None, 2) for line in lines if line.split()[:1] == ["temperature"])
  assert row == ["temperature", "0.1", "softmax temperature dividing the scores"]
