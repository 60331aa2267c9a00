"""MicRec's item contrastive losses (Xie et al., "Multi-granularity Item-based
Contrastive Recommendation", Tencent), Eq. 2-5.

All three tasks score projected item vectors by a dot product divided by a
temperature tau (1 by default, section 5.3) and contrast one positive with
negatives. As written in the paper the denominators hold the NEGATIVES ONLY:

  Eq. 3 (feature level): -log exp(g_f(f_i, f~_i)/tau)
                              / sum_{j in B, j != i} exp(g_f(f_i, f~_j)/tau)
  Eq. 4 (semantic level): -sum_{k in P_i^t} log exp(g_t(d_i, d_k)/tau)
                              / sum_{j in N_i^t} exp(g_t(d_i, d_j)/tau)
  Eq. 5 (session level):  the same with P_i^s, N_i^s and g_s.

So the per-row loss is `logsumexp(negatives) - positive`, which (unlike
InfoNCE) is not bounded below: nothing stops the positive's score from
growing without end. `positive_in_denominator=True` adds each positive to its
own denominator, `logsumexp([positive, negatives]) - positive >= 0`, the
InfoNCE of SimCLR that section 4.1 says MicRec "directly adopts"; the default
follows the equations as printed. A row with no live negative (all masked)
contributes 0 to the "as written" loss (its log-ratio is undefined) and only
its positive term otherwise.

The scores are the caller's projector outputs (`MLP_f`, `MLP_t`, `MLP_s`);
these functions are pure and return a per-anchor loss [B] that the model
averages. Masked logits go through `dcg_tf.losses.corrections`.
"""

import tensorflow as tf

from dcg_tf.layers.masking import MASKED_LOGIT
from dcg_tf.losses import corrections


def _log_ratio(positive_logits, negative_logits, positive_in_denominator):
  """-log(exp(p) / denominator) per positive: [B, P] (masked rows -> 0)."""
  negatives = tf.reduce_logsumexp(negative_logits, axis=-1)          # [B]
  live = tf.reduce_any(
      tf.not_equal(negative_logits, MASKED_LOGIT), axis=-1)          # [B]
  if positive_in_denominator:
    negatives = negatives[:, None]                                   # [B, 1]
    both = tf.stack([positive_logits,
                     tf.broadcast_to(negatives, tf.shape(positive_logits))],
                    axis=-1)                                         # [B, P, 2]
    return tf.reduce_logsumexp(both, axis=-1) - positive_logits      # [B, P]
  ratio = negatives[:, None] - positive_logits                       # [B, P]
  return tf.where(live[:, None], ratio, tf.zeros_like(ratio))        # [B, P]


def feature_contrastive(original, augmented, temperature=1.0, item_ids=None,
                        positive_in_denominator=False):
  """Feature-level item CL, Eq. 3: per item of the batch, a loss [B].

  Row i of `original` is MLP_f(f_i^d) (the projected concatenation of item
  i's field embeddings) and row j of `augmented` is MLP_f(f~_j^d), the
  projection of item j's dropped-out copy (Eq. 2). Item i's positive is its
  own augmentation, its negatives the other items' augmentations
  (N_Bi = {j in B, j != i}).

  Args:
    original: float [B, D], MLP_f(f_i^d).
    augmented: float [B, D], MLP_f(f~_j^d); row i is row i's positive.
    temperature: tau (section 5.3: 1).
    item_ids: optional int [B]; a negative j with the same item id as i (the
      same item twice in a batch) is removed from row i.
    positive_in_denominator: InfoNCE instead of Eq. 3 as written (module doc).

  Returns:
    float32 [B].

  Example:
    >>> loss = tf.reduce_mean(feature_contrastive(mlp_f(f), mlp_f(drop(f))))
  """
  original = tf.convert_to_tensor(original, tf.float32)
  augmented = tf.convert_to_tensor(augmented, tf.float32)
  scores = tf.matmul(original, augmented, transpose_b=True)          # [B, B]
  size = tf.shape(scores)[0]
  diagonal = tf.eye(size, dtype=tf.bool)                             # [B, B]
  valid = tf.logical_not(diagonal)                                   # [B, B]
  hits = None
  if item_ids is not None:
    ids = tf.cast(item_ids, tf.int64)
    hits = corrections.accidental_hits(ids, ids, positive_columns=diagonal)
  logits = corrections.correct_logits(scores, temperature, hits=hits,
                                      valid=valid)                   # [B, B]
  positive = tf.linalg.diag_part(scores)[:, None] / temperature      # [B, 1]
  return tf.reduce_sum(_log_ratio(positive, logits,
                                  positive_in_denominator), axis=-1)  # [B]


def pair_contrastive(anchor, positives, negatives, temperature=1.0,
                     positive_mask=None, negative_mask=None,
                     positive_in_denominator=False):
  """Semantic-level (Eq. 4) and session-level (Eq. 5) item CL: a loss [B].

  `-sum_{k in P_i} log exp(g(d_i, d_k)/tau) / sum_{j in N_i} exp(g(d_i, d_j)/tau)`
  with `g(a, b) = MLP(a)^T MLP(b)`: the inputs are already projected (MLP_t
  for Eq. 4, MLP_s for Eq. 5).

  Args:
    anchor: float [B, D], MLP(d_i).
    positives: float [B, P, D], MLP(d_k) for the sampled k in P_i.
    negatives: float [B, K, D], MLP(d_j) for the sampled j in N_i.
    temperature: tau (section 5.3: 1).
    positive_mask: optional bool [B, P], False where a positive slot is empty
      (an item without any positive: its term is dropped).
    negative_mask: optional bool [B, K], False where a negative slot is empty.
    positive_in_denominator: InfoNCE instead of the equation as written.

  Returns:
    float32 [B], the sum over the row's live positives.

  Example:
    >>> loss = pair_contrastive(mlp_s(d_i), mlp_s(d_k), mlp_s(d_j),
    ...                         positive_mask=pos_ok, negative_mask=neg_ok)
  """
  anchor = tf.convert_to_tensor(anchor, tf.float32)
  positives = tf.convert_to_tensor(positives, tf.float32)
  negatives = tf.convert_to_tensor(negatives, tf.float32)
  positive = tf.einsum("bd,bpd->bp", anchor, positives) / temperature   # [B, P]
  scores = tf.einsum("bd,bkd->bk", anchor, negatives)                   # [B, K]
  logits = corrections.correct_logits(
      scores, temperature,
      valid=None if negative_mask is None else tf.cast(negative_mask, tf.bool))
  terms = _log_ratio(positive, logits, positive_in_denominator)         # [B, P]
  if positive_mask is not None:
    terms = tf.where(tf.cast(positive_mask, tf.bool), terms,
                     tf.zeros_like(terms))                              # [B, P]
  return tf.reduce_sum(terms, axis=-1)                                  # [B]
