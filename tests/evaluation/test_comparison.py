"""Seed statistics of comparisons against hand-worked values and closed forms."""

import math

import numpy as np
import pytest

from dcg_tf.evaluation import comparison


def test_summarize_hand_worked():
  # mean(0.1, 0.2, 0.3) = 0.2; sample variance = (0.01 + 0 + 0.01) / 2 = 0.01.
  s = comparison.summarize([0.1, 0.2, 0.3])
  assert s["mean"] == pytest.approx(0.2) and s["std"] == pytest.approx(0.1)
  assert s["n"] == 3
  assert comparison.summarize([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
  with pytest.raises(ValueError):
    comparison.summarize([])


def test_two_std_rule():
  a = {"mean": 0.30, "std": 0.01, "n": 3}
  assert comparison.exceeds_two_std(a, {"mean": 0.27, "std": 0.005, "n": 3})  # 0.03 > 0.02
  assert not comparison.exceeds_two_std(a, {"mean": 0.285, "std": 0.005, "n": 3})  # 0.015
  assert not comparison.exceeds_two_std(a, {"mean": 0.1, "std": 0.0, "n": 1})  # one seed


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 10.0])
def test_student_t_tail_matches_closed_forms(t):
  # dof = 1 is the Cauchy distribution: P(T > t) = 1/2 - atan(t) / pi.
  assert comparison.student_t_sf(t, 1.0) == pytest.approx(0.5 - math.atan(t) / math.pi,
                                                          abs=1e-12)
  # dof = 2: P(T > t) = (1 - t / sqrt(2 + t^2)) / 2.
  assert comparison.student_t_sf(t, 2.0) == pytest.approx(
      0.5 * (1 - t / math.sqrt(2 + t * t)), abs=1e-12)


def test_student_t_tail_against_monte_carlo_at_four_dof():
  rng = np.random.default_rng(0)
  z = rng.standard_normal(400_000)
  chi2 = rng.chisquare(4, 400_000)
  samples = z / np.sqrt(chi2 / 4)
  assert comparison.student_t_sf(2.132, 4.0) == pytest.approx(
      np.mean(samples > 2.132), abs=2e-3)   # tables: 0.05 at t = 2.132


def test_welch_t_test_hand_worked():
  # a = [1, 2, 3], b = [4, 5, 6]: means 2 and 5, variances 1 and 1, so
  # t = -3 / sqrt(1/3 + 1/3) = -3.674; dof = (2/3)^2 / (2 * (1/3)^2 / 2) = 4.
  t, p, dof = comparison.welch_t_test([1, 2, 3], [4, 5, 6])
  assert t == pytest.approx(-3 / math.sqrt(2 / 3)) and dof == pytest.approx(4.0)
  assert p == pytest.approx(2 * comparison.student_t_sf(3 / math.sqrt(2 / 3), 4.0))
  assert 0.02 < p < 0.025    # t-table: two-sided 0.02 at 3.747, 0.05 at 2.776
  with pytest.raises(ValueError):
    comparison.welch_t_test([1.0], [2.0, 3.0])


def test_format_summary():
  assert comparison.format_summary({"mean": 0.06123, "std": 0.00111, "n": 3}) == \
      "0.0612 ± 0.0011 (3)"
  assert comparison.format_summary({"mean": 0.06123, "std": 0.0, "n": 1}) == "0.0612 (1)"
