"""The SSL contrastive loss of SSL-CFM (Eq. 3) and spread-out regularisation.

Yao et al., "Self-supervised Learning for Large-scale Item Recommendations"
(CIKM'21), section 3.1, Eq. 3: two augmented views z_i = H(h(x_i)) and
z'_i = G(g(x_i)) of the same N items; each z_i must pick its own z'_i among
the second views of the batch,

  L_self = -1/N sum_i log( exp(s(z_i, z'_i) / tau) / sum_j exp(s(z_i, z'_j) / tau) ),

s the cosine similarity and tau a temperature. That is the in-batch softmax
(`dcg_tf.losses.in_batch_softmax`, whose logits go through
`dcg_tf.losses.corrections`) on l2-normalised views, the negatives being the
other items' second views; no log-Q correction (the items are drawn
uniformly).

Spread-out (section 3.1, "Connection with Spread-out Regularization"; the SO
baseline of section 4.2): Eq. 3 with identity augmentations h = g and the
same encoder H = G, i.e. both views un-augmented, which reduces to
`-1/N sum_i log( exp(1/tau) / (exp(1/tau) + sum_{j != i} exp(s(z_i, z_j)/tau)) )`.
"""

import tensorflow as tf

from dcg_tf.losses.in_batch_softmax import in_batch_softmax


def ssl_contrastive(view_a, view_b, temperature, item_ids=None,
                    return_logits=False):
  """Per-item SSL loss of Eq. 3: view a of item i against the b views.

  Args:
    view_a: float [B, D], z_i (first view, encoder H).
    view_b: float [B, D], z'_i (second view, encoder G); row i is the
      positive of row i of `view_a`, the other rows its negatives.
    temperature: tau.
    item_ids: optional int [B]; when given, the second view of another copy
      of item i in the batch (an accidental hit of the sampler) is removed
      from row i instead of being a negative.
    return_logits: also return `(logits [B, B], labels [B])`.

  Returns:
    float32 [B] (the caller averages: L_self is the mean), or
    `(loss, logits, labels)` with `return_logits`.

  Example:
    >>> loss = tf.reduce_mean(ssl_contrastive(z, z_prime, temperature=0.1))
  """
  z = tf.math.l2_normalize(tf.convert_to_tensor(view_a, tf.float32), axis=-1)
  z_prime = tf.math.l2_normalize(tf.convert_to_tensor(view_b, tf.float32),
                                 axis=-1)                              # [B, D]
  return in_batch_softmax(z, z_prime, temperature=temperature,
                          candidate_ids=item_ids, return_logits=return_logits)


def spread_out(embeddings, temperature, item_ids=None, return_logits=False):
  """Spread-out regulariser (SO): Eq. 3 with both views un-augmented.

  `ssl_contrastive(embeddings, embeddings, ...)`: every item's positive is
  itself (cosine 1), so the loss only pushes different items apart.

  Args:
    embeddings: float [B, D], the plain item embeddings z_i.
    temperature, item_ids, return_logits: as `ssl_contrastive`.

  Returns:
    float32 [B] (or with logits, as `ssl_contrastive`).
  """
  return ssl_contrastive(embeddings, embeddings, temperature, item_ids,
                         return_logits)
