"""Diagnostics of a trained model: item-tower collapse, Multi-CLRec intentions.

`experiments/diagnose.py` wires these to flags; every figure about embedding
collapse or intention use in docs/results must come from it.

1. Item-embedding collapse, on a seeded sample of S distinct items 1..N:
   the mean pairwise cosine similarity of their item-tower embeddings (i != j),
   their mean l2 norm and the effective rank of the [S, D] matrix (Roy and
   Vetterli, 2007: exp of the entropy of the singular values normalised to sum
   to 1). A collapsed tower (every item on one direction) has cosine near 1 and
   effective rank near 1; k orthogonal directions of equal norm give rank k.
2. For a multi-interest user tower with the routing hooks of the contract
   (`dcg_tf.towers.multi_interest`: `item_interests`, `interests(...)
   ["selected"]`, `interest_slots`), e.g. Multi-CLRec (CLRec paper, section 3.2):
   - routing (Eq. 7): the interest h = `item_interests(y)` of every item 1..N
     (Multi-CLRec: argmax_h p_{h|y}, the routing that fills the secondary
     queues), counted per interest;
   - selection (Eq. 9): the interest h* = `interests(batch)["selected"]` of
     each user of an evaluation split in inference mode (Multi-CLRec: the
     argmax of w, restricted to the occupied intentions with
     `select_occupied_only`), counted per interest.

The array functions (`mean_pairwise_cosine`, `effective_rank`,
`intention_histogram`, ...) are pure NumPy; the model-level helpers take a
`RetrievalModel` (e.g. from `dcg_tf.training.checkpoint.load_trained_model`).

Example:
  >>> model, data = checkpoint.load_trained_model(model_dir)
  >>> report = diagnose(model, data, split="test", max_len=50)
  >>> report["item_embeddings"]["mean_pairwise_cosine"]
"""

import numpy as np
import tensorflow as tf

from dcg_tf.evaluation import evaluator
from dcg_tf.towers import multi_interest
from dcg_tf.towers.encode_catalog import DEFAULT_BATCH_SIZE
from dcg_tf.towers.encode_catalog import encode_catalog

# Rows with a smaller norm count as zero vectors (cosine 0 with everything),
# as `tf.math.l2_normalize` does.
_EPSILON = 1e-12


def mean_pairwise_cosine(x):
  """Mean cosine similarity over the ordered pairs i != j of the rows of `x`.

  Args:
    x: float [S, D], S >= 2. A zero row has cosine 0 with every row.

  Returns:
    float in [-1, 1]: sum_{i != j} cos(x_i, x_j) / (S (S - 1)).
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError("mean_pairwise_cosine needs a [S >= 2, D] matrix, got shape %s"
                     % (x.shape,))
  norms = np.linalg.norm(x, axis=1, keepdims=True)                # [S, 1]
  unit = x / np.maximum(norms, _EPSILON)                          # [S, D]
  # sum_{i,j} <u_i, u_j> = ||sum_i u_i||^2; drop the diagonal sum_i ||u_i||^2.
  total = np.sum(np.square(unit.sum(axis=0)))
  diagonal = np.sum(np.square(unit))
  s = x.shape[0]
  return float((total - diagonal) / (s * (s - 1)))


def mean_norm(x):
  """Mean l2 norm of the rows of `x` [S, D]."""
  return float(np.mean(np.linalg.norm(np.asarray(x, np.float64), axis=1)))


def effective_rank(x):
  """exp(entropy) of the normalised singular values of `x` [S, D].

  Roy and Vetterli (2007): p_i = sigma_i / sum_j sigma_j, effective rank =
  exp(-sum_i p_i log p_i). k orthogonal rows of equal norm give k; a rank-one
  matrix gives 1; a zero matrix gives 0.
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError("effective_rank needs a 2-D matrix, got shape %s" % (x.shape,))
  sigma = np.linalg.svd(x, compute_uv=False)
  total = sigma.sum()
  if total <= 0:
    return 0.0
  p = sigma[sigma > 0] / total
  return float(np.exp(-np.sum(p * np.log(p))))


def intention_histogram(ids, num_intentions):
  """Counts per intention: int list [H] of how many `ids` (in 0..H-1) are h."""
  ids = np.asarray(ids, np.int64).reshape(-1)
  if ids.size and (ids.min() < 0 or ids.max() >= num_intentions):
    raise ValueError("intention ids must lie in [0, %d), found [%d, %d]"
                     % (num_intentions, ids.min(), ids.max()))
  return [int(c) for c in np.bincount(ids, minlength=num_intentions)]


def histogram_summary(counts):
  """Occupied bins, the largest bin (lowest index on ties) and its share."""
  counts = np.asarray(counts, np.int64)
  total = int(counts.sum())
  largest = int(np.argmax(counts)) if counts.size else 0
  return {"occupied": int(np.count_nonzero(counts)), "largest": largest,
          "largest_share": float(counts[largest] / total) if total else 0.0,
          "total": total}


def sample_item_ids(num_items, num_samples, seed=0):
  """Sorted int64 [min(S, N)]: distinct items of 1..N drawn uniformly, seeded."""
  if num_items < 1:
    raise ValueError("num_items must be >= 1, got %r" % (num_items,))
  if num_samples < 2:
    raise ValueError("num_samples must be >= 2 (pairs of items), got %r"
                     % (num_samples,))
  rng = np.random.default_rng(seed)
  size = min(int(num_samples), int(num_items))
  return np.sort(rng.choice(num_items, size=size, replace=False) + 1).astype(np.int64)


def item_embedding_report(model, num_items, num_samples=2000, seed=0):
  """Collapse statistics of the item tower on `sample_item_ids(N, S, seed)`.

  Returns a dict: `num_sampled`, `num_items`, `seed`, `embedding_dim`,
  `mean_pairwise_cosine`, `mean_norm`, `effective_rank`.
  """
  ids = sample_item_ids(num_items, num_samples, seed)
  x = encode_catalog(model.item_tower, num_items, item_ids=ids)   # [S, D]
  return {"num_sampled": int(ids.size), "num_items": int(num_items),
          "seed": int(seed), "embedding_dim": int(x.shape[1]),
          "mean_pairwise_cosine": mean_pairwise_cosine(x),
          "mean_norm": mean_norm(x), "effective_rank": effective_rank(x)}


def interest_tower(model):
  """The model's user tower if it routes items to interests, else None.

  That is a multi-interest tower (`dcg_tf.towers.multi_interest`) with the
  optional hooks `item_interests` and `interests` and the attribute
  `interest_slots` (e.g. `MultiCLRecUserTower`).
  """
  tower = getattr(model, "user_tower", None)
  hooks = ("item_interests", "interests", "interest_slots")
  if multi_interest.is_multi_interest(tower) and all(hasattr(tower, h)
                                                     for h in hooks):
    return tower
  return None


def item_intentions(tower, num_items, batch_size=DEFAULT_BATCH_SIZE):
  """int64 [N]: the interest `tower.item_interests` of items 1..N (row r = item r+1).

  Multi-CLRec: the Eq. 7 intention argmax_h p_{h|y} (the routing of the
  targets and of the secondary queues in `MultiCLRecModel`); items of unknown
  category (0) have all-equal logits and go to intention 0.
  """
  parts = []
  for lo in range(1, num_items + 1, batch_size):
    ids = tf.range(lo, min(lo + batch_size, num_items + 1), dtype=tf.int64)
    parts.append(np.asarray(tower.item_interests(ids), np.int64))
  return np.concatenate(parts) if parts else np.zeros([0], np.int64)


def selected_intentions(tower, batches, total=None, progress=False):
  """int64 [U]: the interest h* each user of `batches` selects, in order.

  Runs `tower.interests(batch, training=False)["selected"]` (Multi-CLRec:
  Eq. 9) (inside one
  `tf.function`) on each batch dict (`pipeline.eval_dataset` batches or any
  dict with `history`, `history_mask` and, with the time gap, the timestamps).

  Args:
    tower: a user tower with `interests` (`interest_tower`).
    batches: an iterable of batch dicts.
    total: number of users, for the progress bar.
    progress: a progress bar on stderr.
  """
  select = tf.function(
      lambda batch: tower.interests(batch, training=False)["selected"],
      reduce_retracing=True)
  bar = evaluator._Progress("select intentions", total or 0,  # pylint: disable=protected-access
                            progress and bool(total))
  parts = []
  for batch in batches:
    batch = {k: v for k, v in batch.items()
             if k in ("history", "history_mask", "history_timestamp",
                      "target_timestamp")}
    parts.append(np.asarray(select(batch), np.int64))
    bar.update(parts[-1].size)
  return np.concatenate(parts) if parts else np.zeros([0], np.int64)


def count_eval_users(data, split):
  """Number of users (records) in the `split` evaluation file of `data`."""
  ds = tf.data.TFRecordDataset(data.eval_file(split))
  return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


def _first_users(batches, count):
  """The batches of `batches` cut after the first `count` users."""
  seen = 0
  for batch in batches:
    if seen >= count:
      return
    size = int(batch["history"].shape[0])
    if seen + size > count:
      batch = {k: v[:count - seen] for k, v in batch.items()}
    seen += size
    yield batch


def intention_report(tower, data, split="test", max_len=50, batch_size=512,
                     max_users=0, progress=False):
  """Routing of the catalog (Eq. 7) and selection over `split`'s users (Eq. 9).

  Args:
    tower: a user tower with the routing hooks (`interest_tower`).
    data: the `ProcessedDataset` the model was trained on.
    split: "test" or "valid": whose histories (`pipeline.eval_dataset`).
    max_len: history length fed to the tower (the training one).
    batch_size: users per batch.
    max_users: only the first `max_users` users of the split (0 = all).
    progress: a progress bar on stderr.

  Returns a dict: `num_intentions` (H = `interest_slots`),
  `select_occupied_only` (the tower's attribute, None if it has none),
  `items_per_intention` [H], `occupied_intentions`, `largest_intention`,
  `largest_intention_share`, `selected_intention` [H] (users per h*),
  `num_users`, `most_selected_intention`, `most_selected_share`,
  `selected_largest_intention_share` (users whose h* is the routing's
  largest intention).
  """
  from dcg_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  h = int(tower.interest_slots)
  items = intention_histogram(item_intentions(tower, data.num_items), h)
  routed = histogram_summary(items)
  total = count_eval_users(data, split)
  if max_users:
    total = min(total, int(max_users))
  batches = _first_users(
      pipeline.eval_dataset(data, split, batch_size=batch_size, max_len=max_len),
      total)
  selected_ids = selected_intentions(tower, batches, total, progress)
  selected = intention_histogram(selected_ids, h)
  chosen = histogram_summary(selected)
  return {
      "num_intentions": int(h),
      "select_occupied_only": getattr(tower, "select_occupied_only", None),
      "items_per_intention": items,
      "occupied_intentions": routed["occupied"],
      "largest_intention": routed["largest"],
      "largest_intention_share": routed["largest_share"],
      "selected_intention": selected,
      "num_users": int(selected_ids.size),
      "most_selected_intention": chosen["largest"],
      "most_selected_share": chosen["largest_share"],
      "selected_largest_intention_share": (
          float(np.mean(selected_ids == routed["largest"])) if selected_ids.size
          else 0.0),
  }


def diagnose(model, data, split="test", max_len=50, num_items_sample=2000, seed=0,
             batch_size=512, max_users=0, progress=False):
  """Every diagnostic that applies to `model`.

  Returns a dict with `item_embeddings` (`item_embedding_report`) and, for a
  user tower that routes items to interests (`interest_tower`, e.g.
  Multi-CLRec), `intentions` (`intention_report`).
  """
  report = {"item_embeddings": item_embedding_report(
      model, data.num_items, num_items_sample, seed)}
  tower = interest_tower(model)
  if tower is not None:
    report["intentions"] = intention_report(tower, data, split, max_len, batch_size,
                                            max_users, progress)
  return report


def to_text(report):
  """A readable multi-line summary of a `diagnose` report."""
  e = report["item_embeddings"]
  lines = ["Item embeddings (%d of %d items sampled, seed %d, D = %d):"
           % (e["num_sampled"], e["num_items"], e["seed"], e["embedding_dim"]),
           "  mean pairwise cosine %.4f, mean norm %.4f, effective rank %.2f"
           % (e["mean_pairwise_cosine"], e["mean_norm"], e["effective_rank"])]
  if "intentions" in report:
    r = report["intentions"]
    num_items = sum(r["items_per_intention"])
    largest = r["largest_intention"]
    lines += [
        "Intention routing (Eq. 7, H = %d, all %d items):" % (r["num_intentions"],
                                                            num_items),
        "  items per intention: %s" % r["items_per_intention"],
        "  occupied intentions: %d of %d; largest: intention %d with %d items (%.1f%%)"
        % (r["occupied_intentions"], r["num_intentions"], largest,
           r["items_per_intention"][largest], 100 * r["largest_intention_share"]),
        "Intention selection (Eq. 9, %d users, select_occupied_only=%s):"
        % (r["num_users"], r["select_occupied_only"]),
        "  users per selected intention: %s" % r["selected_intention"],
        "  most selected: intention %d by %d users (%.1f%%); the largest routing "
        "intention (%d) by %d users (%.1f%%)"
        % (r["most_selected_intention"],
           r["selected_intention"][r["most_selected_intention"]],
           100 * r["most_selected_share"], largest, r["selected_intention"][largest],
           100 * r["selected_largest_intention_share"])]
  else:
    lines.append("(the user tower does not route items to interests: no "
                 "intention diagnostics)")
  return "\n".join(lines) + "\n"
