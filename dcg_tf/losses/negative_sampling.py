"""Binary cross-entropy with sampled negatives (negative sampling).

PCL-AISL (CIKM'22) Eq. (1): BCE on sigmoid(s(ue, ie)) with label 1 for the
clicked item and 0 for sampled ones; Mikolov et al. (NeurIPS'13) negative
sampling; CLRec (KDD'21) appendix B.3 "negative sampling" (negatives [B, S, D],
drawn per example) and "shared negative sampling" (negatives [S, D] shared by
the batch, Ying et al., KDD'18). Temperature and accidental-hit removal are
those of `dcg_tf.losses.corrections`: a removed negative's logit is
`MASKED_LOGIT`, where its BCE term -log(1 - sig(s)) is exactly 0 with zero
gradient.
"""

import tensorflow as tf

from dcg_tf.losses import corrections


def negative_sampling_bce(query, positive, negatives, temperature=1.0,
                          positive_ids=None, negative_ids=None):
  """Per-example BCE: -log sig(s_i+) - sum_l log(1 - sig(s_il)).

  Scores are inner products divided by `temperature`. Negatives with the same id
  as the example's positive (accidental hits) are dropped from the sum.

  Args:
    query: [B, D] user embeddings.
    positive: [B, D] positive item embeddings.
    negatives: [B, S, D] per-example negatives, or [S, D] shared by the batch.
    temperature: divides the scores.
    positive_ids: optional [B] ids of the positives.
    negative_ids: optional ids of the negatives, [B, S] or [S] like `negatives`.

  Returns:
    float32 [B] loss per example (negatives summed, as in word2vec).

  Example:
    >>> ids, _ = sampler.sample(B * 8)
    >>> loss = negative_sampling_bce(u, item_tower(target),
    ...                              tf.reshape(item_tower(ids), [B, 8, -1]))
  """
  if (positive_ids is None) != (negative_ids is None):
    raise ValueError("negative_sampling_bce: give both positive_ids and "
                     "negative_ids, or neither")
  query = tf.convert_to_tensor(query, tf.float32)
  positive = tf.convert_to_tensor(positive, tf.float32)
  negatives = tf.convert_to_tensor(negatives, tf.float32)
  if negatives.shape.rank == 3:
    negative_scores = tf.einsum("bd,bsd->bs", query, negatives)             # [B, S]
  elif negatives.shape.rank == 2:
    negative_scores = tf.matmul(query, negatives, transpose_b=True)         # [B, S]
  else:
    raise ValueError("negative_sampling_bce: negatives must be [B, S, D] or "
                     "[S, D], got shape %s" % negatives.shape)
  hits = None
  if positive_ids is not None:
    hits = corrections.accidental_hits(positive_ids, negative_ids)          # [B, S]
  return negative_sampling_bce_from_scores(
      tf.reduce_sum(query * positive, axis=-1), negative_scores, temperature,
      hits=hits)


def negative_sampling_bce_from_scores(positive_scores, negative_scores,
                                      temperature=1.0, hits=None):
  """Per-example BCE on given scores: -log sig(s+/T) - sum_l log(1 - sig(s_l/T)).

  The score-level form of `negative_sampling_bce`, for models whose score
  is not one inner product (e.g. the maximum over a user's interests,
  PCL-AISL Eq. 1 with multi-interest users).

  Args:
    positive_scores: float [B].
    negative_scores: float [B, S].
    temperature: divides the scores.
    hits: optional bool [B, S], negatives to remove (accidental hits).

  Returns:
    float32 [B].
  """
  positive_logits = corrections.correct_logits(positive_scores, temperature)  # [B]
  negative_logits = corrections.correct_logits(negative_scores, temperature,
                                               hits=hits)                   # [B, S]
  positive_loss = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.ones_like(positive_logits), logits=positive_logits)          # [B]
  negative_loss = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.zeros_like(negative_logits), logits=negative_logits)         # [B, S]
  return positive_loss + tf.reduce_sum(negative_loss, axis=1)               # [B]
