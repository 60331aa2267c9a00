"""Debiasing analyses of CLRec (Zhou et al., KDD'21), Figures 3/4 and Table 10.

- Degree-bucket impression histogram (Figures 3 and 4): items are bucketed by
  the log2 of their training degree (number of training interactions); for each
  model, count how many times the items of each bucket appear in the users'
  top-K lists; the training data's own histogram counts each training
  interaction once. Sampled softmax "tends to faithfully fit the training
  data's distribution, while CLRec tends to explore the previously
  under-explored items" (section 4.3).
- Aggregate diversity (Table 10): one sequence sampled from each training user
  is the input, each model retrieves ten items per sequence, and the number of
  distinct retrieved items is reported, beside the distinct ground-truth next
  clicks of the same sequences.

Buckets: bucket 0 holds items of degree 0; bucket b >= 1 holds degrees in
[2^(b-1), 2^b), i.e. b = 1 + floor(log2(degree)).
"""

import numpy as np

from dcg_tf.evaluation import metrics
from dcg_tf.evaluation import topk
from dcg_tf.evaluation.topk import TopKSearcher


def degree_buckets(item_count):
  """int [N+1]: the degree bucket of every item (row 0, padding, gets -1)."""
  item_count = np.asarray(item_count, np.int64)
  if (item_count < 0).any():
    raise ValueError("item_count has a negative entry at item %d"
                     % np.argmax(item_count < 0))
  # frexp: count = m * 2^e with m in [0.5, 1), so e = 1 + floor(log2(count))
  # exactly (integer bit length), and e = 0 for count 0.
  buckets = np.frexp(item_count.astype(np.float64))[1].astype(np.int64)
  buckets[0] = -1
  return buckets


def bucket_labels(num_buckets):
  """Degree ranges of buckets 0..num_buckets-1, e.g. "0", "1", "2-3", "4-7"."""
  labels = ["0"]
  for b in range(1, num_buckets):
    lo, hi = 2 ** (b - 1), 2 ** b - 1
    labels.append("%d" % lo if lo == hi else "%d-%d" % (lo, hi))
  return labels


def num_buckets(item_count):
  return int(degree_buckets(item_count).max()) + 1


def impression_histogram(ranked, item_count, k, length=None):
  """int [B]: recommendations of each degree bucket in the users' top k.

  Args:
    ranked: int [U, L] ranked items (item 0 = no item, not counted).
    item_count: int [N+1] training degrees.
    k: top-k cut-off (10 in CLRec's analyses).
    length: number of buckets (default: enough for `item_count`).
  """
  buckets = degree_buckets(item_count)
  top = np.asarray(ranked)[:, :k]
  top = top[top > 0]
  return np.bincount(buckets[top], minlength=length or num_buckets(item_count))


def training_histogram(item_count, length=None):
  """int [B]: training interactions per degree bucket (the data's distribution)."""
  item_count = np.asarray(item_count, np.int64)
  buckets = degree_buckets(item_count)
  return np.bincount(buckets[1:], weights=item_count[1:],
                     minlength=length or num_buckets(item_count)).astype(np.int64)


def plot_degree_histogram(histograms, path, labels=None, normalize=True,
                          title="Impressions per degree bucket"):
  """Saves a grouped bar chart of degree-bucket histograms as a PNG.

  Args:
    histograms: dict name -> counts [B] (e.g. {"training data": ...,
      "sampled softmax": ..., "CLRec": ...}).
    path: output PNG path.
    labels: bucket labels (default `bucket_labels`).
    normalize: plot each histogram as a fraction of its total, so the training
      data and top-10 lists share one axis.
    title: plot title.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  length = max(len(h) for h in histograms.values())
  labels = labels or bucket_labels(length)
  width = 0.8 / len(histograms)
  fig, ax = plt.subplots(figsize=(max(6, 0.6 * length), 4))
  for i, (name, counts) in enumerate(histograms.items()):
    counts = np.zeros(length) + np.pad(np.asarray(counts, np.float64),
                                       (0, length - len(counts)))
    if normalize and counts.sum() > 0:
      counts = counts / counts.sum()
    ax.bar(np.arange(length) + (i - (len(histograms) - 1) / 2) * width, counts,
           width, label=name)
  ax.set_xticks(np.arange(length))
  ax.set_xticklabels(labels, rotation=45)
  ax.set_xlabel("training degree of the item (log2 buckets)")
  ax.set_ylabel("fraction of impressions" if normalize else "impressions")
  ax.set_title(title)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def training_user_sequences(data, max_len=50, seed=0, batch_size=1024):
  """One sequence per training user (a random cut, `pipeline.train_dataset`).

  Users with a single training event have no (history, next click) pair and
  are left out, as the training data has no sequence for them either.
  """
  from dcg_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.train_dataset(data, batch_size=batch_size, max_len=max_len,
                                seed=seed, epoch=0, shuffle=False,
                                drop_remainder=False)


def retrieve_for_training_users(user_tower_fn, item_embeddings, data, k=10,
                                max_len=50, seed=0, batch_size=1024):
  """Top-k of each training user's sampled sequence: (ranked [U, k], next clicks [U]).

  The same top-K code path as evaluation (`TopKSearcher.search`); nothing is
  excluded, as in CLRec's Table 10.
  """
  searcher = (item_embeddings if isinstance(item_embeddings, TopKSearcher)
              else TopKSearcher(item_embeddings))
  ranked, targets = [], []
  for batch in training_user_sequences(data, max_len, seed, batch_size):
    vectors, mask = topk.as_queries(user_tower_fn(batch))
    ranked.append(searcher.search(vectors, k, query_mask=mask)[1])
    targets.append(np.asarray(batch["target"]))
  return np.concatenate(ranked), np.concatenate(targets)


def debias_report(models, data, k=10, max_len=50, seed=0, png_path=None):
  """Table 10 and Figure 4 for several models on one dataset.

  Args:
    models: dict name -> (user_tower_fn, item_embeddings [N, D]).
    data: a `ProcessedDataset`.
    k: items retrieved per sequence (10 in the paper).
    max_len: history length.
    seed: seed of the sampled sequences (the same for every model).
    png_path: where to save the histogram PNG (optional).

  Returns:
    dict: "num_sequences", "aggregate_diversity" {name: int, "ground truth": int},
    "histograms" {name: list, "training data": list}, "bucket_labels".
  """
  length = num_buckets(data.item_count)
  diversity, histograms = {}, {"training data": training_histogram(data.item_count)}
  next_clicks = None
  for name, (tower_fn, item_embeddings) in models.items():
    ranked, next_clicks = retrieve_for_training_users(
        tower_fn, item_embeddings, data, k=k, max_len=max_len, seed=seed)
    diversity[name] = metrics.coverage_at_k(ranked, k)
    histograms[name] = impression_histogram(ranked, data.item_count, k, length)
  if next_clicks is not None:
    diversity["ground truth"] = int(np.unique(next_clicks).size)
  if png_path:
    plot_degree_histogram(histograms, png_path)
  return {"num_sequences": 0 if next_clicks is None else int(next_clicks.size),
          "aggregate_diversity": diversity,
          "histograms": {n: np.asarray(h).tolist() for n, h in histograms.items()},
          "bucket_labels": bucket_labels(length)}
