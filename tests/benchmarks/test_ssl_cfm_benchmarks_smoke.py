"""SSL-CFM cost benchmarks at --quick: JSON schema, and a fair comparison.

benchmarks/ssl_step_benchmark.py (ssl_cfm vs ssl_baseline step time) and
benchmarks/mutual_information_benchmark.py (Eq. 4 over a generated catalog,
two chunk sizes). No timing is asserted.
"""

import json

import numpy as np
import pytest

from tests.benchmarks.loading import is_digest, load_benchmark


def test_ssl_step_benchmark_quick(tmp_path):
  out = tmp_path / "ssl_step.json"
  summary = load_benchmark("ssl_step_benchmark").main(["--quick", "--output", str(out)])
  assert json.loads(out.read_text()) == summary
  assert set(summary) == {
      "models", "num_items", "num_fields", "batch_size", "history_len",
      "rounds", "steps_per_round", "steps", "build_seconds", "step_seconds",
      "median_step_seconds", "step_cpu_seconds", "median_step_cpu_seconds",
      "main_data_digest", "ssl_data_digest", "ratio", "ratio_cpu",
      "load_average"}
  assert summary["models"] == ["ssl_baseline", "ssl_cfm"]
  # The id and the 8 generated fields.
  assert summary["num_fields"] == 9
  # Same number of optimizer steps (--quick: 2 rounds x 2 steps) on the same
  # main batches; only ssl_cfm consumed an SSL item batch.
  assert summary["steps"] == {"ssl_baseline": 4, "ssl_cfm": 4}
  digests = summary["main_data_digest"]
  assert is_digest(digests["ssl_cfm"])
  assert digests["ssl_cfm"] == digests["ssl_baseline"]
  ssl = summary["ssl_data_digest"]
  assert is_digest(ssl["ssl_cfm"]) and ssl["ssl_cfm"] != ssl["ssl_baseline"]
  for name in summary["models"]:
    assert len(summary["step_seconds"][name]) == 2
    assert summary["median_step_cpu_seconds"][name] > 0
  assert summary["ratio"] > 0 and summary["ratio_cpu"] > 0


def test_mutual_information_benchmark_quick(tmp_path):
  module = load_benchmark("mutual_information_benchmark")
  out = tmp_path / "mi.json"
  summary = module.main(["--quick", "--output", str(out)])
  assert json.loads(out.read_text()) == summary
  assert set(summary) == {
      "num_items", "num_fields", "field_names", "input_mib", "results",
      "max_abs_difference", "peak_rss_mib_before", "peak_rss_mib_after",
      "mutual_information", "load_average"}
  assert summary["num_items"] == 3_000 and summary["num_fields"] == 11
  first, second = summary["results"]
  assert (first["max_pairs_per_chunk"], second["max_pairs_per_chunk"]) == (
      4194304, 1000)
  # Both chunk sizes ran on the same fields and agree.
  assert is_digest(first["data_digest"])
  assert first["data_digest"] == second["data_digest"]
  assert summary["max_abs_difference"] < 1e-9
  # Independent check of the table: the id takes a distinct value per item,
  # so MI(id, f) = H(f) for a single-valued field f (by counting values).
  fields = module.fields(3_000, 0)
  mi = np.asarray(summary["mutual_information"])
  for j, name in enumerate(summary["field_names"]):
    values = fields[name][1:]
    if name == "item" or values.ndim != 1:
      continue
    p = np.bincount(values) / values.size
    p = p[p > 0]
    assert mi[0, j] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-9), name
