"""`evaluate`: a user tower and item embeddings scored under one protocol.

Issue 3 ("Evaluation") and issue 4 ("Metrics the paper's claims need"). The
steps are:
1. read the evaluated users of `split` (full histories and targets) from the
   processed dataset, and encode them with `user_tower_fn` on the batches of
   `dcg_tf.data.pipeline.eval_dataset`;
2. rank with `dcg_tf.evaluation.protocols` (`full`: the whole catalog through
   the shared `TopKSearcher`; `popular100` / `uniform100`: the targets against
   the saved negatives);
3. compute `dcg_tf.evaluation.metrics` on the ranked lists.

Any protocol can rank by `s(u, i) + beta * log p(i)` instead (`popularity_beta`,
`dcg_tf.evaluation.popularity_correction`); `evaluate_betas` scores a grid of
betas with the users encoded once.

Result keys: `HR@K`, `Recall@K`, `NDCG@K`, `MRR`, `coverage@K`, `popularity@K`,
`head_HR@K`, `head_Recall@K`, `tail_HR@K`, `tail_Recall@K`, `head_num_users`,
`tail_num_users`, `num_users`. The sampled protocols rank M + 100 candidates,
so only the K that fit (K <= 100 + M) are reported for them. A multi-interest
tower (one that returns a mask) also gets `AINPU`, the mean number of active
interests, and `AINPU_by_activity`, its mean per log2 bucket of training
events (`dcg_tf.evaluation.interest_activity`).
"""

import sys
import time

import numpy as np
import tensorflow as tf

from dcg_tf.data import records
from dcg_tf.evaluation import interest_activity
from dcg_tf.evaluation import metrics
from dcg_tf.evaluation import popularity_correction
from dcg_tf.evaluation import protocols
from dcg_tf.evaluation import topk
from dcg_tf.evaluation.topk import TopKSearcher
from dcg_tf.towers import multi_interest
from dcg_tf.towers.encode_catalog import encode_catalog

DEFAULT_KS = metrics.DEFAULT_KS
_CHUNK_USERS = 2048


class _Progress:
  """A one-line progress bar on stderr (no tqdm dependency)."""

  def __init__(self, label, total, enabled=True, interval=0.5):
    self.label, self.total, self.enabled, self.interval = label, total, enabled, interval
    self.start = time.time()
    self.last = 0.0
    self.done = 0

  def update(self, count):
    self.done += count
    now = time.time()
    if self.enabled and (now - self.last >= self.interval or self.done >= self.total):
      self.last = now
      width = 30
      filled = int(width * self.done / max(self.total, 1))
      sys.stderr.write("\r%s [%s%s] %d/%d users, %.1fs" % (
          self.label, "=" * filled, "." * (width - filled), self.done, self.total,
          now - self.start))
      if self.done >= self.total:
        sys.stderr.write("\n")
      sys.stderr.flush()


def model_user_tower_fn(model):
  """`model.user_tower` in inference mode as `evaluate`'s `user_tower_fn`.

  The tower runs inside one `tf.function` (traced once per batch shape), which
  is several times faster than calling the Keras layers eagerly per batch.
  """
  tower = tf.function(lambda batch: model.user_tower(batch, training=False),
                      reduce_retracing=True)

  def fn(batch):
    vectors, mask = multi_interest.split_output(model.user_tower, tower(batch))
    return np.asarray(vectors) if mask is None else (np.asarray(vectors),
                                                     np.asarray(mask))
  return fn


def evaluate_model(model, data, **kwargs):
  """`evaluate` for a `RetrievalModel`: its user tower against its item tower."""
  return evaluate(model_user_tower_fn(model),
                  encode_catalog(model.item_tower, data.num_items), data, **kwargs)


def read_eval_users(data, split):
  """Users, full histories and targets of `split`, in file order.

  Returns:
    (users int64 [U], histories: list of U int64 arrays, targets int64 [U, M]
    0-padded).
  """
  ds = tf.data.TFRecordDataset(data.eval_file(split)).batch(4096).map(
      records.parse_eval_examples)
  users, histories, targets = [], [], []
  for batch in ds:
    users.append(batch["user"].numpy())
    histories.extend(batch["history"].numpy())
    targets.extend(batch["target"].numpy())
  if not users:
    raise ValueError("%s holds no evaluated user" % data.eval_file(split))
  users = np.concatenate(users).astype(np.int64)
  width = max(len(t) for t in targets)
  padded = np.zeros((len(targets), width), np.int64)
  for row, t in enumerate(targets):
    padded[row, :len(t)] = t
  return users, [np.asarray(h, np.int64) for h in histories], padded


def earlier_items(data, users, histories, source=""):
  """Each user's items before the evaluated targets: training items + history."""
  offsets, train_items = data.train_items_per_user()
  if users.max() >= offsets.size - 1 or users.min() < 1:
    raise ValueError("%s: user index outside 1..%d" % (source or data.directory,
                                                      offsets.size - 2))
  return [np.union1d(train_items[offsets[u]:offsets[u + 1]], h)
          for u, h in zip(users, histories)]


def encode_users(user_tower_fn, data, split, users, max_len, batch_size, progress):
  """Runs `user_tower_fn` over `pipeline.eval_dataset`; rows follow `users`."""
  from dcg_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  row_of = {int(u): r for r, u in enumerate(users)}
  vectors, masks, rows = [], [], []
  bar = _Progress("encode %s" % split, len(users), progress)
  for batch in pipeline.eval_dataset(data, split, batch_size=batch_size,
                                     max_len=max_len):
    v, m = topk.as_queries(user_tower_fn(batch))
    vectors.append(v)
    masks.append(m)
    rows.append([row_of[int(u)] for u in np.asarray(batch["user"])])
    bar.update(v.shape[0])
  rows = np.concatenate(rows)
  if rows.size != len(users) or np.unique(rows).size != len(users):
    raise ValueError("eval_dataset(%r) yielded %d user rows for %d users in %s"
                     % (split, rows.size, len(users), data.eval_file(split)))
  order = np.argsort(rows)
  vectors = np.concatenate(vectors)[order]
  mask = None if masks[0] is None else np.concatenate(masks)[order]
  return vectors, mask


def evaluate_embeddings(user_vectors, item_embeddings, targets, item_count,
                        protocol="full", ks=DEFAULT_KS, exclude=None, negatives=None,
                        user_mask=None, index=None, popularity_reference=None,
                        progress=False, popularity_beta=0.0,
                        head_fraction=metrics.HEAD_FRACTION):
  """Ranks users and computes every metric; the array-level core of `evaluate`.

  Args:
    user_vectors: float32 [U, D] or [U, K, D].
    item_embeddings: float32 [N, D] (row r = item r + 1) or a `TopKSearcher`.
    targets: int [U, M] 0-padded targets.
    item_count: int [N+1] training counts (popularity, head/tail).
    protocol: "full", "popular100" or "uniform100".
    ks: cut-offs.
    exclude: for "full", list of U arrays of items not to rank (targets are kept).
    negatives: for sampled protocols, int [U, n].
    user_mask: bool [U, K] for multi-interest vectors.
    index: optional Faiss index over the item embeddings (default exact).
    popularity_reference: optional dict k -> reference E[p_data] (metrics).
    progress: print a progress bar to stderr.
    popularity_beta: rank by `s(u, i) + beta * log p(i)`, p the smoothed
      popularity of `item_count` (`dcg_tf.evaluation.popularity_correction`:
      one extra coordinate on items and users). 0 (default): no coordinate,
      today's ranking bit for bit.
    head_fraction: share of items (by training count) whose targets count as
      head in the head_/tail_ metrics (default 0.2; SSL-CFM's Table 4: 0.1).

  Returns:
    dict of metrics (see module docstring) with `num_users`.
  """
  protocols.check_protocol(protocol)
  if popularity_beta:
    if isinstance(item_embeddings, TopKSearcher) or index is not None:
      raise ValueError("popularity_beta=%r needs the item embeddings as an array "
                       "(the extra log p coordinate is appended to them), not a "
                       "TopKSearcher or a prebuilt index" % (popularity_beta,))
    item_embeddings = popularity_correction.with_popularity_column(
        item_embeddings, popularity_correction.log_popularity(item_count))  # [N, D+1]
    user_vectors = popularity_correction.with_beta_column(
        user_vectors, popularity_beta)                              # [U, (K,) D+1]
  searcher = (item_embeddings if isinstance(item_embeddings, TopKSearcher)
              else TopKSearcher(item_embeddings, index=index))
  if np.asarray(item_count).shape[0] != searcher.num_items + 1:
    raise ValueError("item_count has %d rows but there are %d item embeddings (+1 "
                     "padding row expected)" % (np.asarray(item_count).shape[0],
                                                searcher.num_items))
  targets = np.asarray(targets, np.int64)
  num_users = targets.shape[0]
  if user_vectors.shape[0] != num_users:
    raise ValueError("%d user vectors for %d users" % (user_vectors.shape[0], num_users))
  if protocol == "full":
    ks = tuple(k for k in ks if k <= searcher.num_items)
    depth = max(ks)
  else:
    if negatives is None or negatives.shape[0] != num_users:
      raise ValueError("protocol %s needs negatives [U=%d, n]" % (protocol, num_users))
    ks = tuple(k for k in ks if k <= targets.shape[1] + negatives.shape[1])
  bar = _Progress("rank (%s)" % protocol, num_users, progress)
  ranked = []
  for lo in range(0, num_users, _CHUNK_USERS):
    hi = min(lo + _CHUNK_USERS, num_users)
    mask = None if user_mask is None else user_mask[lo:hi]
    if protocol == "full":
      ranked.append(protocols.full_ranking(
          searcher, user_vectors[lo:hi], targets[lo:hi], depth,
          exclude=None if exclude is None else exclude[lo:hi], query_mask=mask))
    else:
      ranked.append(protocols.sampled_ranking(
          searcher, user_vectors[lo:hi], targets[lo:hi], negatives[lo:hi],
          query_mask=mask))
    bar.update(hi - lo)
  ranked = np.concatenate(ranked)
  results = metrics.ranking_metrics(ranked, targets, ks)
  results.update(metrics.beyond_accuracy_metrics(
      ranked, targets, item_count, ks, popularity_reference=popularity_reference,
      head_fraction=head_fraction))
  results["num_users"] = int(num_users)
  return results


def _evaluation_inputs(user_tower_fn, item_embeddings, data, split, protocol,
                       exclude_train, max_len, batch_size, candidates_dir, seed,
                       progress):
  """Encoded users, targets, exclusions and negatives of `split` (see `evaluate`)."""
  protocols.check_protocol(protocol)
  num_items = (item_embeddings.num_items if isinstance(item_embeddings, TopKSearcher)
               else np.shape(item_embeddings)[0])
  if num_items != data.num_items:
    raise ValueError("%d item embeddings but the dataset %s has %d items (rows must "
                     "be items 1..N)" % (num_items, data.directory, data.num_items))
  if split == "valid" and getattr(data, "validation_in_train", False):
    raise ValueError("%s: the validation targets are training events of this "
                     "model (trained with validation folded in), so the valid "
                     "split cannot score it; evaluate on test" % data.directory)
  users, histories, targets = read_eval_users(data, split)
  earlier = earlier_items(data, users, histories, data.eval_file(split))
  vectors, mask = encode_users(user_tower_fn, data, split, users, max_len,
                               batch_size, progress)
  negatives = None
  if protocol in protocols.SAMPLED_PROTOCOLS:
    interacted = [np.union1d(e, t[t > 0]) for e, t in zip(earlier, targets)]
    negatives = protocols.load_or_sample_negatives(
        candidates_dir or data.directory, split, protocol, users, interacted,
        data.num_items, data.split_item_count, data.fingerprint, seed=seed)
  return users, dict(user_vectors=vectors, targets=targets,
                     exclude=earlier if exclude_train else None,
                     negatives=negatives, user_mask=mask)


def evaluate(user_tower_fn, item_embeddings, data, split="test", protocol="full",
             ks=DEFAULT_KS, exclude_train=True, max_len=50, batch_size=512,
             candidates_dir=None, seed=None, index=None, popularity_reference=None,
             progress=True, popularity_beta=0.0, head_fraction=metrics.HEAD_FRACTION):
  """Evaluates a user tower against item embeddings on a processed dataset.

  Args:
    user_tower_fn: batch dict (from `pipeline.eval_dataset`) -> [B, D], or
      `([B, K, D], [B, K])` for multi-interest towers.
    item_embeddings: float32 [N, D], row r = item r + 1 (e.g.
      `item_tower(tf.range(1, N + 1))`), or a `TopKSearcher`.
    data: a `dcg_tf.data.dataset.ProcessedDataset`.
    split: "valid" or "test".
    protocol: "full", "popular100" or "uniform100".
    ks: cut-offs (default 1, 5, 10, 20, 50, 100, 200, 500).
    exclude_train: `full` only: drop each user's earlier items (training items
      and evaluation history) from the ranking; the user's targets stay.
    max_len: history length fed to the user tower.
    batch_size: users per tower batch.
    candidates_dir: where sampled negatives are saved/reused (default: the
      dataset folder).
    seed: seed of the negatives (default `protocols.DEFAULT_SEED`).
    index: optional Faiss index over the item embeddings.
    popularity_reference: optional dict k -> reference E[p_data] for popularity@k.
    progress: progress bars on stderr.
    popularity_beta: rank by `s(u, i) + beta * log p(i)` with p the smoothed
      training popularity `data.item_count`
      (`dcg_tf.evaluation.popularity_correction`); 0 = today's ranking.
    head_fraction: share of items in the head of the head_/tail_ metrics.

  Returns:
    dict of metrics, e.g. {"HR@10": ..., "NDCG@10": ..., "MRR": ...,
    "coverage@50": ..., "num_users": ...}.
  """
  return evaluate_betas(
      user_tower_fn, item_embeddings, data, [popularity_beta], split=split,
      protocol=protocol, ks=ks, exclude_train=exclude_train, max_len=max_len,
      batch_size=batch_size, candidates_dir=candidates_dir, seed=seed,
      index=index, popularity_reference=popularity_reference,
      progress=progress, head_fraction=head_fraction)[0]


def evaluate_betas(user_tower_fn, item_embeddings, data, betas, split="test",
                   protocol="full", ks=DEFAULT_KS, exclude_train=True, max_len=50,
                   batch_size=512, candidates_dir=None, seed=None, index=None,
                   popularity_reference=None, progress=True,
                   head_fraction=metrics.HEAD_FRACTION):
  """`evaluate` at several popularity betas, encoding the users once.

  Returns:
    a list of metric dicts, one per entry of `betas` (in order), each as
    `evaluate(..., popularity_beta=beta)` returns it.
  """
  users, inputs = _evaluation_inputs(user_tower_fn, item_embeddings, data, split,
                                     protocol, exclude_train, max_len, batch_size,
                                     candidates_dir, seed, progress)
  interests = {}
  if inputs["user_mask"] is not None:
    activity = interest_activity.training_activity(data)[users]      # [U]
    interests = interest_activity.interest_activity_report(
        inputs["user_mask"], activity)
  return [dict(evaluate_embeddings(
      item_embeddings=item_embeddings, item_count=data.item_count,
      protocol=protocol, ks=ks, index=index,
      popularity_reference=popularity_reference, progress=progress,
      popularity_beta=float(beta), head_fraction=head_fraction, **inputs),
               **interests)
          for beta in betas]


def to_markdown(results):
  """Markdown tables: one row per metric family, one column per K; then scalars."""
  families, scalars = {}, {}
  for key, value in results.items():
    if "@" in key:
      name, k = key.rsplit("@", 1)
      families.setdefault(name, {})[int(k)] = value
    elif isinstance(value, (int, float, np.integer, np.floating)):
      scalars[key] = value
  ks = sorted({k for row in families.values() for k in row})

  def fmt(value):
    if isinstance(value, (int, np.integer)):
      return "%d" % value
    return "%.4f" % value

  lines = []
  if families:
    lines.append("| metric | " + " | ".join("@%d" % k for k in ks) + " |")
    lines.append("|---|" + "---:|" * len(ks))
    for name, row in families.items():
      lines.append("| %s | " % name + " | ".join(
          fmt(row[k]) if k in row else "" for k in ks) + " |")
  if scalars:
    lines.append("")
    lines.append("| | value |")
    lines.append("|---|---:|")
    lines.extend("| %s | %s |" % (key, fmt(value)) for key, value in scalars.items())
  return "\n".join(lines) + "\n"
