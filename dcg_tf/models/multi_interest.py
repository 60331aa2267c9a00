"""Multi-interest training model: Eq. 1 of PCL-AISL over K (or K_u) interests.

PCL-AISL (Li et al., CIKM'22), Eq. 1: binary cross-entropy on
y_hat = sigmoid(s(ue, ie)) with s the cosine similarity, label 1 for the
clicked item and 0 for sampled negatives. MIND (CIKM'19), ComiRec-SA and
ComiRec-DR (KDD'20) train the same way here (their towers differ), so the
rows of Table 1 differ only in the user tower.
"""

import tensorflow as tf

from dcg_tf.losses import corrections
from dcg_tf.losses.negative_sampling import negative_sampling_bce_from_scores
from dcg_tf.models.baselines import _check_proposal
from dcg_tf.models.base import RetrievalModel
from dcg_tf.towers import multi_interest
from dcg_tf.training_state.samplers import AliasSampler

REDUCTIONS = ("max", "hard", "label_aware")


class MultiInterestModel(RetrievalModel):
  """Eq. 1 BCE with sampled negatives for a multi-interest user tower.

  Each step: the tower's interests v_k [B, K, D] with the active mask and
  AISL's straight-through s_u (`interests()`, all ones without AISL); the
  target and `num_negatives` negatives per example drawn from `proposal`
  (alias sampler, generator checkpointed), encoded by the item tower.
  The paper is silent on how K interests give one score s(ue, ie); the
  `reduction` (cos_k(i) = cosine of interest k and item i):
    "max": s(u, i) = max_k over active k of s_k (1 + cos_k(i)) - 1, i.e. the
      maximum cosine over the active interests, as retrieval scores
      (`dcg_tf.evaluation.topk`); every candidate, negatives included, takes
      its own maximum, so an extra active interest also raises negative
      scores: the cost that lets AISL learn K_u < K. The shift by 1 makes an
      inactive slot (s_k = 0) score -1, never above an active one, and gives
      s_k the gradient 1 + cos_k >= 0 (Eq. 6 carries it to the AISL MLP).
    "hard": the interest most similar to the positive (label-aware hard
      readout: ComiRec's training, and MIND with p -> infinity) scores every
      candidate: s(u, i) = s_k* cos_k*(i).
    "label_aware": MIND's label-aware attention weights w (the tower's
      `select_for_target`, power p) mix the cosines:
      s(u, i) = sum_k w_k s_k cos_k(i) / sum_k w_k s_k. (MIND mixes the
      vectors and takes an inner product; mixing cosines keeps s a cosine.)
  Loss per example: -log sig(s+/T) - sum_j log(1 - sig(s_j/T)) over the S
  negatives (word2vec's sum), accidental hits removed; Eq. 1's batch mean.
  The paper's sigmoid(cos) has T = 1, where y_hat cannot leave
  [0.27, 0.73]; `temperature` is a parameter.

  Metrics: "main_loss" (Eq. 1) and "num_interests", the batch mean of K_u
  (AINPU on training users).

  Args:
    user_tower: a multi-interest tower with `interests` (and
      `select_for_target` for "hard"/"label_aware"), e.g.
      `MultiInterestUserTower`.
    item_tower: item ids int64 [B] -> [B, D].
    proposal: float [N+1], the negatives' distribution, p[0] = 0.
    num_negatives: S per example.
    temperature: T.
    reduction: "max" | "hard" | "label_aware".
    seed: of the sampler's generator.
  """

  def __init__(self, user_tower, item_tower, proposal, num_negatives=10,
               temperature=0.1, reduction="max", seed=0, **kwargs):
    super().__init__(user_tower, item_tower, **kwargs)
    if not multi_interest.is_multi_interest(user_tower):
      raise ValueError("MultiInterestModel: the user tower %s is not "
                       "multi-interest" % type(user_tower).__name__)
    if reduction not in REDUCTIONS:
      raise ValueError("MultiInterestModel: reduction must be one of %s, got %r"
                       % (REDUCTIONS, reduction))
    self.num_negatives = int(num_negatives)
    self.temperature = float(temperature)
    self.reduction = reduction
    self.seed = int(seed)
    self.sampler = AliasSampler(_check_proposal(proposal, type(self).__name__),
                                name="proposal")
    self.generator = tf.random.Generator.from_seed(self.seed)

  def encode_items(self, ids, training):
    """Unit item vectors of ids [...] (each distinct id encoded once): [..., D]."""
    flat = tf.reshape(ids, [-1])                                  # [S]
    unique, index = tf.unique(flat)                               # [U], [S]
    encoded = tf.math.l2_normalize(self.item_tower(unique, training=training), -1)
    gathered = tf.gather(encoded, index)                          # [S, D]
    return tf.reshape(gathered, tf.concat([tf.shape(ids), [-1]], 0))  # [..., D]

  def interest_scores(self, user, positive, candidates):
    """s(u, i) of the candidates: float [B, C] (`reduction`).

    Args:
      user: the tower's `interests()` dict.
      positive: unit target vectors [B, D] (chooses the interest for
        "hard" / "label_aware").
      candidates: unit item vectors [B, C, D].
    """
    vectors = tf.math.l2_normalize(user["vectors"], -1)           # [B, K, D]
    cosine = tf.einsum("bkd,bcd->bck", vectors, candidates)       # [B, C, K]
    s = tf.cast(user["selection_mask"], cosine.dtype)[:, None, :]  # [B, 1, K]
    active = tf.cast(user["mask"], tf.bool)[:, None, :]           # [B, 1, K]
    if self.reduction == "max":
      shifted = tf.where(active, s * (1.0 + cosine), tf.zeros_like(cosine))
      return tf.reduce_max(shifted, axis=-1) - 1.0                # [B, C]
    weights = multi_interest.target_selection(
        self.user_tower, user, positive)                          # [B, K]
    if self.reduction == "hard":
      weights = tf.one_hot(tf.argmax(weights, axis=-1), tf.shape(weights)[-1],
                           dtype=weights.dtype)                   # [B, K]
    weights = weights[:, None, :] * s                             # [B, 1, K]
    total = tf.reduce_sum(weights, axis=-1)                       # [B, 1]
    return tf.reduce_sum(weights * cosine, axis=-1) / total       # [B, C]

  def main_loss(self, inputs, training):
    """(Eq. 1 per example [B], the tower's interests dict, unit targets [B, D])."""
    user = self.user_tower.interests(inputs, training=training)
    target = tf.cast(inputs["target"], tf.int64)                  # [B]
    batch = tf.shape(target)[0]
    ids, _ = self.sampler.sample(batch * self.num_negatives,
                                 generator=self.generator)
    ids = tf.reshape(ids, [batch, self.num_negatives])            # [B, S]
    candidates = self.encode_items(tf.concat([target[:, None], ids], 1),
                                   training)                      # [B, 1 + S, D]
    positive = candidates[:, 0]                                   # [B, D]
    scores = self.interest_scores(user, positive, candidates)     # [B, 1 + S]
    loss = negative_sampling_bce_from_scores(
        scores[:, 0], scores[:, 1:], self.temperature,
        hits=corrections.accidental_hits(target, ids))            # [B]
    return loss, user, positive

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    loss, user, _ = self.main_loss(inputs, training)
    main = tf.reduce_mean(loss)
    return {"loss": main, "main_loss": main,
            "num_interests": tf.reduce_mean(
                tf.cast(user["num_interests"], tf.float32))}
