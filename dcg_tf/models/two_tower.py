"""The two-tower baseline: a user tower against an item tower, in-batch softmax."""

import tensorflow as tf

from dcg_tf.losses import corrections
from dcg_tf.losses import cross_replica
from dcg_tf.losses.in_batch_softmax import in_batch_softmax
from dcg_tf.models.base import RetrievalModel


class TwoTowerModel(RetrievalModel):
  """User tower vs item tower trained with the in-batch softmax.

  The loss is `dcg_tf.losses.in_batch_softmax` (PCL-AISL / SSL-CFM Eq. 6; tfrs
  `tasks.Retrieval`): logits `<u_i, v_j> / temperature`, minus `log q(v_j)` when
  `logq_correction` (items enter a batch with probability ~ their training
  frequency), with accidental hits (the same item elsewhere in the batch)
  removed when `remove_accidental_hits`. Under a `tf.distribute` strategy
  with `cross_replica_negatives`, each replica's queries score the candidates
  of the whole global batch (ids and log-Q with them), as on one device.

  Args:
    user_tower, item_tower: the towers (see `build_towers`).
    log_item_probability: float32 [N+1] log sampling probabilities.
    temperature: softmax temperature.
    logq_correction: subtract log q of each candidate.
    remove_accidental_hits: mask duplicates of the positive among negatives.
  """

  def __init__(self, user_tower, item_tower, log_item_probability=None,
               temperature=0.1, logq_correction=True, remove_accidental_hits=True,
               all_positions=False, **kwargs):
    super().__init__(user_tower, item_tower, all_positions=all_positions, **kwargs)
    self.temperature = temperature
    self.logq_correction = logq_correction
    self.remove_accidental_hits = remove_accidental_hits
    self._log_q = (None if log_item_probability is None else
                   tf.constant(log_item_probability, tf.float32))

  def encode_candidates(self, item_ids, training=False):
    """The item tower on the positives of the main loss: `[P] -> [P, D]`.

    A hook for models that change the candidates' input (SSL-CFM's feature
    dropout baseline augments them while training); default the plain tower.
    """
    return self.item_tower(item_ids, training=training)

  def compute_loss(self, inputs, training=False):
    query, target = self.queries_and_targets(inputs, training)  # [P, D], [P]
    candidates = self.encode_candidates(target, training)          # [P, D]
    gathered = self.gather_negatives(candidates)
    if gathered is not candidates:
      # Under a strategy: every replica's rows are candidates, this
      # replica's first (its positives stay column i of row i).
      if self.all_positions:
        raise ValueError(
            "TwoTowerModel: all_positions has a different number of positions "
            "per replica, which cross-replica negatives do not support yet; "
            "train it with --negatives=replica or on one device")
      candidates = cross_replica.local_first(candidates, gathered)  # [G, D]
      target = cross_replica.local_first(
          target, cross_replica.all_gather(target))                 # [G]
    probability = None
    if self.logq_correction and self._log_q is not None:
      probability = tf.exp(tf.gather(self._log_q, target))         # [P]
    loss, logits, _ = in_batch_softmax(
        query, candidates, temperature=self.temperature,
        candidate_sampling_probability=probability,
        candidate_ids=target if self.remove_accidental_hits else None,
        return_logits=True)                                        # [P], [P, P]
    return {"loss": tf.reduce_mean(loss),
            "negatives_per_row": tf.reduce_mean(
                corrections.unmasked_negatives(logits))}
