"""Multi-CLRec losses: Eq. 10-13 of the CLRec paper (Zhou et al., KDD'21).

Pure functions of embeddings and routing probabilities. `multi_queue_contrastive`
(Eq. 13), `intention_polarization_loss` (Eq. 10) and `intention_target_loss`
(Eq. 11) return a per-example loss [B]; `intention_balance_loss` (Eq. 12) is a
batch-level scalar (its pi_h is a batch mean). Temperature, accidental-hit
removal and invalid-slot masking are those of `dcg_tf.losses.corrections`.
"""

import tensorflow as tf

from dcg_tf.layers.fan_out import fan_out
from dcg_tf.losses import corrections


def _cosine_logits(queries, keys, temperature, equation):
  """cos(a, b) / rho for the pairs given by the einsum `equation`."""
  queries = tf.math.l2_normalize(queries, axis=-1)
  keys = tf.math.l2_normalize(keys, axis=-1)
  return corrections.apply_temperature(tf.einsum(equation, queries, keys),
                                       temperature)


def intention_polarization_loss(target_routing_logits):
  """Eq. 10: L_aux,1 = -log p_{h+|T}, h+ = argmax_h p_{h|T}.

  Args:
    target_routing_logits: p'_{h|T} of Eq. 7 for the target item's category,
      float [B, H] (logits, for a stable log-softmax).

  Returns:
    float [B].
  """
  log_p = tf.nn.log_softmax(target_routing_logits, axis=-1)       # [B, H]
  return -tf.reduce_max(log_p, axis=-1)                           # [B]


def intention_target_loss(intentions, positive, target_intention,
                          temperature=0.07):
  """Eq. 11: -log softmax_h(s_{h,T})[h+], s_{h,T} = cos(z_h, g(y_T)) / rho.

  Args:
    intentions: z_h, float [B, H, D].
    positive: g(y_T), float [B, D].
    target_intention: h+ = argmax_h p_{h|T}, int [B].
    temperature: rho.

  Returns:
    float [B].
  """
  s = _cosine_logits(intentions, positive, temperature, "bhd,bd->bh")  # [B, H]
  log_p = tf.nn.log_softmax(s, axis=-1)                           # [B, H]
  return -tf.gather(log_p, tf.cast(target_intention, tf.int32), axis=1,
                    batch_dims=1)                                 # [B]


def intention_balance_loss(routing, mask=None):
  """Eq. 12: sum_h (1/H)(log(1/H) - log pi_h), pi_h = E_batch[p_{h|t}].

  This is KL(uniform || pi): zero when the batch's items are spread evenly
  over the H intentions.

  Args:
    routing: p_{h|t} of the batch's items, float [..., H].
    mask: optional bool [...], False for padding items.

  Returns:
    a scalar.
  """
  num_intentions = tf.shape(routing)[-1]
  routing = tf.reshape(routing, [-1, num_intentions])             # [N, H]
  if mask is None:
    weights = tf.ones_like(routing[:, 0])                         # [N]
  else:
    weights = tf.cast(tf.reshape(mask, [-1]), routing.dtype)      # [N]
  pi = (tf.reduce_sum(routing * weights[:, None], axis=0)
        / tf.maximum(tf.reduce_sum(weights), 1.0))                # [H]
  uniform = 1.0 / tf.cast(num_intentions, routing.dtype)
  return tf.reduce_sum(uniform * (tf.math.log(uniform)
                                  - tf.math.log(pi + 1e-12)))


def _masked_negative_logits(logits, valid, ids, positive_ids):
  """Removes accidental hits, then invalid slots, of logits [B, H, Q].

  Args:
    logits: float [B, H, Q].
    valid: bool [Q] (shared queue) or [B, Q] (per-row queue).
    ids: int [Q] or [B, Q], or None.
    positive_ids: int64 [B], or None.
  """
  hits = None
  if ids is not None and positive_ids is not None:
    hits = corrections.accidental_hits(positive_ids, ids)[:, None, :]  # [B, 1, Q]
  valid = tf.cast(valid, tf.bool)
  valid = valid[None, None, :] if valid.shape.rank == 1 else valid[:, None, :]
  return corrections.correct_logits(logits, hits=hits, valid=valid)   # [B, H, Q]


def multi_queue_contrastive(intentions, positive, selection, main_negatives,
                            main_valid, secondary_negatives, secondary_valid,
                            temperature=0.07, positive_ids=None, main_ids=None,
                            secondary_ids=None):
  """Eq. 13, the multi-queue contrastive loss of Multi-CLRec.

    L_cl = -log sum_h tilde w_h exp(cos(z_h, g(y_T))/rho)
           / sum_{h'} sum_{y' in Q_0 ∪ Q_{h+}} exp(cos(z_{h'}, g(y'))/rho).

  The positive y_T has been enqueued into Q_0 before the loss (update rule 1),
  so the denominator holds it once, computed from `positive` (with gradient);
  queued copies of the same item (same id) are accidental hits and are left
  out, as are invalid (never written) slots. A queue whose slots are all left
  out (e.g. an empty Q_{h+} early in training) adds exactly 0 to the
  denominator: its log-sum-exp is about `MASKED_LOGIT`. Q_0 is shared by the batch, so it
  is passed once; Q_{h+} differs per example.

  Args:
    intentions: z_h, float [B, H, D].
    positive: g(y_T), float [B, D].
    selection: tilde w, float [B, H] (straight-through one-hot of Eq. 9).
    main_negatives: g(y') for y' in Q_0, float [Q0, D].
    main_valid: bool [Q0].
    secondary_negatives: g(y') for y' in Q_{h+} of each example, [B, Qs, D].
    secondary_valid: bool [B, Qs].
    temperature: rho.
    positive_ids: item ids of the positives, int [B] (optional: with the
      queue ids, enables accidental-hit removal).
    main_ids: int [Q0].
    secondary_ids: int [B, Qs].

  Returns:
    float [B].
  """
  # One copy of z per use, gradients summed in a fixed order (bitwise
  # reproducible training, dcg_tf.layers.fan_out).
  z_positive, z_main, z_secondary = fan_out(intentions, 3)
  positive_logits = _cosine_logits(z_positive, positive, temperature,
                                   "bhd,bd->bh")                  # [B, H]
  main_logits = _cosine_logits(z_main, main_negatives, temperature,
                               "bhd,qd->bhq")                     # [B, H, Q0]
  main_logits = _masked_negative_logits(main_logits, main_valid, main_ids,
                                        positive_ids)             # [B, H, Q0]
  secondary_logits = _cosine_logits(z_secondary, secondary_negatives,
                                    temperature, "bhd,bqd->bhq")  # [B, H, Qs]
  secondary_logits = _masked_negative_logits(
      secondary_logits, secondary_valid, secondary_ids,
      positive_ids)                                               # [B, H, Qs]
  log_denominator = tf.reduce_logsumexp(tf.stack([
      tf.reduce_logsumexp(positive_logits, axis=1),
      tf.reduce_logsumexp(main_logits, axis=[1, 2]),
      tf.reduce_logsumexp(secondary_logits, axis=[1, 2])], axis=1), axis=1)  # [B]
  # log sum_h tilde w_h exp(s_h), shifted by max_h s_h for stability; the
  # forward value of tilde w is one-hot, its gradient is that of w (Eq. 9).
  shift = tf.stop_gradient(tf.reduce_max(positive_logits, axis=1))  # [B]
  numerator = tf.reduce_sum(
      selection * tf.exp(positive_logits - shift[:, None]), axis=1)  # [B]
  log_numerator = tf.math.log(numerator + 1e-30) + shift          # [B]
  return log_denominator - log_numerator
