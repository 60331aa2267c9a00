"""benchmarks/clrec_throughput_benchmark.py runs end to end with --quick."""

import importlib.util
import math
import pathlib

import numpy as np
import pytest

BENCHMARK = (pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
             / "clrec_throughput_benchmark.py")


@pytest.mark.slow
def test_clrec_throughput_benchmark_quick(tmp_path):
  spec = importlib.util.spec_from_file_location("clrec_benchmark", BENCHMARK)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  out = tmp_path / "clrec.json"
  summary = module.main(["--quick", "--output", str(out)])
  throughput = summary["examples_per_second"]
  assert set(throughput) == {"clrec_cached", "clrec_raw", "sampled_softmax"}
  for name, seconds in summary["round_seconds"].items():
    assert len(seconds) == 2
    # examples/s = batch 16 x 2 steps / median round time.
    assert math.isclose(throughput[name], 16 * 2 / np.median(seconds))
  assert math.isclose(summary["ratio_cached_vs_sampled_softmax"],
                      throughput["clrec_cached"] / throughput["sampled_softmax"])
  assert out.read_text().startswith("{")
