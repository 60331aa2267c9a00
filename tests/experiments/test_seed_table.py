"""`python -m experiments.seed_table`: mean ± std over seeds and Welch t-tests."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(folder, seed, protocol, metrics):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "seed%d_%s.json" % (seed, protocol)), "w") as f:
    json.dump(metrics, f)


def _table(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "experiments.seed_table", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_mean_std_and_t_test_hand_worked(tmp_path):
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  for seed, (hr_a, hr_b) in enumerate([(0.30, 0.25), (0.32, 0.27), (0.31, 0.26)]):
    _write(a, seed, "popular100", {"HR@10": hr_a})
    _write(b, seed, "popular100", {"HR@10": hr_b})
    _write(a, seed, "full", {"HR@10": 0.05})
  with open(os.path.join(a, "seed0_train_seconds.txt"), "w") as f:
    f.write("600\n")
  out = str(tmp_path / "t.md")
  proc = _table("--runs=a=%s,b=%s" % (a, b), "--columns=popular100:HR@10,full:HR@10",
                "--compare_to=b", "--output=" + out)
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = open(out).read()
  # a: mean 0.31, sd 0.01; b: 0.26, sd 0.01; full: b has no runs ("-").
  assert "| a | 0.3100 ± 0.0100 (3) | 0.0500 ± 0.0000 (3) | 0,1,2 | 10 min |" in text
  assert "| b | 0.2600 ± 0.0100 (3) | - | 0,1,2 | - |" in text
  # Welch: 0.05 / sqrt(2 * 1e-4 / 3) = 6.12 with 4 dof, p = 0.004.
  assert "| a | b | popular100:HR@10 | +0.0500 | 6.12 | 0.004 |" in text


def test_bad_inputs_are_one_line_errors(tmp_path):
  proc = _table("--runs=a=" + str(tmp_path / "none"))
  assert proc.returncode != 0 and "no such folder" in proc.stderr
  proc = _table("--runs=a=" + str(tmp_path), "--columns=HR@10")
  assert proc.returncode != 0 and "PROTOCOL:METRIC" in proc.stderr
