"""Negatives each row of the Table 8 losses really sees, against hand counts.

The metric "negatives_per_row" of `compute_loss` is the batch mean of the
logits that are not the shared `MASKED_LOGIT`, minus the positive
(`dcg_tf.losses.corrections.unmasked_negatives`). One tiny batch, both
training modes:

  history            next events (all_positions)   target (one query)
  [1, 2, 3]          2, 3, 7                        7
  [4, 2]             2, 8                           8
  [6]                7                              7

One query per example: B = 3 rows, positives [7, 8, 7].
Every position (all_positions): P = 6 rows, positives [2, 3, 7, 2, 8, 7].
"""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower
from dcg_tf.training_state.samplers import unigram
from dcg_tf.losses.ipw import fit_popularity_propensity
from dcg_tf.models.baselines import IPWModel, SampledSoftmaxModel
from dcg_tf.models.clrec import CLRecModel
from dcg_tf.models.two_tower import TwoTowerModel

NUM_ITEMS = 12


def _batch(histories, targets):
  history = np.zeros((len(targets), 4), np.int64)
  for row, items in enumerate(histories):
    history[row, :len(items)] = items
  return {"history": tf.constant(history), "history_mask": tf.constant(history > 0),
          "target": tf.constant(targets, tf.int64)}


BATCH = _batch([[1, 2, 3], [4, 2], [6]], [7, 8, 7])
# Fills CLRec's queue first: its targets [7, 11, 12] become the older entries.
EARLIER = _batch([[5], [9], [10]], [7, 11, 12])
POSITIVES = {False: [7, 8, 7], True: [2, 3, 7, 2, 8, 7]}


def _towers():
  tf.random.set_seed(0)
  embedding = ItemEmbedding(num_items=NUM_ITEMS, dim=8)
  return (SelfAttentionUserTower(embedding, max_len=4, num_blocks=1, dropout=0.0,
                                 l2_normalize=True),
          ItemTower(embedding, l2_normalize=True))


def _count(model, batch=BATCH):
  return float(model.compute_loss(batch, training=True)["negatives_per_row"])


@pytest.mark.parametrize("all_positions,expected", [
    # Row negatives: the batch's other positives minus copies of the row's own.
    # One query: 7 -> {8} = 1, 8 -> {7, 7} = 2, 7 -> {8} = 1.
    (False, (1 + 2 + 1) / 3),
    # Every position: 5 others each; ids 2 and 7 have one copy, 3 and 8 none.
    (True, (4 + 5 + 4 + 4 + 5 + 4) / 6)])
def test_two_tower_in_batch(all_positions, expected):
  model = TwoTowerModel(*_towers(), all_positions=all_positions)
  assert _count(model) == pytest.approx(expected)


@pytest.mark.parametrize("model_class", [SampledSoftmaxModel, IPWModel])
@pytest.mark.parametrize("all_positions", [False, True])
def test_sampled_softmax_and_ipw_see_their_draws(model_class, all_positions):
  # Every row, in both modes, sees the L shared draws minus those equal to its
  # positive; the proposal favours 7 and 2 so that some draws are hits.
  counts = np.array([0, 1, 6, 1, 1, 1, 1, 8, 2, 1, 1, 1, 1])
  kwargs = {"propensity": fit_popularity_propensity(counts)} if model_class is IPWModel else {}
  model = model_class(*_towers(), proposal=unigram(counts), num_negatives=8,
                      all_positions=all_positions, **kwargs)
  model.generator.reset_from_seed(model.seed)
  draws, _ = model.sampler.sample(8, generator=model.generator)
  draws = draws.numpy()
  model.generator.reset_from_seed(model.seed)
  per_row = [8 - int((draws == p).sum()) for p in POSITIVES[all_positions]]
  assert min(per_row) < 8, "the draws should include an accidental hit"
  assert _count(model) == pytest.approx(np.mean(per_row))


# CLRec, raw queue of C = 6 after EARLIER then BATCH: slots [7, 11, 12 | 7, 8,
# 7]; the last three are the present batch (live, not read from the queue), so
# the older entries are 7 (oldest), 11, 12 (newest).
CLREC_CASES = [
    # One query, no cap: B - 1 live others + 3 older, minus copies of the
    # positive. 7: {8} + {11, 12} = 3 (live 7 and queued 7 are hits);
    # 8: {7, 7} + {7, 11, 12} = 5; 7: 3.
    (False, None, (3 + 5 + 3) / 3),
    # One query, cap 4: 2 live others + the 2 newest older entries {12, 11}
    # (the oldest, 7, is dropped). 7: {8} + {11, 12} = 3; 8: {7, 7, 11, 12} = 4.
    (False, 4, (3 + 4 + 3) / 3),
    # Every position, no cap: P - 1 = 5 live others + 3 older = 8 before
    # removal. id 2: 5 - 1 + 3 = 7; id 3: 8; id 7: 5 - 1 + 3 - 1 = 6; id 8: 8.
    (True, None, (7 + 8 + 6 + 7 + 8 + 6) / 6),
    # Every position, cap 7: 5 live others + the 2 newest older {12, 11}.
    # id 2: 4 + 2 = 6; id 3: 7; id 7: 4 + 2 = 6; id 8: 7.
    (True, 7, (6 + 7 + 6 + 6 + 7 + 6) / 6),
    # Every position, cap 3: the first 3 other live columns, no queue entry.
    # row 0 (2): cols 1-3 = 3, 7, 2 -> 2; row 1 (3): 2, 7, 2 -> 3;
    # row 2 (7): 2, 3, 2 -> 3; row 3 (2): 2, 3, 7 -> 2; row 4 (8): 2, 3, 7 -> 3;
    # row 5 (7): 2, 3, 7 -> 2.
    (True, 3, (2 + 3 + 3 + 2 + 3 + 2) / 6),
]


@pytest.mark.parametrize("all_positions,cap,expected", CLREC_CASES)
def test_clrec_queue_and_live_positives(all_positions, cap, expected):
  model = CLRecModel(*_towers(), queue="raw", queue_size=6,
                     all_positions=all_positions, num_negatives=cap)
  model.compute_loss(EARLIER, training=True)
  assert _count(model) == pytest.approx(expected)


def test_cached_queue_counts_like_the_raw_one():
  for cap in (None, 4):
    model = CLRecModel(*_towers(), queue="cached", queue_size=6, num_negatives=cap)
    model.compute_loss(EARLIER, training=True)
    assert _count(model) == pytest.approx(CLREC_CASES[0 if cap is None else 1][2])


def test_a_cap_above_every_candidate_changes_nothing():
  losses, towers = [], _towers()
  for cap in (None, 100):
    model = CLRecModel(*towers, queue="raw", queue_size=6, all_positions=True,
                       num_negatives=cap)
    model.compute_loss(EARLIER, training=True)
    losses.append(model.compute_loss(BATCH, training=True)["loss"].numpy())
  assert losses[0] == losses[1]
