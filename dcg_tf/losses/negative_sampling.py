"""Binary cross-entropy with sampled negatives (negative sampling).

PCL-AISL (CIKM'22) Eq. (1): BCE on sigmoid(s(ue, ie)) with label 1 for the
clicked item and 0 for sampled ones; Mikolov et al. (NeurIPS'13) negative
sampling; CLRec (KDD'21) appendix B.3 "negative sampling" (negatives [B, S, D],
drawn per example) and "shared negative sampling" (negatives [S, D] shared by
the batch, Ying et al., KDD'18).
"""

import tensorflow as tf


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
  positive_logits = tf.reduce_sum(query * positive, axis=-1) / temperature  # [B]
  if negatives.shape.rank == 3:
    negative_logits = tf.einsum("bd,bsd->bs", query, negatives) / temperature  # [B, S]
  elif negatives.shape.rank == 2:
    negative_logits = tf.matmul(query, negatives, transpose_b=True) / temperature  # [B, S]
  else:
    raise ValueError("negative_sampling_bce: negatives must be [B, S, D] or "
                     "[S, D], got shape %s" % negatives.shape)
  positive_loss = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.ones_like(positive_logits), logits=positive_logits)          # [B]
  negative_loss = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.zeros_like(negative_logits), logits=negative_logits)         # [B, S]
  if positive_ids is not None:
    negative_ids = tf.convert_to_tensor(negative_ids)
    if negative_ids.shape.rank == 1:
      negative_ids = negative_ids[None, :]                                   # [1, S]
    hit = tf.equal(tf.convert_to_tensor(positive_ids)[:, None], negative_ids)  # [B, S]
    negative_loss = tf.where(hit, 0.0, negative_loss)                        # [B, S]
  return positive_loss + tf.reduce_sum(negative_loss, axis=1)               # [B]
