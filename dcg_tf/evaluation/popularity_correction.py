"""Serving-time popularity knob: rank by `s(u, i) + beta * log p(i)`.

CLRec (Zhou et al., KDD'21), Theorem 1: the contrastive loss with a queue
that follows p_data(y) (Eq. 3) and the IPW loss (Eq. 4) both fit
p_data(y | x) / q(y), so a CLRec model ranks by roughly
log p(y | x) - log p(y) (in its logits, the scores divided by the
temperature). Adding `beta * log p(i)` to the score moves a trained model
along the accuracy / diversity curve without retraining: beta > 0 gives
popular items back (for a cosine model trained at temperature T, beta = T
undoes the whole 1 / p(y) factor of Theorem 1), beta < 0 demotes them.

The correction is folded into the vectors by ONE extra coordinate, so Faiss
still does a plain inner-product search and evaluation still ranks through
`dcg_tf.evaluation.topk.TopKSearcher`:

  item i:  [v_i, log p(i)]     (`with_popularity_column`)
  user u:  [u, beta]           (`with_beta_column`; every vector of a
                                multi-interest user)
  <[u, beta], [v_i, log p(i)]> = <u, v_i> + beta * log p(i).

For cosine towers the item vectors are L2-normalised BEFORE the column is
appended (the column must not be normalised away), so the search over the
widened vectors is a plain inner product (export metric "ip").

p is the training popularity with additive (Laplace) smoothing, the same
estimate as IPW's propensity (`dcg_tf.losses.ipw.fit_popularity_propensity`):
p(i) = (count(i) + alpha) / (sum_j count(j) + alpha N), count = training
interactions of item i (`ProcessedDataset.item_count`, which for a model
trained with validation folded in counts those events too), alpha = 1, so an
item never clicked in training gets the finite log(1 / (S + N)).

beta = 0 is never folded in by the callers (evaluation, export): with beta
= 0 they run today's code path and return today's ranking bit for bit.
"""

import numpy as np

from dcg_tf.losses.ipw import fit_popularity_propensity

SMOOTHING = 1.0
DEFINITION = ("log p(i), p(i) = (count(i) + alpha) / (sum_j count(j) + alpha * N); "
              "count = training interactions of item i (catalog item_count), "
              "alpha = %g (Laplace; IPW's propensity)")


def log_popularity(item_count, smoothing=SMOOTHING):
  """log p(i) for items 1..N: float32 [N], row r = item r + 1.

  Args:
    item_count: int [N+1] training interactions per item (row 0 = padding).
    smoothing: alpha > 0 added to every item's count.
  """
  if smoothing <= 0:
    raise ValueError("log_popularity: smoothing must be > 0 so that items "
                     "never clicked in training keep a finite log p, got %r"
                     % (smoothing,))
  p = fit_popularity_propensity(item_count, smoothing)              # [N+1]
  return np.log(p[1:]).astype(np.float32)                           # [N]


def describe(beta, smoothing=SMOOTHING):
  """What an export or a result file records about the knob (JSON-ready)."""
  return {"beta": float(beta), "smoothing": float(smoothing),
          "definition": DEFINITION % smoothing}


def with_popularity_column(item_embeddings, log_p):
  """[v_i, log p(i)]: float32 [N, D + 1].

  Args:
    item_embeddings: float [N, D], row r = item r + 1 (already L2-normalised
      for cosine towers).
    log_p: float [N] from `log_popularity`.
  """
  item_embeddings = np.asarray(item_embeddings, np.float32)
  log_p = np.asarray(log_p, np.float32).reshape(-1)
  if item_embeddings.ndim != 2 or item_embeddings.shape[0] != log_p.shape[0]:
    raise ValueError("with_popularity_column: %s item embeddings for %d log p "
                     "values (rows must be items 1..N)"
                     % (item_embeddings.shape, log_p.shape[0]))
  return np.ascontiguousarray(
      np.concatenate([item_embeddings, log_p[:, None]], axis=1))    # [N, D+1]


def with_beta_column(queries, beta):
  """[u, beta] for every query vector: [Q, D] -> [Q, D+1], [Q, K, D] -> [Q, K, D+1]."""
  queries = np.asarray(queries, np.float32)
  column = np.full(queries.shape[:-1] + (1,), beta, np.float32)     # [Q, (K,) 1]
  return np.ascontiguousarray(np.concatenate([queries, column], axis=-1))
