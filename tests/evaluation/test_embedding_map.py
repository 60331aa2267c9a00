"""dcg_tf.evaluation.embedding_map: t-SNE, NMI and the group sample.

References: hand-worked values (working in the comments) and geometric facts
(two far-apart blobs stay apart in the map).
"""

import numpy as np
import pytest

from dcg_tf.evaluation import embedding_map


# === NMI ===


def test_nmi_of_identical_partitions_is_one_up_to_relabelling():
  assert embedding_map.normalized_mutual_information(
      [0, 0, 1, 1, 2], [5, 5, 3, 3, 9]) == pytest.approx(1.0, abs=1e-12)


def test_nmi_of_independent_partitions_is_zero():
  # Every (a, b) pair occurs once: p(a, b) = 1/4 = p(a) p(b), so I = 0.
  assert embedding_map.normalized_mutual_information(
      [0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_nmi_hand_worked_case():
  # a = [0, 0, 1, 1], b = [0, 0, 0, 1], n = 4. Joint: (0,0) 2/4, (1,0) 1/4,
  # (1,1) 1/4; p(a) = (1/2, 1/2), p(b) = (3/4, 1/4).
  # H(a) = ln 2 = 0.693147; H(b) = -(.75 ln .75 + .25 ln .25) = 0.562335.
  # I = .5 ln(.5/(.5*.75)) + .25 ln(.25/(.5*.75)) + .25 ln(.25/(.5*.25))
  #   = .5 ln(4/3) + .25 ln(2/3) + .25 ln 2 = 0.143841 - 0.101366 + 0.173287
  #   = 0.215762.
  # NMI = I / ((H(a) + H(b)) / 2) = 0.215762 / 0.627741 = 0.343711.
  nmi = embedding_map.normalized_mutual_information([0, 0, 1, 1], [0, 0, 0, 1])
  assert nmi == pytest.approx(0.343711, abs=1e-6)
  # Symmetric in its arguments.
  assert embedding_map.normalized_mutual_information(
      [0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(nmi, abs=1e-12)


def test_nmi_single_group_conventions():
  assert embedding_map.normalized_mutual_information([1, 1, 1], [2, 2, 2]) == 1.0
  assert embedding_map.normalized_mutual_information([1, 1, 1], [0, 1, 2]) == 0.0


def test_nmi_rejects_partitions_of_different_sizes():
  with pytest.raises(ValueError, match="same n"):
    embedding_map.normalized_mutual_information([0, 1], [0, 1, 1])


# === t-SNE ===


def test_joint_probabilities_hand_worked_three_points():
  # Points 0, 1, 3 on a line: squared distances d01 = 1, d02 = 9, d12 = 4.
  # Each row has two neighbours at squared distances a < b, so
  # p_near = 1 / (1 + exp(-(b - a) beta)). Perplexity exp(H(0.8, 0.2)) with
  # H(0.8, 0.2) = -(.8 ln .8 + .2 ln .2) = 0.500402 forces p_near = 0.8,
  # p_far = 0.2 in every row:
  #   p_{1|0} = .8, p_{2|0} = .2;  p_{0|1} = .8, p_{2|1} = .2;
  #   p_{1|2} = .8, p_{0|2} = .2.
  # p_ij = (p_{j|i} + p_{i|j}) / (2 * 3):
  #   p_01 = (.8 + .8) / 6 = 0.266667, p_02 = (.2 + .2) / 6 = 0.066667,
  #   p_12 = (.2 + .8) / 6 = 0.166667 (sum over i != j = 1).
  perplexity = np.exp(-(0.8 * np.log(0.8) + 0.2 * np.log(0.2)))
  p = embedding_map.joint_probabilities(np.array([[0.0], [1.0], [3.0]]),
                                        perplexity)
  expected = np.array([[0.0, 0.266667, 0.066667],
                       [0.266667, 0.0, 0.166667],
                       [0.066667, 0.166667, 0.0]])
  np.testing.assert_allclose(p, expected, atol=2e-5)


def test_conditional_probabilities_reach_the_perplexity():
  # exp(H(P_i)) = perplexity for every row, whatever the scale of the data.
  rng = np.random.default_rng(0)
  x = rng.normal(0.0, 50.0, (40, 5))
  d = ((x[:, None] - x[None]) ** 2).sum(-1)
  p = embedding_map.conditional_probabilities(d, 7.0)
  np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
  assert np.all(np.diag(p) == 0.0)
  entropy = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(1)
  np.testing.assert_allclose(np.exp(entropy), 7.0, rtol=1e-4)


def test_tsne_keeps_two_separated_blobs_apart():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(0.0, 1.0, (60, 10)),
                      rng.normal(8.0, 1.0, (60, 10))])              # [120, 10]
  labels = np.repeat([0, 1], 60)
  y = embedding_map.tsne(x, perplexity=15, num_iterations=500, seed=0)
  assert y.shape == (120, 2)
  d = ((y[:, None] - y[None]) ** 2).sum(-1)
  np.fill_diagonal(d, np.inf)
  agreement = np.mean(labels[d.argmin(axis=1)] == labels)
  assert agreement > 0.95
  # The same seed gives the same map.
  np.testing.assert_array_equal(
      y, embedding_map.tsne(x, perplexity=15, num_iterations=500, seed=0))


def test_tsne_rejects_a_perplexity_above_n_minus_one():
  with pytest.raises(ValueError, match="perplexity"):
    embedding_map.tsne(np.zeros((5, 2)), perplexity=30)


# === Groups ===


def test_sample_groups_takes_the_most_frequent_first_values():
  # Items 1..9; multi-valued field, first column decides:
  # value 2: items 1, 2, 3, 4; value 5: items 5, 6, 7; value 1: item 8;
  # item 9 has no value (0, never a group). Value 1's other occurrence is in
  # a second column and does not count.
  values = np.array([[0, 0], [2, 1], [2, 0], [2, 5], [2, 0], [5, 0], [5, 0],
                     [5, 1], [1, 0], [0, 0]])
  items, groups = embedding_map.sample_groups(values, num_groups=2,
                                              per_group=3, seed=0)
  assert groups.tolist() == [2, 2, 2, 5, 5, 5]
  assert set(items[:3]) <= {1, 2, 3, 4} and len(set(items[:3])) == 3
  assert items[3:].tolist() == [5, 6, 7]
  again, _ = embedding_map.sample_groups(values, 2, 3, seed=0)
  assert again.tolist() == items.tolist()
  with pytest.raises(ValueError, match="lower num_groups"):
    embedding_map.sample_groups(values, num_groups=4, per_group=3)
