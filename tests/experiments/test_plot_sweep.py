"""experiments/plot_sweep.py on hand-built record files: the plotted values."""

import json
import os

from dcg_tf.evaluation import comparison
from tests.binaries import run_module
from tests.evaluation import sweep_records


def _write(results_dir, records):
  for r in records:
    folder = os.path.join(results_dir, r["dataset"], r["model"])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed%d.json" % r["seed"]), "w") as f:
      json.dump(r, f)


def test_load_records_reads_every_seed_file(tmp_path):
  records = sweep_records.records()
  _write(str(tmp_path), records)
  (tmp_path / "d" / "notes.json").write_text("{}")      # not a run record
  loaded = comparison.load_records(str(tmp_path))
  key = lambda r: (r["dataset"], r["model"], r["seed"])
  assert sorted(map(key, loaded)) == sorted(map(key, records))


def test_plot_sweep_writes_the_series_and_a_png(tmp_path):
  results_dir = str(tmp_path / "records")
  _write(results_dir, sweep_records.records())
  output, png = str(tmp_path / "fig6.json"), str(tmp_path / "fig6.png")
  stdout = run_module("experiments.plot_sweep", "--results_dir=" + results_dir,
                      "--dataset=d", "--param=ssl_weight",
                      "--models=ssl_cfm,spread_out", "--baseline=ssl_baseline",
                      "--metric=Recall@50", "--output=" + output, "--png=" + png)
  with open(output) as f:
    report = json.load(f)
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  cfm = report["series"]["ssl_cfm"]
  # The values of tests/evaluation/sweep_records.py: 0.20; (0.30 + 0.32) / 2;
  # (0.34 + 0.38) / 2; spread-out 0.25, 0.27; baseline mean(0.1, 0.2, 0.3).
  assert [p["x"] for p in cfm] == [0.1, 0.3, 1.0]
  assert [round(p["mean"], 6) for p in cfm] == [0.2, 0.31, 0.36]
  assert [round(p["mean"], 6) for p in report["series"]["spread_out"]] == [0.25, 0.27]
  assert round(report["baseline"]["mean"], 6) == 0.2
  assert report["baseline"]["model"] == "ssl_baseline"
  assert "| ssl_cfm | 1 | 0.3600 ± 0.0283 (2) |" in stdout
