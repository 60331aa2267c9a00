"""Smoke run of benchmarks/index_benchmark.py --quick (CI): schema and sanity."""

import json

import numpy as np

from tests.benchmarks.loading import load_benchmark


def test_quick_run_reports_the_schema_and_exact_labels(tmp_path):
  benchmark = load_benchmark("index_benchmark")
  output = tmp_path / "report.json"
  workdir = tmp_path / "work"
  summary = benchmark.main(["--quick", "--output", str(output),
                            "--workdir", str(workdir)])
  assert json.loads(output.read_text()) == summary
  assert set(summary) == {
      "num_items", "dim", "num_clusters", "spread", "shards", "chunk_rows",
      "num_queries", "k", "search_threads", "build_threads", "faiss_version",
      "generate_seconds", "baseline_rss_mb", "contestants", "recall_at_k",
      "total_seconds"}
  contestants = summary["contestants"]
  assert list(contestants) == ["ivfpq_sharded", "flat_sharded"]
  for c in contestants.values():
    assert set(c) == {"kind", "shards", "params", "build_seconds",
                      "build_cpu_seconds", "index_bytes", "predicted_bytes",
                      "queries_digest", "search", "peak_rss_mb"}
    assert c["shards"] == 3 and c["index_bytes"] > 0 and c["peak_rss_mb"] > 0
  # Both contestants searched the same queries.
  digests = {c["queries_digest"] for c in contestants.values()}
  assert len(digests) == 1 and len(digests.pop()) == 64
  # nprobe sweep 4, 16 (the default nprobe min(64, 16) = 16 is in it).
  ivfpq = contestants["ivfpq_sharded"]
  assert [row["nprobe"] for row in ivfpq["search"]] == [4, 16]
  assert all(0.0 <= row["recall"] <= 1.0 for row in ivfpq["search"])
  assert summary["recall_at_k"] == ivfpq["search"][1]["recall"]

  # The kept files: flat sharded labels are NumPy's exact top 50, and the
  # reported recall is the overlap of the two label sets.
  items = np.load(workdir / "items.npy")                        # [20000, 16]
  queries = np.load(workdir / "queries.npy")                    # [100, 16]
  assert items.shape == (20_000, 16) and queries.shape == (100, 16)
  exact = np.load(workdir / "labels_flat_sharded.npy")
  approx = np.load(workdir / "labels_ivfpq_sharded.npy")
  reference = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :50]
  np.testing.assert_array_equal(exact, reference)
  overlap = np.mean([len(set(a) & set(e)) / 50 for a, e in zip(approx, reference)])
  assert abs(summary["recall_at_k"] - overlap) < 1e-12


def test_predicted_bytes_hand_worked():
  benchmark = load_benchmark("index_benchmark")
  # Flat, 10M x 64: 10^7 * 64 * 4 = 2.56e9 bytes.
  assert benchmark.predicted_bytes("flat", 10_000_000, 64, {}, 4) == 2_560_000_000
  # IVF-PQ, 10M x 64, m = 16 x 8 bits = 16-byte codes + 8-byte ids:
  # 10^7 * 24 = 2.4e8; per shard 12649 * 64 * 4 = 3,238,144 (centroids)
  # + 256 * 64 * 4 = 65,536 (codebooks) + 12649 * 8 = 101,192 (list sizes)
  # = 3,404,872; 4 shards = 13,619,488. Total 253,619,488.
  params = {"nlist": 12649, "pq_m": 16, "pq_nbits": 8}
  assert benchmark.predicted_bytes("ivfpq", 10_000_000, 64, params, 4) == 253_619_488
