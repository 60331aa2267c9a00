"""Runs the repository's absl binaries as subprocesses in tests.

Each binary defines absl flags, which would clash if several ran in one
process, so tests start `python -m experiments.<verb>` instead.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(*args):
  """`python -m <args>` from the repository root; returns stdout, fails on rc != 0."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
  proc = subprocess.run([sys.executable, "-m"] + list(args), cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout
