"""dcg_tf.evaluation.sweep on hand-built records (tests/evaluation/sweep_records.py)."""

import pytest

from dcg_tf.evaluation import sweep
from tests.evaluation import sweep_records


def _points(points):
  return [(p["x"], round(p["mean"], 6), round(p["std"], 6), p["n"])
          for p in points]


def test_alpha_series_keeps_only_records_that_differ_in_alpha():
  points = sweep.series(sweep_records.records(), "d", "ssl_cfm", "ssl_weight",
                        "Recall@50")
  # alpha 0.1: 0.20 (one seed, std 0);
  # alpha 0.3: mean(0.30, 0.32) = 0.31, std = sqrt(2 * 0.01^2 / 1) = 0.014142;
  # alpha 1:   mean(0.34, 0.38) = 0.36, std = sqrt(2 * 0.02^2 / 1) = 0.028284.
  # Not points: alpha3 (10 epochs), dr0.5 (dr differs), training_items, "e".
  assert _points(points) == [(0.1, 0.2, 0.0, 1), (0.3, 0.31, 0.014142, 2),
                             (1.0, 0.36, 0.028284, 2)]
  assert points[1]["seeds"] == [0, 1]
  assert points[2]["models"] == ["ssl_cfm_alpha1"]


def test_dropout_series_and_the_spread_out_family():
  records = sweep_records.records()
  assert _points(sweep.series(records, "d", "ssl_cfm", "dropout_rate",
                              "Recall@50")) == [(0.3, 0.31, 0.014142, 2),
                                                (0.5, 0.9, 0.0, 1)]
  assert _points(sweep.series(records, "d", "spread_out", "ssl_weight",
                              "Recall@50")) == [(0.3, 0.25, 0.0, 1),
                                                (1.0, 0.27, 0.0, 1)]


def test_validation_metric_and_baseline():
  records = sweep_records.records()
  # ssl_cfm's validation Recall@50: seed 0 0.30, seed 1 0.5 -> mean 0.4.
  points = sweep.series(records, "d", "ssl_cfm", "ssl_weight", "valid_Recall@50")
  assert points[1]["x"] == 0.3 and points[1]["mean"] == pytest.approx(0.4)
  # Baseline: mean(0.1, 0.2, 0.3) = 0.2, std = sqrt((0.01 + 0 + 0.01) / 2) = 0.1.
  base = sweep.baseline(records, "d", "ssl_baseline", "Recall@50")
  assert base["mean"] == pytest.approx(0.2) and base["n"] == 3
  assert base["std"] == pytest.approx(0.1)


def test_errors_name_what_is_missing():
  records = sweep_records.records()
  with pytest.raises(ValueError, match="no record of model 'ssl_rfm'"):
    sweep.series(records, "d", "ssl_rfm", "ssl_weight", "Recall@50")
  with pytest.raises(ValueError, match="no metric 'MAP@50'"):
    sweep.series(records, "d", "ssl_cfm", "ssl_weight", "MAP@50")
  with pytest.raises(ValueError, match="baseline model 'nope'"):
    sweep.baseline(records, "d", "nope", "Recall@50")
