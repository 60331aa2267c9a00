"""Positive/negative pair sampling (MicRec Eq. 4-5): weighted positives by
chi-square, negatives outside the positive set, taxonomy pairs, TF-IDF title
neighbours on a hand-built title set, and the stream keyed by (seed, epoch)."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.data import item_pairs
from dcg_tf.data.item_pairs import ItemGraph, SharedValues
from dcg_tf.errors import InputError

# chi-square critical values at p = 0.001 (tables): df 3 -> 16.266, df 2 -> 13.816.
_CHI2_3, _CHI2_2 = 16.266, 13.816


def _chi_square(observed, expected_probability):
  expected = observed.sum() * np.asarray(expected_probability, np.float64)
  return float(((observed - expected) ** 2 / expected).sum())


def _graph():
  # Item 1 co-occurs with 2, 3, 4, 5 with counts 1, 2, 3, 4; item 6 with 7
  # (count 5); items 8..10 with nothing.
  rows = [1, 1, 1, 1, 6]
  cols = [2, 3, 4, 5, 7]
  counts = [1, 2, 3, 4, 5]
  return ItemGraph.from_pairs(rows + cols, cols + rows, counts + counts, 10)


def test_positives_are_drawn_proportionally_to_counts():
  graph = _graph()
  ids, valid = graph.sample_positives(tf.fill([4000], tf.constant(1, tf.int64)),
                                      5, tf.constant([3, 4], tf.int64))
  ids = ids.numpy().reshape(-1)
  assert valid.numpy().all()
  observed = np.array([(ids == i).sum() for i in (2, 3, 4, 5)])
  assert observed.sum() == ids.size                     # nothing else drawn
  assert _chi_square(observed, np.array([1, 2, 3, 4]) / 10) < _CHI2_3


def test_anchor_without_positives_gets_masked_slots():
  ids, valid = _graph().sample_positives(tf.constant([8, 6], tf.int64), 3,
                                         tf.constant([0, 1], tf.int64))
  assert valid.numpy().tolist() == [[False] * 3, [True] * 3]
  assert ids.numpy().tolist() == [[0, 0, 0], [7, 7, 7]]


def test_negatives_never_cooccur_with_the_anchor():
  graph = _graph()
  anchors = np.tile(np.arange(1, 11), 30)
  ids, valid = item_pairs.sample_negatives(graph, tf.constant(anchors), 6,
                                           tf.constant([5, 6], tf.int64))
  ids, valid = ids.numpy(), valid.numpy()
  assert valid.mean() > 0.9
  for a, row, ok in zip(anchors, ids, valid):
    positives = set(graph.row(a)[0].tolist())
    for i in row[ok]:
      assert i != a and i not in positives and 1 <= i <= 10
    assert (row[~ok] == 0).all()


def test_restrict_keeps_same_category_pairs_only():
  category = np.array([0, 1, 1, 2, 1, 2, 3, 3, 0, 0, 0])
  restricted = _graph().restrict(category)
  # Row 1 (category 1): 2 (cat 1, count 1) and 4 (cat 1, count 3) remain.
  ids, weights = restricted.row(1)
  assert ids.tolist() == [2, 4] and weights.tolist() == [1, 3]
  assert restricted.row(6)[0].tolist() == [7]


def test_shared_values_positives_share_a_value_and_negatives_none():
  genre = np.array([[0, 0], [1, 2], [1, 0], [2, 0], [3, 0], [3, 0], [4, 0]])
  tag = np.array([0, 1, 0, 0, 0, 2, 1])
  rel = SharedValues.from_catalog({"genre": genre, "tag": tag})
  anchors = tf.constant(np.repeat([1, 4, 6], 600))
  ids, valid = rel.sample_positives(anchors, 1, tf.constant([1, 2], tf.int64))
  ids, valid = ids.numpy()[:, 0], valid.numpy()[:, 0]
  sets = {1: {2, 3, 6}, 4: {5}, 6: {1}}   # genre 1/2 and tag 1 for item 1
  for a, i, ok in zip(anchors.numpy(), ids, valid):
    # Item 6's genre 4 has no other item: that draw is an empty slot.
    assert (ok and i in sets[a]) or (a == 6 and not ok and i == 0)
  assert 0.4 < valid[1200:].mean() < 0.6                  # tag 1 half the time
  # Item 1: value genre 1 (-> 2), genre 2 (-> 3), tag 1 (-> 6), each 1/3.
  observed = np.array([(ids[:600] == i).sum() for i in (2, 3, 6)])
  assert _chi_square(observed, [1 / 3] * 3) < _CHI2_2
  negatives, nvalid = item_pairs.sample_negatives(
      rel, anchors, 3, tf.constant([2, 3], tf.int64))
  for a, row, ok in zip(anchors.numpy(), negatives.numpy(), nvalid.numpy()):
    assert not (set(row[ok].tolist()) & (sets[a] | {a}))


def test_hand_built_titles_give_tfidf_neighbours():
  # Tokens: star=1, wars=2, trek=3, roses=4, pasta=5.
  # 1 "star wars", 2 "star trek", 3 "wars roses", 4 "roses pasta",
  # 5 "pasta", 6 no title. "trek" is in one title only, so it is dropped
  # (it cannot make two titles similar); the other tokens have df 2 and the
  # same idf, so cosine = shared tokens / sqrt(|A| |B|):
  # cos(1,2) = 1/sqrt2 = .707, cos(1,3) = .5, cos(3,4) = .5, cos(4,5) = .707,
  # every other pair 0. Top-2 with positive cosine: 1 -> {2, 3}, 2 -> {1},
  # 3 -> {1, 4}, 4 -> {5, 3}, 5 -> {4}, 6 -> {}.
  tokens = np.array([[0, 0], [1, 2], [1, 3], [2, 4], [4, 5], [5, 0], [0, 0]])
  vectors = item_pairs.title_tfidf(tokens)
  assert vectors.shape == (7, 4)
  np.testing.assert_allclose(vectors[1] @ vectors[2], 1 / np.sqrt(2), rtol=1e-6)
  graph = item_pairs.title_neighbours(vectors, k=2)
  rows = {a: set(graph.row(a)[0].tolist()) for a in range(1, 7)}
  assert rows == {1: {2, 3}, 2: {1}, 3: {1, 4}, 4: {5, 3}, 5: {4}, 6: set()}


def test_title_embeddings_file(tmp_path):
  path = tmp_path / "titles.npy"
  np.save(path, np.eye(3, dtype=np.float32))
  loaded = item_pairs.load_title_embeddings(str(path), 3)
  assert loaded.shape == (4, 3) and not loaded[0].any()
  with pytest.raises(InputError, match="expected \\[4, D\\]"):
    item_pairs.load_title_embeddings(str(path), 4)


def test_pair_stream_is_keyed_by_seed_and_epoch():
  graph = _graph()
  probability = item_pairs.anchor_probabilities(np.ones(11), "uniform")

  def first(seed, epoch, salt=0):
    ds = item_pairs.pair_dataset(graph, probability, 8, 2, 3, seed, epoch, salt)
    return [b["anchor"].numpy().tolist() for b in ds.take(2)]

  assert first(0, 0) == first(0, 0)
  assert first(0, 0) != first(0, 1) != first(1, 0)
  assert first(0, 0) != first(0, 0, salt=1)
  element = next(iter(item_pairs.pair_dataset(graph, probability, 8, 2, 3, 0, 0, 0)))
  assert element["positive"].shape == (8, 2) and element["negative"].shape == (8, 3)
  assert set(element["anchor"].numpy().tolist()) <= set(range(1, 11))
