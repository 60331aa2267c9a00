"""Smoke run of benchmarks/pcl_aisl_cost_benchmark.py --quick (no timing asserts)."""

import json

import numpy as np

from tests.benchmarks.loading import load_benchmark


def test_quick_run_reports_both_parts(tmp_path):
  benchmark = load_benchmark("pcl_aisl_cost_benchmark")
  output = tmp_path / "report.json"
  benchmark.main(["--quick", "--output=%s" % output])
  report = json.loads(output.read_text())
  serving = report["serving"]
  # Same queries for both; only the mask differs. 60 queries, AINPU 3.2 of
  # K = 4: 12 queries with 4 vectors and 48 with 3 = 192 searches vs 240.
  assert serving["queries_digest"]["aisl"] == serving["queries_digest"]["fixed_k"]
  assert serving["ainpu"] == 3.2
  assert serving["vectors_searched"] == {"aisl": 192, "fixed_k": 240}
  assert set(serving["qps"]) == {"aisl", "fixed_k"} and all(
      q > 0 for q in serving["qps"].values())
  refresh = report["prototype_refresh"]
  assert [r["num_items"] for r in refresh] == [3000]
  assert refresh[0]["total_s"] >= refresh[0]["kmeans_s"] > 0


def test_aisl_queries_retrieve_the_max_over_active_vectors():
  """The timed AISL search returns NumPy's max over the K_u active vectors."""
  benchmark = load_benchmark("pcl_aisl_cost_benchmark")
  args = benchmark.parse_args(["--quick", "--rounds=1"])
  _, items, queries, masks, results = benchmark.serving_qps(
      args, np.random.default_rng(0))
  _, got = results["aisl"][0]                                       # first batch
  for q in range(3):
    active = queries[q][masks["aisl"][q]]                            # [K_u, D]
    scores = (active @ items.T).max(axis=0)                          # [N]
    expected = np.argsort(-scores, kind="stable")[:args.k] + 1       # items 1..N
    np.testing.assert_array_equal(got[q], expected)
  _, fixed = results["fixed_k"][0]
  full = (queries[0] @ items.T).max(axis=0)
  np.testing.assert_array_equal(fixed[0], np.argsort(-full, kind="stable")[:args.k] + 1)


def test_aisl_mask_hand_worked():
  benchmark = load_benchmark("pcl_aisl_cost_benchmark")
  # 10 queries, AINPU 2.3 of K = 4: 3 queries get 3 slots, 7 get 2.
  mask = benchmark.aisl_mask(10, 4, 2.3, np.random.default_rng(1))
  assert sorted(mask.sum(1).tolist()) == [2] * 7 + [3] * 3
  assert (mask[:, 0] & mask[:, 1]).all() and not mask[:, 3].any()
