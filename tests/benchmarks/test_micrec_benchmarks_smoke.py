"""benchmarks/cooccurrence_benchmark.py and benchmarks/micrec_step_benchmark.py
run end to end at --quick: their JSON, and that each side counts or trains on
the same data (no timing asserts)."""

import json

import numpy as np
import pytest

from tests.benchmarks.loading import is_digest, load_benchmark


def test_cooccurrence_benchmark_quick(tmp_path):
  module = load_benchmark("cooccurrence_benchmark")
  out = tmp_path / "cooccurrence.json"
  summary = module.main(["--quick", "--output", str(out)])
  assert json.loads(out.read_text()) == summary
  assert set(summary) == {"num_interactions", "num_items", "num_users",
                          "num_sessions", "chunk_pairs", "generate_seconds",
                          "cpus", "load_average", "results"}
  assert summary["num_interactions"] == 20_000
  assert set(summary["results"]) == {"sessions", "window10"}
  # The same events, counted independently here: per session, k distinct
  # items give k (k - 1) ordered pairs; per user, two positions less than 10
  # apart with different items give 2.
  items, sessions, rows = module.make_events(
      20_000, summary["num_items"], 50.0, 8.0, 1.0, 0)
  expected = {"sessions": 0, "window10": 0}
  for s in np.unique(sessions):
    k = np.unique(items[sessions == s]).size
    expected["sessions"] += k * (k - 1)
  for offset in range(1, 10):
    same_user = rows[offset:] == rows[:-offset]
    expected["window10"] += 2 * int(np.sum(same_user & (items[offset:] != items[:-offset])))
  for mode, result in summary["results"].items():
    assert set(result) == {"seconds", "cpu_seconds", "rss_before_gb",
                           "peak_rss_gb", "distinct_pairs", "graph_gb",
                           "total_count", "checksum"}
    assert result["total_count"] == expected[mode], mode
    assert 0 < result["distinct_pairs"] <= result["total_count"]
    assert result["peak_rss_gb"] >= result["rss_before_gb"] > 0


@pytest.mark.slow   # two models traced: ~80 s wall on the loaded 2-core machine
def test_micrec_step_benchmark_quick(tmp_path):
  out = tmp_path / "step.json"
  summary = load_benchmark("micrec_step_benchmark").main(["--quick", "--output", str(out)])
  assert json.loads(out.read_text()) == summary
  for field in ("step_seconds", "step_cpu_seconds"):
    assert set(summary[field]) == {"ican", "micrec"}
    assert all(len(v) == 2 for v in summary[field].values())   # --quick rounds
  # The same main batches in the same order; only MicRec has pair streams.
  digests = summary["data_digest"]
  assert is_digest(digests["ican"]) and digests["ican"] == digests["micrec"]
  assert summary["aux_digest"]["ican"] != summary["aux_digest"]["micrec"]
  losses = summary["last_losses"]
  assert "item_cl_fea_loss" not in losses["ican"]
  for task in ("fea", "sem", "sess"):
    assert np.isfinite(losses["micrec"]["item_cl_%s_loss" % task])
  assert summary["ratio"] > 0 and summary["ratio_cpu"] > 0
