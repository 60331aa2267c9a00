"""Comparisons over seeds: mean and spread per model, and whether gaps are real.

Every table of docs/results that compares models is built from run records
(one dict per (dataset, model, seed) with a "metrics" dict) by these
functions, so each reports the same statistics the same way:

- `load_records`: the run records under a results folder.
- `summarize`: mean, sample standard deviation (ddof=1; 0 for one seed) and
  the number of seeds of each metric.
- `exceeds_two_std`: a difference is called real when |mean_a - mean_b| is
  larger than twice the larger of the two standard deviations (the rule the
  results pages state); with one seed on either side nothing is called real.
- `welch_t_test`: Welch's two-sample t statistic and its two-sided p-value
  (Student t distribution, Welch-Satterthwaite degrees of freedom), for the
  papers' significance tests.
"""

import json
import math
import os

import numpy as np


def load_records(results_dir):
  """Every run record under `results_dir` (`<dataset>/<model>/seed<k>.json`).

  The files `experiments.leaderboard` writes, one per finished run; walked in
  sorted order, so the list is the same on every machine.
  """
  records = []
  for root, folders, files in os.walk(results_dir):
    folders.sort()
    for name in sorted(files):
      if name.startswith("seed") and name.endswith(".json"):
        with open(os.path.join(root, name)) as f:
          records.append(json.load(f))
  return records


def group_records(records):
  """{(dataset, model): [records sorted by seed]}."""
  groups = {}
  for record in records:
    groups.setdefault((record["dataset"], record["model"]), []).append(record)
  return {key: sorted(value, key=lambda r: r["seed"]) for key, value in groups.items()}


def summarize(values):
  """{"mean", "std", "n"} of a list of floats (std with ddof=1; 0 for n = 1)."""
  values = np.asarray(values, np.float64)
  if values.size == 0:
    raise ValueError("summarize needs at least one value")
  std = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return {"mean": float(values.mean()), "std": std, "n": int(values.size)}


def exceeds_two_std(a, b):
  """Whether summaries `a` and `b` differ by more than twice the larger std."""
  if a["n"] < 2 or b["n"] < 2:
    return False
  return abs(a["mean"] - b["mean"]) > 2.0 * max(a["std"], b["std"])


def welch_t_test(a, b):
  """Welch's t-test of two samples: (t, two-sided p, degrees of freedom)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.size < 2 or b.size < 2:
    raise ValueError("the t-test needs at least two values per sample")
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  if va + vb == 0.0:
    return (math.inf if a.mean() != b.mean() else 0.0,
            0.0 if a.mean() != b.mean() else 1.0, float(a.size + b.size - 2))
  t = (a.mean() - b.mean()) / math.sqrt(va + vb)
  dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  return float(t), float(2.0 * student_t_sf(abs(t), dof)), float(dof)


def student_t_sf(t, dof):
  """P(T > t) for Student's t with `dof` degrees of freedom (t >= 0).

  Through the regularised incomplete beta function:
  P(T > t) = I_x(dof/2, 1/2) / 2 with x = dof / (dof + t^2).
  """
  x = dof / (dof + t * t)
  return 0.5 * _incomplete_beta(dof / 2.0, 0.5, x)


def _incomplete_beta(a, b, x):
  """Regularised incomplete beta I_x(a, b) by Lentz's continued fraction."""
  if x <= 0.0:
    return 0.0
  if x >= 1.0:
    return 1.0
  log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
               + a * math.log(x) + b * math.log1p(-x))
  if x > (a + 1.0) / (a + b + 2.0):
    return 1.0 - _incomplete_beta(b, a, 1.0 - x)
  tiny = 1e-300
  c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
  d = 1.0 / (d if abs(d) > tiny else tiny)
  h = d
  for m in range(1, 300):
    for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                      -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
      d = 1.0 + numerator * d
      d = 1.0 / (d if abs(d) > tiny else tiny)
      c = 1.0 + numerator / c
      c = c if abs(c) > tiny else tiny
      h *= d * c
    if abs(d * c - 1.0) < 1e-15:
      break
  return math.exp(log_front) * h / a


def format_summary(summary, digits=4):
  """"0.0612 ± 0.0011 (3)"; a single seed shows no spread: "0.0612 (1)"."""
  if summary["n"] == 1:
    return "%.*f (1)" % (digits, summary["mean"])
  return "%.*f ± %.*f (%d)" % (digits, summary["mean"], digits, summary["std"],
                               summary["n"])
