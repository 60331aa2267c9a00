"""Non-neural baselines every model of the leaderboard is judged against.

- `most_popular`: every user gets the items with the most training
  interactions (ties: smaller item index first).
- `transition`: a first-order item-to-item model. Items are ranked by how many
  times they followed the user's last item in the training sequences
  (consecutive events of one user), popularity breaking ties (then the smaller
  index); a user whose last item was never followed by anything gets the
  popularity ranking. The user's last item is the last item of the evaluated
  history (for `test` with leave-one-out: the validation item).

Both are scored under the same full-ranking protocol as the towers
(`dcg_tf.evaluation.evaluator.evaluate`): every item ranked, the user's earlier
items (training items and evaluation history) excluded, the targets kept, and
the same metric functions (`dcg_tf.evaluation.metrics`). `most_popular` is
also scored under the sampled protocols (`popular100`, `uniform100`: the
targets against the saved negatives, by training count, ties pessimistic;
PCL-AISL's Table 1 MostPopular row).
"""

import numpy as np

from dcg_tf.evaluation import evaluator
from dcg_tf.evaluation import metrics

BASELINES = ("most_popular", "transition")
_CHUNK_USERS = 1024


class TransitionCounts:
  """Counts of (item a -> next item b) over the training sequences, CSR by a.

  Args:
    sequences: `ProcessedDataset.train_sequences()` (offsets, items; rows are
      users, events in time order).
    num_items: N.
  """

  def __init__(self, sequences, num_items):
    offsets = np.asarray(sequences.offsets, np.int64)
    items = np.asarray(sequences.items, np.int64)
    # Pair (items[t], items[t + 1]) unless t + 1 starts the next user's row.
    follows = np.ones(max(items.size - 1, 0), bool)                      # [T-1]
    starts = offsets[1:-1]
    follows[starts[(starts > 0) & (starts < items.size)] - 1] = False
    src, dst = items[:-1][follows], items[1:][follows]
    keys, counts = np.unique(src * (num_items + 1) + dst, return_counts=True)
    self.num_items = int(num_items)
    self.sources = keys // (num_items + 1)                               # [P], sorted
    self.targets = keys % (num_items + 1)                                # [P]
    self.counts = counts.astype(np.float64)                              # [P]
    self.row_offsets = np.searchsorted(self.sources, np.arange(num_items + 2))  # [N+2]

  def rows(self, last_items):
    """(row index into `last_items`, next item, count) of every stored pair."""
    starts = self.row_offsets[last_items]                                # [U]
    lengths = self.row_offsets[last_items + 1] - starts                  # [U]
    row = np.repeat(np.arange(last_items.size), lengths)                 # [P_u]
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)             # [P_u]
    pos = starts[row] + np.arange(row.size) - first                      # [P_u]
    return row, self.targets[pos], self.counts[pos]


def popularity_scores(item_count):
  """Scores float64 [N+1] ordering items by count, then by smaller index.

  Values lie in [0, 1): adding them to integer transition counts breaks ties
  without changing the order of different counts. Item 0 scores -inf.
  """
  count = np.asarray(item_count, np.float64).copy()
  count[0] = -1.0
  order = np.lexsort((np.arange(count.size), -count))                    # best first
  scores = np.empty(count.size)
  scores[order] = (count.size - np.arange(count.size)) / (count.size + 1.0)
  scores[0] = -np.inf
  return scores


def rank_users(baseline, data, last_items, exclude, depth, transitions=None):
  """Ranked items int64 [U, depth] of `baseline` for users with `last_items`."""
  if baseline not in BASELINES:
    raise ValueError("unknown baseline %r; choose one of %s" % (baseline, BASELINES))
  prior = popularity_scores(data.item_count)                             # [N+1]
  ranked = []
  for lo in range(0, last_items.size, _CHUNK_USERS):
    hi = min(lo + _CHUNK_USERS, last_items.size)
    scores = np.repeat(prior[None, :], hi - lo, axis=0)                  # [C, N+1]
    if baseline == "transition":
      row, nxt, count = transitions.rows(last_items[lo:hi])
      np.add.at(scores, (row, nxt), count)
    for r, items in enumerate(exclude[lo:hi]):
      scores[r, items] = -np.inf
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]         # [C, depth]
    order = np.lexsort((top, -np.take_along_axis(scores, top, axis=1)), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    top = np.where(np.isneginf(np.take_along_axis(scores, top, axis=1)), 0, top)
    ranked.append(top)
  return np.concatenate(ranked).astype(np.int64)


def evaluate_baseline(baseline, data, split="test", ks=evaluator.DEFAULT_KS,
                      protocol="full"):
  """Metrics of a non-neural baseline (see the module docstring)."""
  if protocol != "full":
    if baseline != "most_popular":
      raise ValueError("the %s baseline is scored under protocol full only, "
                       "got %r" % (baseline, protocol))
    # Score = training count: a one-coordinate user [1] against items [count].
    counts = data.item_count[1:, None].astype(np.float32)          # [N, 1]
    return evaluator.evaluate(
        lambda batch: np.ones((np.shape(batch["user"])[0], 1), np.float32),
        counts, data, split=split, protocol=protocol, ks=ks, progress=False)
  users, histories, targets = evaluator.read_eval_users(data, split)
  earlier = evaluator.earlier_items(data, users, histories, data.eval_file(split))
  exclude = [np.setdiff1d(e, t[t > 0]) for e, t in zip(earlier, targets)]
  last = np.array([h[-1] if h.size else 0 for h in histories], np.int64)
  ks = tuple(k for k in ks if k <= data.num_items)
  transitions = (TransitionCounts(data.train_sequences(), data.num_items)
                 if baseline == "transition" else None)
  ranked = rank_users(baseline, data, last, exclude, max(ks), transitions)
  results = metrics.ranking_metrics(ranked, targets, ks)
  results.update(metrics.beyond_accuracy_metrics(ranked, targets, data.item_count, ks))
  results["num_users"] = int(users.size)
  return results
