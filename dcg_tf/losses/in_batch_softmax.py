"""In-batch softmax: the other positives of the batch are the negatives.

Batch softmax cross-entropy of Yao et al., "Self-supervised Learning for
Large-scale Item Recommendations" (SSL-CFM, CIKM'21) Eq. (6) and PCL-AISL's
main task, with the corrections of Yi et al., "Sampling-Bias-Corrected Neural
Modeling for Large Corpus Item Recommendations" (RecSys'19): logits divided by
a temperature, minus log q(candidate) (log-Q correction, since in-batch
candidates are drawn with probability ~ popularity), and accidental hits
removed, applied by `dcg_tf.losses.corrections.correct_logits` in the order
of tfrs `tasks.Retrieval`.
"""

import tensorflow as tf

from dcg_tf.losses import corrections


def in_batch_softmax(query, candidates, temperature=1.0,
                     candidate_sampling_probability=None, candidate_ids=None,
                     min_probability=1e-6, return_logits=False):
  """Per-example in-batch softmax cross-entropy.

  loss_i = -log softmax_j(s_ij)[i], with
  s_ij = <query_i, candidates_j> / temperature - log q_j, and s_ij set to
  `MASKED_LOGIT` (zero softmax weight) when j != i and ids_j == ids_i. The
  positive column i is never removed, so no row is fully masked.

  Args:
    query: [B, D] user (query) embeddings.
    candidates: [N, D] candidate embeddings, N >= B; row i is query i's
      positive, rows B..N-1 (if any) are extra negatives for every query.
    temperature: divides the scores (e.g. 0.07 for cosine, CLRec B.2).
    candidate_sampling_probability: optional [N] probability q_j that candidate
      j enters the batch (e.g. item frequency); clipped below at
      `min_probability` before the log.
    candidate_ids: optional [N] ids; when given, a candidate with the same id as
      query i's positive (other than the positive itself) is removed from row i.
    min_probability: floor of q before the log (tfrs uses 1e-6).
    return_logits: also return `(logits [B, N], labels [B])`; row i's
      positive is column i, removed entries hold `MASKED_LOGIT`.

  Returns:
    float32 [B] loss per example (the caller reduces), or (loss, logits,
    labels) when `return_logits`.

  Example:
    >>> loss = in_batch_softmax(user_vectors, item_vectors, temperature=0.1,
    ...                         candidate_sampling_probability=q, candidate_ids=ids)
  """
  query = tf.convert_to_tensor(query, tf.float32)
  candidates = tf.convert_to_tensor(candidates, tf.float32)
  batch = tf.shape(query)[0]
  scores = tf.matmul(query, candidates, transpose_b=True)                 # [B, N]
  log_q = None
  if candidate_sampling_probability is not None:
    log_q = corrections.log_probability(candidate_sampling_probability,
                                        min_probability)[None, :]         # [1, N]
  labels = tf.range(batch)                                                # [B]
  hits = None
  if candidate_ids is not None:
    ids = tf.convert_to_tensor(candidate_ids)                             # [N]
    positive = tf.one_hot(labels, tf.shape(candidates)[0], on_value=True,
                          off_value=False)                                # [B, N]
    hits = corrections.accidental_hits(ids[:batch], ids, positive)        # [B, N]
  logits = corrections.correct_logits(scores, temperature, log_q, hits)   # [B, N]
  loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                        logits=logits)    # [B]
  if return_logits:
    return loss, logits, labels
  return loss
