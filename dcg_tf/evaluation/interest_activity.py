"""AINPU: how many interests a multi-interest tower gives, overall and by activity.

PCL-AISL (Li et al., CIKM'22), section 3.3: AINPU, the Average Interest
Number Per User, is the mean number of active interests K_u over the
evaluated users; the paper's claim is that AISL gives more interests to more
active users. For a multi-interest tower (`(vectors [U, K, D], mask [U, K])`,
`dcg_tf.towers.multi_interest`) K_u is the number of True slots of the mask.

Activity is the number of training events of the user (the `activity` of
`users.npz`, counted here from the training sequences so every processed
dataset has it). Buckets are log2 bins: bucket 0 holds the users with no
training event, bucket b >= 1 the users with 2^(b-1) <= activity < 2^b
(1, 2-3, 4-7, 8-15, ...); empty buckets are left out.
"""

import numpy as np


def training_activity(data):
  """Training events per user of a `ProcessedDataset`: int64 [U+1] (row 0 = padding)."""
  seqs = data.train_sequences()
  activity = np.zeros(data.num_users + 1, np.int64)
  activity[seqs.users] = np.diff(seqs.offsets)                     # one row per user
  return activity


def activity_bucket(activity):
  """Log2 bucket of each activity count: 0 for 0, else floor(log2(a)) + 1."""
  activity = np.asarray(activity, np.int64)
  bucket = np.zeros(activity.shape, np.int64)
  positive = activity > 0
  # floor(log2(a)) + 1 is the bit length of a (exact on integers, no floats).
  bucket[positive] = np.frexp(activity[positive].astype(np.float64))[1]
  return bucket


def interest_activity_report(mask, activity):
  """AINPU and the mean K_u per activity bucket.

  Args:
    mask: bool [U, K], True on the active interests of each evaluated user.
    activity: int [U], training events of each evaluated user (same rows).

  Returns:
    {"AINPU": mean K_u (float),
     "AINPU_by_activity": [{"bucket": b, "activity_min": lo, "activity_max": hi
       (inclusive), "num_users": n, "mean_interests": mean K_u}, ...] in
       increasing activity, non-empty buckets only}.
  """
  num = np.asarray(mask, bool).sum(axis=1)                         # K_u [U]
  activity = np.asarray(activity, np.int64)
  if activity.shape != num.shape:
    raise ValueError("interest_activity_report: %d activity counts for %d mask "
                     "rows" % (activity.size, num.size))
  buckets = activity_bucket(activity)
  rows = []
  for b in np.unique(buckets):
    users = buckets == b
    lo, hi = (0, 0) if b == 0 else (2 ** (b - 1), 2 ** b - 1)
    rows.append({"bucket": int(b), "activity_min": int(lo),
                 "activity_max": int(hi), "num_users": int(users.sum()),
                 "mean_interests": float(num[users].mean())})
  return {"AINPU": float(num.mean()) if num.size else float("nan"),
          "AINPU_by_activity": rows}


def plot_interest_activity(reports, path, max_interests=None,
                           title="Mean number of active interests by user activity"):
  """Saves mean K_u per activity bucket as a PNG line plot, one line per model.

  Args:
    reports: dict name -> `interest_activity_report(...)`.
    path: output PNG path.
    max_interests: K, drawn as a dashed line when given.
    title: plot title.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(7, 4))
  labels = {}
  for name, report in reports.items():
    rows = report["AINPU_by_activity"]
    x = [r["bucket"] for r in rows]
    ax.plot(x, [r["mean_interests"] for r in rows], marker="o",
            label="%s (AINPU %.2f)" % (name, report["AINPU"]))
    for r in rows:
      labels[r["bucket"]] = ("%d" % r["activity_min"] if r["activity_min"] ==
                             r["activity_max"] else
                             "%d-%d" % (r["activity_min"], r["activity_max"]))
  if max_interests:
    ax.axhline(max_interests, linestyle="--", color="gray", label="K")
  ticks = sorted(labels)
  ax.set_xticks(ticks)
  ax.set_xticklabels([labels[t] for t in ticks], rotation=45)
  ax.set_xlabel("training events of the user (log2 buckets)")
  ax.set_ylabel("mean K_u (active interests)")
  ax.set_ylim(bottom=0)
  ax.set_title(title)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
