"""PCL-AISL's prototype-based contrastive loss (Eq. 12) with per-cluster temperatures.

Li et al., "Prototypical Contrastive Learning and Adaptive Interest Selection
for Candidate Generation in Recommendations" (CIKM'22), section 2.3.2:

  L_p = -1/B sum_x log( exp(s(e_x, c_x)/tau_{c_x})
                        / (exp(s(e_x, c_x)/tau_{c_x}) + sum_{j in [r]} exp(s(e_x, c_j)/tau_{c_j})) )

with c_x the prototype (k-means centroid of the key encoder's outputs) of
item x's cluster, c_j r prototypes of other clusters, tau_c the temperature of
cluster c (Eq. 13, `dcg_tf.training_state.prototypes.cluster_temperatures`)
and s the cosine similarity. Each logit is divided by the temperature of the
prototype it scores (ProtoNCE, Li et al., ICLR'21, Eq. 6). e_x is the query
encoder's (item tower's) output.

L_self (Eq. 11) is the in-batch InfoNCE between the query and the stop-gradient
keys of the batch's items, `dcg_tf.losses.ssl_contrastive.ssl_contrastive`.
"""

import tensorflow as tf

from dcg_tf.losses import corrections


def prototypical_contrastive(queries, prototypes, temperatures, clusters,
                             negative_clusters, negative_valid=None):
  """Per-item L_p of Eq. 12.

  Args:
    queries: float [B, D], e_x (normalised here: s is the cosine).
    prototypes: float [C, D], the centroids c (normalised here).
    temperatures: float [C], tau_c of Eq. 13.
    clusters: int [B], the cluster of each item (its positive prototype).
    negative_clusters: int [B, r], r prototypes of other clusters per item.
    negative_valid: optional bool [B, r]; False entries are removed
      (`dcg_tf.losses.corrections.mask_invalid`).

  Returns:
    float32 [B] (the caller averages: L_p is the mean).

  Example:
    >>> loss = tf.reduce_mean(prototypical_contrastive(
    ...     q, prototypes, taus, clusters, negatives))
  """
  q = tf.math.l2_normalize(tf.convert_to_tensor(queries, tf.float32), -1)
  c = tf.math.l2_normalize(tf.convert_to_tensor(prototypes, tf.float32), -1)
  tau = tf.convert_to_tensor(temperatures, tf.float32)            # [C]
  clusters = tf.cast(clusters, tf.int64)                          # [B]
  negative_clusters = tf.cast(negative_clusters, tf.int64)        # [B, r]
  positive = tf.reduce_sum(q * tf.gather(c, clusters), -1)        # [B]
  positive = positive / tf.gather(tau, clusters)                  # [B]
  negative = tf.einsum("bd,brd->br", q,
                       tf.gather(c, negative_clusters))           # [B, r]
  negative = negative / tf.gather(tau, negative_clusters)         # [B, r]
  if negative_valid is not None:
    negative = corrections.mask_invalid(
        negative, tf.convert_to_tensor(negative_valid, tf.bool))   # [B, r]
  logits = tf.concat([positive[:, None], negative], axis=1)       # [B, 1 + r]
  return -tf.nn.log_softmax(logits, axis=-1)[:, 0]                # [B]
