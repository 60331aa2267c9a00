"""Sampled softmax with log-Q correction over negatives shared by the batch.

CLRec (Zhou et al., KDD'21) Eq. (2), the TensorFlow variant of Jean et al.
(ACL'15) / Bengio & Senecal: negatives y_1..y_L are drawn from a proposal
p_n(y) over the whole vocabulary (e.g. `dcg_tf.training_state.samplers.AliasSampler`),
and every logit, the positive's included, is corrected by -log p_n(y). Without
the correction (log-Q terms None) this is CLRec's contrastive loss, Eq. (3).
Corrections (temperature, log-Q, accidental hits) are those of
`dcg_tf.losses.corrections`, in its order.
"""

import tensorflow as tf

from dcg_tf.losses import corrections


def sampled_softmax(query, positive, negatives, positive_log_q=None,
                    negative_log_q=None, temperature=1.0, positive_ids=None,
                    negative_ids=None, return_logits=False):
  """Per-example sampled softmax cross-entropy, CLRec Eq. (2).

  loss_i = -log exp(o_i) / (exp(o_i) + sum_l exp(o_il)), with
  o_i = <q_i, p_i> / T - log q(y_i) and o_il = <q_i, n_l> / T - log q(y_l);
  negatives with the same id as the positive of row i are removed from row i.

  Args:
    query: [B, D] user embeddings f(x).
    positive: [B, D] embeddings g(y) of each example's positive.
    negatives: [S, D] embeddings of S negatives shared by the batch.
    positive_log_q: optional [B] log p_n(y_i) of the positives.
    negative_log_q: optional [S] log p_n(y_l) of the negatives. Give both or
      neither.
    temperature: divides the scores before the correction.
    positive_ids: optional [B] ids of the positives; with `negative_ids` [S],
      removes accidental hits.
    negative_ids: optional [S] ids of the negatives.
    return_logits: also return `(logits [B, 1 + S], labels [B])`; column 0
      is the positive, removed negatives hold `MASKED_LOGIT`.

  Returns:
    float32 [B] loss per example, or (loss, logits, labels) when
    `return_logits`.

  Example:
    >>> ids, q = sampler.sample(2560)
    >>> loss = sampled_softmax(u, item_tower(target), item_tower(ids),
    ...                        tf.math.log(sampler.probability(target)),
    ...                        tf.math.log(q), positive_ids=target, negative_ids=ids)
  """
  if (positive_log_q is None) != (negative_log_q is None):
    raise ValueError("sampled_softmax: give both positive_log_q and "
                     "negative_log_q, or neither")
  if (positive_ids is None) != (negative_ids is None):
    raise ValueError("sampled_softmax: give both positive_ids and negative_ids, "
                     "or neither")
  query = tf.convert_to_tensor(query, tf.float32)
  positive = tf.convert_to_tensor(positive, tf.float32)
  negatives = tf.convert_to_tensor(negatives, tf.float32)
  positive_scores = tf.reduce_sum(query * positive, axis=-1)                  # [B]
  negative_scores = tf.matmul(query, negatives, transpose_b=True)             # [B, S]
  hits = None
  if positive_ids is not None:
    hits = corrections.accidental_hits(positive_ids, negative_ids)            # [B, S]
  positive_logits = corrections.correct_logits(
      positive_scores, temperature, positive_log_q)                           # [B]
  negative_logits = corrections.correct_logits(
      negative_scores, temperature,
      None if negative_log_q is None else
      tf.convert_to_tensor(negative_log_q)[None, :], hits)                    # [B, S]
  logits = tf.concat([positive_logits[:, None], negative_logits], axis=1)     # [B, 1+S]
  loss = tf.reduce_logsumexp(logits, axis=1) - positive_logits                # [B]
  if return_logits:
    return loss, logits, tf.zeros_like(loss, dtype=tf.int64)
  return loss
