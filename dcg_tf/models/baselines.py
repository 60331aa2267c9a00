"""Baselines of CLRec's comparisons in the same harness (appendix B.3).

CLRec (Zhou et al., KDD'21): sampled softmax with log-Q correction (Eq. 2),
negative sampling with a degree^0.75 proposal and binary cross-entropy (per
example, or shared by the batch), and the IPW loss (Eq. 4). Negatives are
drawn with the alias method over the whole vocabulary and their features are
encoded by the item tower at every step (what CLRec's queue avoids, Table 5).
All use cosine similarity with a temperature, like CLRec, so that a comparison
changes only the loss.
"""

import numpy as np
import tensorflow as tf

from dcg_tf.training_state.samplers import AliasSampler
from dcg_tf.losses import corrections
from dcg_tf.losses.ipw import ipw
from dcg_tf.losses.negative_sampling import negative_sampling_bce
from dcg_tf.losses.sampled_softmax import sampled_softmax
from dcg_tf.models.base import RetrievalModel


def _check_proposal(probabilities, name):
  p = np.asarray(probabilities, dtype=np.float64)
  if p.ndim != 1 or p.size < 2:
    raise ValueError("%s: the proposal must be [N+1] over item ids, got shape %s"
                     % (name, p.shape))
  if p[0] != 0:
    raise ValueError("%s: the proposal gives padding item 0 probability %r; "
                     "it must be 0" % (name, p[0]))
  return p


class _SampledNegativesModel(RetrievalModel):
  """Shared parts: the alias sampler, its generator, cosine embeddings."""

  def __init__(self, user_tower, item_tower, proposal, num_negatives,
               temperature, seed, **kwargs):
    super().__init__(user_tower, item_tower, **kwargs)
    self.num_negatives = int(num_negatives)
    self.temperature = float(temperature)
    self.seed = int(seed)
    p = _check_proposal(proposal, type(self).__name__)
    self.sampler = AliasSampler(p, name="proposal")
    self.generator = tf.random.Generator.from_seed(self.seed)

  def _embed(self, inputs, training):
    query, target = self.queries_and_targets(inputs, training)           # [P, D], [P]
    query = tf.math.l2_normalize(query, -1)
    positive = tf.math.l2_normalize(self.item_tower(target, training=training), -1)
    return target, query, positive                                       # [B, D]

  def _encode(self, ids, training):
    """Encodes sampled ids (each distinct id once): [...] -> [..., D]."""
    flat = tf.reshape(ids, [-1])                                         # [S]
    unique, index = tf.unique(flat)                                      # [U], [S]
    encoded = tf.math.l2_normalize(self.item_tower(unique, training=training), -1)
    gathered = tf.gather(encoded, index)                                 # [S, D]
    return tf.reshape(gathered, tf.concat([tf.shape(ids), [-1]], 0))     # [..., D]


class SampledSoftmaxModel(_SampledNegativesModel):
  """Sampled softmax with log-Q correction, CLRec Eq. 2.

  Each step draws `num_negatives` ids (shared by the batch) from `proposal`
  (the popularity distribution; CLRec B.3: as many as CLRec's queue) and
  encodes them with the item tower; accidental hits are removed. Metric
  "negatives_per_row": every row sees the L draws minus those equal to its
  positive (one query per example or every position alike).

  Args:
    user_tower, item_tower: as in `RetrievalModel`.
    proposal: float [N+1] p_n(y) with p[0] = 0, e.g. `samplers.unigram(count)`.
    num_negatives: L (2,560).
    temperature: of the cosine similarity (0.07).
    seed: of the negative sampler's generator.
  """

  def __init__(self, user_tower, item_tower, proposal, num_negatives=2560,
               temperature=0.07, seed=0, **kwargs):
    super().__init__(user_tower, item_tower, proposal, num_negatives,
                     temperature, seed, **kwargs)

  def negative_log_likelihood(self, inputs, training):
    """(-log p_theta(y | x) [B], target [B], negatives_per_row [B]) of Eq. 2."""
    target, query, positive = self._embed(inputs, training)
    ids, q = self.sampler.sample(self.num_negatives, generator=self.generator)
    negatives = self._encode(ids, training)                              # [L, D]
    nll, logits, _ = sampled_softmax(
        query, positive, negatives,
        positive_log_q=tf.math.log(self.sampler.probability(target)),
        negative_log_q=tf.math.log(q), temperature=self.temperature,
        positive_ids=target, negative_ids=ids, return_logits=True)      # [B], [B, 1+L]
    return nll, target, corrections.unmasked_negatives(logits)

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    loss, _, negatives = self.negative_log_likelihood(inputs, training)
    return {"loss": tf.reduce_mean(loss),
            "negatives_per_row": tf.reduce_mean(negatives)}


class IPWModel(SampledSoftmaxModel):
  """IPW loss, CLRec Eq. 4: -(1 / q(y)) log p_theta(y | x).

  log p_theta(y | x) is approximated by the log-Q corrected sampled softmax
  (Eq. 2, whose optimum is the full softmax of Eq. 1); q(y) is the separately
  fitted propensity (`dcg_tf.losses.ipw.fit_popularity_propensity`, MLE from
  training counts). Weights are clipped (q >= `min_propensity`) and
  self-normalised to batch mean 1.

  Args:
    propensity: float [N+1] q(y), row 0 unused.
    proposal, num_negatives, temperature, seed: as `SampledSoftmaxModel`.
    min_propensity: floor of q.
  """

  def __init__(self, user_tower, item_tower, propensity, proposal,
               num_negatives=2560, temperature=0.07, min_propensity=1e-6,
               self_normalize=True, seed=0, **kwargs):
    super().__init__(user_tower, item_tower, proposal, num_negatives,
                     temperature, seed, **kwargs)
    propensity = np.asarray(propensity, dtype=np.float32)
    if propensity.shape != (self.sampler.size,):
      raise ValueError("IPWModel: propensity must be [N+1] = [%d], got %s"
                       % (self.sampler.size, propensity.shape))
    self.propensity = tf.Variable(propensity, trainable=False, name="propensity")
    self.min_propensity = float(min_propensity)
    self.self_normalize = bool(self_normalize)

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    nll, target, negatives = self.negative_log_likelihood(inputs, training)  # [B]
    loss = ipw(nll, tf.gather(self.propensity, target),
               self.min_propensity, self.self_normalize)                 # [B]
    return {"loss": tf.reduce_mean(loss), "nll": tf.reduce_mean(nll),
            "negatives_per_row": tf.reduce_mean(negatives)}


class NegativeSamplingModel(_SampledNegativesModel):
  """Negative sampling with binary cross-entropy (CLRec appendix B.3).

  `shared=False`: `num_negatives` ids per example ([B, L]); `shared=True`
  (shared negative sampling): one set of L ids for the whole batch. The
  proposal is degree^0.75 (`samplers.unigram(item_count, power=0.75)`).
  Each distinct sampled id is encoded once per step.

  Args:
    user_tower, item_tower: as in `RetrievalModel`.
    proposal: float [N+1], p[0] = 0.
    num_negatives: L.
    shared: share the negatives across the batch.
    temperature: of the cosine similarity.
    seed: of the sampler's generator.
  """

  def __init__(self, user_tower, item_tower, proposal, num_negatives=2560,
               shared=False, temperature=0.07, seed=0, **kwargs):
    super().__init__(user_tower, item_tower, proposal, num_negatives,
                     temperature, seed, **kwargs)
    self.shared = bool(shared)

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    target, query, positive = self._embed(inputs, training)
    if self.shared:
      ids, _ = self.sampler.sample(self.num_negatives, generator=self.generator)
    else:
      batch = tf.shape(target)[0]
      ids, _ = self.sampler.sample(batch * self.num_negatives,
                                   generator=self.generator)
      ids = tf.reshape(ids, [batch, self.num_negatives])                 # [B, L]
    negatives = self._encode(ids, training)                              # [(B,) L, D]
    loss = negative_sampling_bce(query, positive, negatives,
                                 temperature=self.temperature,
                                 positive_ids=target, negative_ids=ids)  # [B]
    return {"loss": tf.reduce_mean(loss)}
