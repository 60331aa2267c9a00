"""benchmarks/clrec_throughput_benchmark.py runs end to end with --quick."""

import json

import pytest

from tests.benchmarks.loading import load_benchmark


@pytest.mark.slow
def test_clrec_throughput_benchmark_quick(tmp_path):
  module = load_benchmark("clrec_throughput_benchmark")
  out = tmp_path / "clrec.json"
  summary = module.main(["--quick", "--output", str(out)])
  assert json.loads(out.read_text()) == summary
  models = {"clrec_cached", "clrec_raw", "sampled_softmax"}
  for key in ("round_seconds", "round_cpu_seconds", "examples_per_second",
              "examples_per_cpu_second", "best_round_examples_per_second",
              "steps", "data_digest"):
    assert set(summary[key]) == models, key
  for name in models:
    assert len(summary["round_seconds"][name]) == 2            # --quick: 2 rounds
    assert summary["examples_per_second"][name] > 0
  for key in ("ratio_cached_vs_sampled_softmax", "ratio_raw_vs_sampled_softmax",
              "cpu_ratio_cached_vs_sampled_softmax",
              "best_round_ratio_cached_vs_sampled_softmax"):
    assert isinstance(summary[key], float) and summary[key] > 0, key
  # The same race for all: 4 warm-up steps (negatives 64 / batch 16) + 2
  # rounds x 2 steps, each model's own update count; the same batches in the
  # same order (digest of what each was fed).
  assert set(summary["steps"].values()) == {4 + 2 * 2}
  digests = set(summary["data_digest"].values())
  assert len(digests) == 1 and len(digests.pop()) == 64
