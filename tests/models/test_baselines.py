"""Baselines of CLRec appendix B.3 vs NumPy: sampled softmax, NS, shared NS, IPW."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from dcg_tf.training_state.samplers import unigram
from dcg_tf.losses.ipw import fit_popularity_propensity
from dcg_tf.models.baselines import IPWModel, NegativeSamplingModel, SampledSoftmaxModel

NUM_ITEMS = 10
COUNTS = np.array([0, 9, 7, 5, 4, 3, 2, 2, 1, 1, 0])
BATCH = {
    "history": tf.constant([[1, 2, 0], [3, 0, 0], [4, 5, 6], [2, 0, 0]], tf.int64),
    "history_mask": tf.constant([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]]) > 0,
    "target": tf.constant([3, 1, 7, 3], tf.int64),
}


def _towers():
  tf.random.set_seed(0)
  embedding = ItemEmbedding(num_items=NUM_ITEMS, dim=6, combine="sum")
  return (MeanPoolingUserTower(embedding, hidden_units=[], output_dim=6,
                               l2_normalize=True),
          ItemTower(embedding, l2_normalize=True))


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _draw(model, num):
  model.generator.reset_from_seed(model.seed)
  ids, q = model.sampler.sample(num, generator=model.generator)
  model.generator.reset_from_seed(model.seed)
  return ids.numpy(), q.numpy()


def _sampled_softmax_numpy(model, ids, t=0.07):
  """Eq. 2 per row: logits s/T - log q, accidental hits removed."""
  q = _unit(model.user_tower(BATCH).numpy())
  p = _unit(model.item_tower(BATCH["target"]).numpy())
  n = _unit(model.item_tower(tf.constant(ids)).numpy())
  proposal = COUNTS / COUNTS.sum()
  target = BATCH["target"].numpy()
  out = []
  for b in range(len(q)):
    pos = q[b] @ p[b] / t - np.log(proposal[target[b]])
    neg = [q[b] @ n[i] / t - np.log(proposal[ids[i]])
           for i in range(len(ids)) if ids[i] != target[b]]
    out.append(np.log(np.exp(pos) + np.exp(neg).sum()) - pos)
  return np.array(out)


def test_sampled_softmax_matches_eq2_numpy():
  model = SampledSoftmaxModel(*_towers(), proposal=unigram(COUNTS), num_negatives=16)
  ids, q = _draw(model, 16)
  np.testing.assert_allclose(q, (COUNTS / COUNTS.sum())[ids], rtol=1e-5)
  loss = model.compute_loss(BATCH, training=True)["loss"].numpy()
  np.testing.assert_allclose(loss, _sampled_softmax_numpy(model, ids).mean(),
                             rtol=1e-4)


def test_ipw_weights_the_sampled_softmax_nll():
  propensity = fit_popularity_propensity(COUNTS, smoothing=1.0)
  model = IPWModel(*_towers(), propensity=propensity, proposal=unigram(COUNTS),
                   num_negatives=16)
  ids, _ = _draw(model, 16)
  out = model.compute_loss(BATCH, training=True)
  nll = _sampled_softmax_numpy(model, ids)
  w = 1.0 / propensity[BATCH["target"].numpy()]
  w = w / w.mean()
  np.testing.assert_allclose(out["nll"].numpy(), nll.mean(), rtol=1e-4)
  np.testing.assert_allclose(out["loss"].numpy(), (w * nll).mean(), rtol=1e-4)


@pytest.mark.parametrize("shared", [False, True])
def test_negative_sampling_bce_matches_numpy(shared):
  proposal = unigram(COUNTS, power=0.75)
  model = NegativeSamplingModel(*_towers(), proposal=proposal, num_negatives=5,
                                shared=shared)
  ids, _ = _draw(model, 5 if shared else 4 * 5)
  ids = ids if shared else ids.reshape(4, 5)
  loss = model.compute_loss(BATCH, training=True)["loss"].numpy()
  q = _unit(model.user_tower(BATCH).numpy())
  p = _unit(model.item_tower(BATCH["target"]).numpy())
  target = BATCH["target"].numpy()
  def log_sigmoid(x):
    return -np.log1p(np.exp(-x))
  want = []
  for b in range(4):
    row = ids if shared else ids[b]
    n = _unit(model.item_tower(tf.constant(row)).numpy())
    s_pos = q[b] @ p[b] / 0.07
    s_neg = n @ q[b] / 0.07
    want.append(-log_sigmoid(s_pos)
                - sum(log_sigmoid(-s) for s, i in zip(s_neg, row) if i != target[b]))
  np.testing.assert_allclose(loss, np.mean(want), rtol=1e-4)


def test_degree_proposal_never_draws_padding_or_unseen_items():
  model = NegativeSamplingModel(*_towers(), proposal=unigram(COUNTS, 0.75),
                                num_negatives=2000, shared=True)
  ids, q = _draw(model, 2000)
  assert not np.isin(ids, [0, 10]).any()
  # Item 1 has degree 9: p = 9^.75 / sum_i c_i^.75.
  p1 = 9 ** 0.75 / np.sum(COUNTS[1:] ** 0.75)
  freq = np.mean(ids == 1)
  assert abs(freq - p1) < 4 * np.sqrt(p1 * (1 - p1) / 2000)


def test_training_reduces_sampled_softmax_loss_and_item_gradients_are_sparse():
  model = SampledSoftmaxModel(*_towers(), proposal=unigram(COUNTS), num_negatives=8)
  with tf.GradientTape() as tape:
    loss = model.compute_loss(BATCH, training=True)["loss"]
  table = model.item_tower.item_embedding.id_embedding.trainable_weights[0]
  assert isinstance(tape.gradient(loss, table), tf.IndexedSlices)
  model.compile(optimizer=keras.optimizers.Adam(0.05))
  # Evaluate on the full softmax over all items (independent of the sampler).
  def full_softmax_loss():
    q = _unit(model.user_tower(BATCH).numpy())
    items = _unit(model.item_tower(tf.range(1, NUM_ITEMS + 1)).numpy())
    logits = q @ items.T / 0.07
    target = BATCH["target"].numpy() - 1
    log_z = np.log(np.exp(logits).sum(1))
    return np.mean(log_z - logits[np.arange(4), target])
  start = full_softmax_loss()
  model.fit(tf.data.Dataset.from_tensors(BATCH).repeat(30), verbose=0)
  assert full_softmax_loss() < start - 0.1


def test_rejects_proposal_with_padding_mass():
  with pytest.raises(ValueError, match="padding item 0"):
    SampledSoftmaxModel(*_towers(), proposal=np.ones(NUM_ITEMS + 1))
