"""Each benchmark's `main(["--quick"])` runs end to end on tiny sizes (CI smoke test)."""

import json

import numpy as np
import pytest

from tests.benchmarks.loading import is_digest, load_benchmark


def _positive_numbers(mapping, keys):
  for key in keys:
    assert isinstance(mapping[key], float) and mapping[key] > 0, key


def test_optimizer_benchmark_quick(tmp_path):
  out = tmp_path / "optimizer.json"
  summary = load_benchmark("optimizer_benchmark").main(["--quick", "--output", str(out)])
  assert json.loads(out.read_text()) == summary       # the JSON is the summary
  assert set(summary) == {"num_rows", "dim", "batch_size", "results",
                          "speedup", "speedup_cpu"}
  adam, lazy = summary["results"]
  assert (adam["optimizer"], lazy["optimizer"]) == ("adam", "lazy_adam")
  for r in (adam, lazy):
    assert set(r) == {"optimizer", "steps", "seconds", "steps_per_second",
                      "cpu_seconds", "steps_per_cpu_second", "data_digest"}
    _positive_numbers(r, ("seconds", "steps_per_second", "cpu_seconds",
                          "steps_per_cpu_second"))
  # A fair race: the same number of updates (each optimizer's own iteration
  # count, --quick: 3) on the same batches, in the same order.
  assert adam["steps"] == lazy["steps"] == 3
  assert is_digest(adam["data_digest"])
  assert adam["data_digest"] == lazy["data_digest"]
  _positive_numbers(summary, ("speedup", "speedup_cpu"))


def test_step_time_benchmark_quick():
  summary = load_benchmark("step_time_benchmark").main(["--quick"])
  assert summary["sizes"] == {"small": 1_000, "large": 20_000}
  for name in ("small", "large"):
    assert len(summary["step_seconds"][name]) == 2
    for field in ("median_step_seconds", "median_step_cpu_seconds",
                  "seconds_per_distinct_row", "cpu_seconds_per_distinct_row"):
      assert summary[field][name] > 0, field
  # The controlled comparison: both catalogs saw the same distinct rows per batch.
  rows = summary["unique_rows_per_batch"]
  assert rows["small"] == rows["large"] and len(rows["small"]) == 4
  assert summary["ratio"] > 0 and summary["ratio_cpu"] > 0


def test_step_time_benchmark_batches_differ_only_by_relabelling():
  module = load_benchmark("step_time_benchmark")
  args = module.parse_args(["--quick"])
  small = module.make_batches(1_000, args)
  large = module.relabel(small, 20_000, seed=0)
  for a, b in zip(small, large):
    ids_a = np.concatenate([a["history"].numpy().ravel(), a["target"].numpy()])
    ids_b = np.concatenate([b["history"].numpy().ravel(), b["target"].numpy()])
    assert ids_b.max() <= 20_000 and ids_b.max() > 1_000   # spread over the catalog
    np.testing.assert_array_equal(ids_a == 0, ids_b == 0)  # padding stays padding
    # A one-to-one relabelling: equal ids stay equal, different ones different.
    np.testing.assert_array_equal(ids_a[:, None] == ids_a[None, :],
                                  ids_b[:, None] == ids_b[None, :])
    np.testing.assert_array_equal(a["history_mask"].numpy(), b["history_mask"].numpy())


def test_momentum_benchmark_quick(tmp_path):
  out = tmp_path / "momentum.json"
  summary = load_benchmark("momentum_benchmark").main(["--quick", "--output", str(out)])
  assert summary["sizes"] == {"small": 1_000, "large": 20_000}
  for name in ("small", "large"):
    assert len(summary["update_seconds"][name]) == 2
    assert summary["median_update_seconds"][name] > 0
    assert summary["median_update_cpu_seconds"][name] > 0
  rows = summary["distinct_rows_per_batch"]
  assert rows["small"] == rows["large"] > 0
  assert summary["ratio"] > 0 and summary["ratio_cpu"] > 0
  assert out.read_text().startswith("{")


def test_tfrs_comparison_benchmark_quick():
  summary = load_benchmark("tfrs_comparison_benchmark").main(["--quick"])
  assert set(summary) == {
      "num_items", "batch_size", "history_len", "dim", "round_seconds",
      "round_cpu_seconds", "examples_per_second", "examples_per_cpu_second",
      "ratio", "ratio_cpu", "steps", "data_digest"}
  for key in ("round_seconds", "round_cpu_seconds", "examples_per_second",
              "examples_per_cpu_second", "steps"):
    assert set(summary[key]) == {"dcg_tf", "tfrs"}, key
  for name in ("dcg_tf", "tfrs"):
    assert len(summary["round_seconds"][name]) == 1           # --quick: 1 round
    _positive_numbers(summary["examples_per_second"], (name,))
  _positive_numbers(summary, ("ratio", "ratio_cpu"))
  # Both made the same updates (warm-up + 1 round, 3 steps each, --quick),
  # fitting the one dataset whose digest is reported.
  assert summary["steps"] == {"dcg_tf": 6, "tfrs": 6}
  assert is_digest(summary["data_digest"])


@pytest.mark.slow
def test_reproducibility_benchmark_quick(tmp_path):
  out = tmp_path / "repro.json"
  summary = load_benchmark("reproducibility_benchmark").main(["--quick", "--output", str(out)])
  result = summary["results"]["two_tower"]
  # two_tower trains bitwise-reproducibly (measured; docs/results/clrec.md).
  assert result["bitwise_equal"] and result["differing_variables"] == 0
  assert result["float_variables"] > 0
  assert out.read_text().startswith("{")


@pytest.mark.slow
def test_reproducibility_benchmark_against_a_commit(tmp_path):
  # The first run uses the code of a commit checked out with git worktree; the
  # same commit as the tree (HEAD, when the tree has no change in what training
  # computes) must give the same weights.
  summary = load_benchmark("reproducibility_benchmark").main(
      ["--quick", "--base_commit=HEAD", "--tolerance=1e-6"])
  result = summary["results"]["two_tower"]
  assert summary["within_tolerance"] and result["max_abs_difference"] <= 1e-6
  assert result["only_in_first"] == [] and result["only_in_second"] == []


def test_data_digest_tells_data_apart():
  common = load_benchmark("common")
  batches = [{"ids": np.array([1, 2, 3]), "mask": np.array([True, False, True])},
             (np.zeros([2, 2], np.float32), np.array([7]))]
  same = [{"mask": np.array([True, False, True]), "ids": np.array([1, 2, 3])},
          (np.zeros([2, 2], np.float32), np.array([7]))]
  assert common.data_digest(batches) == common.data_digest(same)  # key order
  changed = [dict(batches[0], ids=np.array([1, 2, 4])), batches[1]]
  reordered = [batches[1], batches[0]]
  reshaped = [batches[0], (np.zeros([4], np.float32), np.array([7]))]
  digests = {common.data_digest(b) for b in (batches, changed, reordered, reshaped)}
  assert len(digests) == 4
