"""A metric against one hyper-parameter, from leaderboard run records.

SSL-CFM (Yao et al., CIKM'21) Figures 6-7: Recall@50 against the SSL
multiplier alpha (CFM vs spread-out) and against the dropout rate dr (CFM vs
feature dropout), the baseline as a dashed line. The runs are
`experiments.leaderboard` records (`comparison.load_records`): one per
(dataset, model, seed), with the model's fully resolved `params`, where a
"model" is a flagfile name (`ssl_cfm_alpha1` is `--model=ssl_cfm
--param=ssl_weight=1`).

The series of a model family F (e.g. "ssl_cfm") over parameter p: the
records of the dataset whose model is F or starts with "F_", and whose
`params` and `trainer` settings equal those of F's own records except p and
the seed. So `ssl_cfm_dr0.5` (dr changed) is not a point of ssl_cfm's alpha
series, nor `ssl_cfm_training_items` of any series, and every point of a
series had the same training budget. The x value of a point is the record's
`params[p]`; its y is the mean, sample std (ddof=1) and count over seeds of
the metric (`comparison.summarize`): a test metric, or `valid_<metric>` for
the validation figure a value is chosen on.
"""

from dcg_tf.evaluation import comparison

_IGNORED = ("seed",)   # differs between the runs of one point


def _setting(record, param):
  """What must match within a series: params without p, trainer, seeds."""
  params = {k: v for k, v in record.get("params", {}).items()
            if k != param and k not in _IGNORED}
  trainer = {k: v for k, v in record.get("trainer", {}).items()
             if k not in _IGNORED}
  return params, trainer


def _metric(record, metric):
  """The record's test `metric`, or its validation figure for `valid_<m>`."""
  if metric.startswith("valid_"):
    value = record.get("valid", {}).get(metric[len("valid_"):])
  else:
    value = record.get("metrics", {}).get(metric)
  if value is None:
    raise ValueError("record %s/%s seed %s has no metric %r (it has %s)"
                     % (record.get("dataset"), record.get("model"),
                        record.get("seed"), metric,
                        sorted(record.get("metrics", {}))))
  return float(value)


def family_records(records, dataset, family):
  """The records of `dataset` whose model is `family` or `family_*`."""
  return [r for r in records if r["dataset"] == dataset
          and (r["model"] == family or r["model"].startswith(family + "_"))]


def series(records, dataset, family, param, metric):
  """Points of `family`'s sweep over `param`, sorted by x.

  Args:
    records: leaderboard run records (dicts with "dataset", "model", "seed",
      "metrics", "params", "trainer").
    dataset: the dataset name of the records to use.
    family: the base model name (a record with exactly this model must exist:
      its settings define the series).
    param: the swept parameter, a key of `params` (e.g. "ssl_weight").
    metric: a key of `metrics` (e.g. "Recall@50"), or "valid_<key>" for the
      best epoch's validation figure (the record's `valid`).

  Returns:
    list of {"x", "mean", "std", "n", "seeds", "models"}, one per distinct x.
  """
  candidates = family_records(records, dataset, family)
  base = [r for r in candidates if r["model"] == family]
  if not base:
    raise ValueError("no record of model %r on dataset %r (models there: %s): "
                     "its settings define the sweep"
                     % (family, dataset, sorted({r["model"] for r in records
                                                 if r["dataset"] == dataset})))
  if any(param not in r.get("params", {}) for r in candidates):
    raise ValueError("the records of %r on %r do not all record parameter %r"
                     % (family, dataset, param))
  reference = _setting(base[0], param)
  points = {}
  for record in candidates:
    if _setting(record, param) != reference:
      continue
    points.setdefault(record["params"][param], []).append(record)
  out = []
  for x in sorted(points):
    runs = sorted(points[x], key=lambda r: r["seed"])
    summary = comparison.summarize([_metric(r, metric) for r in runs])
    out.append(dict(summary, x=x, seeds=[r["seed"] for r in runs],
                    models=sorted({r["model"] for r in runs})))
  return out


def baseline(records, dataset, model, metric):
  """{"mean", "std", "n"} of `metric` over the seeds of `model` on `dataset`."""
  runs = [r for r in records if r["dataset"] == dataset and r["model"] == model]
  if not runs:
    raise ValueError("no record of baseline model %r on dataset %r" % (model,
                                                                      dataset))
  return comparison.summarize([_metric(r, metric) for r in runs])
