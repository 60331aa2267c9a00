"""Smoke run of benchmarks/retrieval_benchmark.py --quick (CI)."""

import json

import numpy as np

from tests.benchmarks.loading import load_benchmark


def test_quick_run_reports_consistent_figures(tmp_path):
  benchmark = load_benchmark("retrieval_benchmark")
  output = tmp_path / "report.json"
  benchmark.main(["--quick", "--output_json=%s" % output])
  report = json.loads(output.read_text())
  # (1) The Retriever returns exactly what Faiss returns (item = label + 1).
  assert report["exact"]["identical_results"] is True
  assert report["exact"]["batch_ratio"] > 0 and report["exact"]["single_ratio"] > 0
  # (2) IVF: probing more cells scans a superset, so recall cannot drop; probing
  # every cell is exhaustive search, so Recall@50 is exactly 1.
  ivf = report["approximate"]["ivf"]
  nlist = ivf["params"]["nlist"]
  recalls = [row["recall"] for row in ivf["sweep"]]
  assert np.all(np.diff(recalls) >= -1e-12)
  assert ivf["sweep"][-1]["nprobe"] == nlist and recalls[-1] == 1.0
  assert 0.0 < recalls[0] < 1.0
  hnsw = report["approximate"]["hnsw"]
  assert all(0.0 < row["recall"] <= 1.0 for row in hnsw["sweep"])
  operating = ivf["operating_point"]
  assert operating["recall"] >= 0.95
  assert operating["speedup"] == max(r["speedup"] for r in ivf["sweep"]
                                     if r["recall"] >= 0.95)


def test_recall_at_k_hand_worked():
  benchmark = load_benchmark("retrieval_benchmark")
  # Query 0 finds 2 of its 4 true neighbours, query 1 all 4: (0.5 + 1) / 2.
  approx = np.array([[1, 2, 9, 8], [4, 3, 2, 1]])
  exact = np.array([[1, 2, 3, 4], [1, 2, 3, 4]])
  assert benchmark.recall_at_k(approx, exact) == 0.75
