"""Contrastive loss with negatives from a queue (CLRec Eq. 3, cosine similarity).

CLRec (Zhou et al., KDD'21), section 2.2 Eq. 3 and section 3.1:
  loss(x, y) = -log exp(phi(x, y)) / (exp(phi(x, y)) + sum_i exp(phi(x, y_i))),
  phi(x, y) = <f(x), g(y)> / (rho ||f(x)|| ||g(y)||),  rho = 0.07 (appendix B.2).
There is no log-Q correction: the queue follows p_data(y), which is what makes
the loss approximate the IPW loss of Eq. 4 (Theorem 1). Temperature,
accidental-hit removal and invalid-slot masking are those of
`dcg_tf.losses.corrections`, in its order.
"""

import tensorflow as tf

from dcg_tf.losses import corrections


def queue_contrastive(query, positive, negatives, negatives_valid=None,
                      positive_ids=None, negative_ids=None, temperature=0.07,
                      return_logits=False):
  """Per-example loss of Eq. 3 against the negatives of a queue.

  A negative slot is ignored when it is invalid (never written) or when its id
  equals the row's positive id (an accidental hit: a queued copy of the
  positive item, e.g. the present batch's own positive after it was enqueued).
  A row whose negatives are all ignored keeps only its positive: its loss is
  0 (the positive's softmax weight is 1).

  Args:
    query: [B, D] user embeddings f(x).
    positive: [B, D] positive item embeddings g(y).
    negatives: [Q, D] queue contents g(y_i).
    negatives_valid: optional bool [Q] (shared by the rows) or [B, Q] (per
      row), False at slots to ignore.
    positive_ids: optional int [B] ids of the positives.
    negative_ids: optional int [Q] ids of the negatives (needed with
      `positive_ids` for accidental-hit removal).
    temperature: rho.
    return_logits: also return `(logits [B, 1 + Q], labels [B])` as SimCLR
      does; column 0 is the positive, masked slots hold `MASKED_LOGIT`.

  Returns:
    loss [B], or (loss, logits, labels) when `return_logits`.

  Example:
    >>> loss = queue_contrastive(u, g_pos, queue, valid, pos_ids, queue_ids)
  """
  if (positive_ids is None) != (negative_ids is None):
    raise ValueError("queue_contrastive: pass both positive_ids and negative_ids "
                     "(accidental-hit removal) or neither")
  query = tf.math.l2_normalize(query, axis=-1)                     # [B, D]
  positive = tf.math.l2_normalize(positive, axis=-1)               # [B, D]
  negatives = tf.math.l2_normalize(negatives, axis=-1)             # [Q, D]
  positive_logits = corrections.correct_logits(
      tf.reduce_sum(query * positive, axis=-1, keepdims=True),
      temperature)                                                 # [B, 1]
  hits = None
  if positive_ids is not None:
    hits = corrections.accidental_hits(positive_ids, negative_ids)  # [B, Q]
  valid = None
  if negatives_valid is not None:
    valid = tf.cast(negatives_valid, tf.bool)
    if valid.shape.rank == 1:
      valid = valid[None, :]                                       # [1, Q]
  negative_logits = corrections.correct_logits(
      tf.matmul(query, negatives, transpose_b=True), temperature,
      hits=hits, valid=valid)                                      # [B, Q]
  logits = tf.concat([positive_logits, negative_logits], axis=1)  # [B, 1 + Q]
  loss = -tf.nn.log_softmax(logits, axis=-1)[:, 0]                 # [B]
  if return_logits:
    labels = tf.zeros_like(loss, dtype=tf.int64)                   # [B]
    return loss, logits, labels
  return loss
