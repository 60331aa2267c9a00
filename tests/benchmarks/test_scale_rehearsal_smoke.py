"""Smoke run of benchmarks/scale_rehearsal.py --quick: every stage, the schema,
the counts and the retrieved items (behaviour, not speed).

Six binaries start TensorFlow one after the other: about 1 minute on an idle
2-core machine, several under load, hence slow.
"""

import json
import math

import pytest

from tests.benchmarks.loading import load_benchmark


@pytest.mark.slow
def test_quick_rehearsal_runs_every_stage(tmp_path):
  rehearsal = load_benchmark("scale_rehearsal")
  work, output = tmp_path / "work", tmp_path / "report.json"
  summary = rehearsal.main(["--quick", "--workdir", str(work), "--keep",
                            "--output", str(output)])
  assert json.loads(output.read_text()) == summary
  assert set(summary) == {"params", "machine", "stages", "counts", "train",
                          "sizes_bytes", "retrieval", "total_wall_s"}
  assert list(summary["stages"]) == ["generate", "preprocess", "train", "export",
                                     "build_index", "retrieve"]
  for stage in summary["stages"].values():
    assert set(stage) == {"command", "wall_s", "cpu_s", "peak_rss_mb",
                          "peak_tree_rss_mb", "load_avg_start", "load_avg_end"}
    # Every stage is a Python process that imports TensorFlow: well over 100 MB.
    assert stage["wall_s"] > 0 and stage["cpu_s"] > 0
    assert stage["peak_rss_mb"] > 100
  assert all(size > 0 for size in summary["sizes_bytes"].values())

  # The generator made exactly the --quick counts (600 users, 400 items, 6,000
  # interactions) and preprocessing kept them all (no k-core).
  manifest = json.loads((work / "data" / "manifest.json").read_text())
  counts = manifest["counts"]
  assert (counts["users"], counts["items"], counts["interactions"]) == (600, 400, 6000)
  assert summary["counts"]["generated"] == {"users": 600, "items": 400,
                                            "interactions": 6000}

  # One epoch, one cut per user, batch 128, the partial batch dropped:
  # floor(600 / 128) = 4 steps.
  assert summary["train"]["steps"] == 4 and summary["train"]["examples"] == 512

  # The index: IVF-PQ in 2 shards covering the 400 exported items.
  index = json.loads((work / "index" / "index.json").read_text())
  assert index["kind"] == "ivfpq" and index["num_shards"] == 2

  # Each sampled history is one user's whole history in the raw reviews, and
  # its answer is 10 distinct catalog items outside the history.
  histories = {}
  with open(work / "raw" / "reviews_Synthetic.json") as f:
    for line in f:
      review = json.loads(line)
      histories.setdefault(review["reviewerID"], []).append(review["asin"])
  whole = {tuple(items) for items in histories.values()}
  sampled = [line.split(",") for line in
             (work / "histories.txt").read_text().splitlines()]
  assert 20 <= len(sampled) <= 40           # 40 offsets, repeats dropped
  assert all(tuple(h) in whole for h in sampled)
  catalog = set((work / "export" / "item_ids.txt").read_text().split())
  assert len(catalog) == 400
  retrieved = json.loads((work / "retrieved.json").read_text())
  assert len(retrieved) == len(sampled)
  for row, history in zip(retrieved, sampled):
    assert len(row["items"]) == 10 and len(set(row["items"])) == 10
    assert set(row["items"]) <= catalog and not set(row["items"]) & set(history)
    assert all(math.isfinite(s) for s in row["scores"])
    assert row["scores"] == sorted(row["scores"], reverse=True)
  assert summary["retrieval"]["users_with_k_distinct_items"] == len(sampled)
