"""Logit corrections shared by every loss, applied in one visible order.

tensorflow-recommenders' `tasks.Retrieval` corrects the scores of a retrieval
loss with small layers in a fixed order (`layers/loss.py`); the losses of
this package do the same with these pure functions:

  1. temperature: s / T (CLRec appendix B.2, rho = 0.07 for cosine scores);
  2. log-Q: s - log q(y), q the probability that candidate y is drawn as a
     negative (Yi et al., RecSys'19, Eq. 3; CLRec Eq. 2; Jean et al., ACL'15),
     q floored at `min_probability` before the log (tfrs clips at 1e-6);
  3. accidental hits: a negative with the same id as the row's positive is
     removed (set to `MASKED_LOGIT`), the row's own positive column kept;
  4. invalid slots: a negative that does not exist (a queue slot never
     written, padding) is removed the same way.

`correct_logits` applies them in that order. The order matters: log-Q after
temperature is s/T - log q, not (s - log q)/T; and the masks come last, so
that no later arithmetic moves a removed entry away from `MASKED_LOGIT`.
Every removed entry holds the one constant `dcg_tf.layers.masking.MASKED_LOGIT`
(shared with the attention masks of the layers), which gives it exactly zero
softmax weight and zero gradient whenever the row keeps one ordinary logit.

  >>> logits = correct_logits(scores, temperature=0.07, log_q=log_q[None, :],
  ...                         hits=accidental_hits(ids[:B], ids, positive),
  ...                         valid=valid[None, :])
"""

import tensorflow as tf

from dcg_tf.layers.masking import MASKED_LOGIT, mask_logits

__all__ = ["MASKED_LOGIT", "apply_temperature", "floor_probability",
           "log_probability", "log_q_correction", "accidental_hits",
           "remove_accidental_hits", "mask_invalid", "correct_logits",
           "unmasked_negatives"]


def apply_temperature(logits, temperature):
  """Correction 1: logits / temperature."""
  return logits / temperature


def floor_probability(probability, min_probability=1e-6):
  """max(q, min_probability) in float32: the floor of log-Q and of IPW weights."""
  return tf.maximum(tf.cast(probability, tf.float32), min_probability)


def log_probability(probability, min_probability=1e-6):
  """log max(q, min_probability): what `log_q_correction` subtracts."""
  return tf.math.log(floor_probability(probability, min_probability))


def log_q_correction(logits, log_q):
  """Correction 2: logits - log q (Yi et al., RecSys'19, Eq. 3).

  Args:
    logits: float [..., N].
    log_q: log sampling probability of each candidate, broadcastable to
      `logits` (e.g. [1, N] for candidates shared by the batch, [B] for the
      positives' own column).
  """
  return logits - tf.cast(log_q, logits.dtype)


def accidental_hits(positive_ids, candidate_ids, positive_columns=None):
  """Where a candidate is a copy of the row's positive: bool [B, N].

  Args:
    positive_ids: int [B], the id of each row's positive.
    candidate_ids: int [N] (candidates shared by the batch) or [B, N] (per
      row).
    positive_columns: optional bool [B, N], True at a row's own positive
      column when the positives are among the candidates (in-batch softmax);
      those are never hits.

  Returns:
    bool [B, N], True at the candidates to remove.
  """
  positive_ids = tf.cast(positive_ids, tf.int64)                 # [B]
  candidate_ids = tf.cast(candidate_ids, tf.int64)               # [N] | [B, N]
  if candidate_ids.shape.rank == 1:
    candidate_ids = candidate_ids[None, :]                       # [1, N]
  hits = tf.equal(positive_ids[:, None], candidate_ids)          # [B, N]
  if positive_columns is not None:
    hits = tf.logical_and(hits, tf.logical_not(positive_columns))
  return hits


def remove_accidental_hits(logits, hits):
  """Correction 3: `MASKED_LOGIT` where `hits` (broadcastable bool) is True."""
  return mask_logits(logits, tf.logical_not(tf.cast(hits, tf.bool)))


def mask_invalid(logits, valid):
  """Correction 4: `MASKED_LOGIT` where `valid` (broadcastable bool) is False."""
  return mask_logits(logits, valid)


def correct_logits(logits, temperature=None, log_q=None, hits=None, valid=None):
  """Corrections 1-4 in order; each is skipped when its argument is None.

  Args:
    logits: raw scores, float [..., N].
    temperature: divides the scores.
    log_q: log sampling probability, broadcastable to `logits`.
    hits: bool, True at accidental hits (`accidental_hits`).
    valid: bool, False at slots that hold no candidate.

  Returns:
    float, the shape of `logits`.
  """
  if temperature is not None:
    logits = apply_temperature(logits, temperature)
  if log_q is not None:
    logits = log_q_correction(logits, log_q)
  if hits is not None:
    logits = remove_accidental_hits(logits, hits)
  if valid is not None:
    logits = mask_invalid(logits, valid)
  return logits


def unmasked_negatives(logits):
  """Negatives a row of a loss really sees: float32 [B].

  The number of entries of each row of `logits` [B, N] that are not
  `MASKED_LOGIT` (after `correct_logits`), minus the row's positive, which no
  correction removes. Models report its batch mean as the metric
  "negatives_per_row", so a comparison can state how many negatives each
  loss's rows contain.
  """
  kept = tf.not_equal(logits, tf.cast(MASKED_LOGIT, logits.dtype))   # [B, N]
  return tf.reduce_sum(tf.cast(kept, tf.float32), axis=-1) - 1.0     # [B]
