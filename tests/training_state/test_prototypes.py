"""Prototypes: Eq. 13 temperatures, k-means, negative prototypes."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.training_state.prototypes import (Prototypes, cluster_temperatures,
                                              kmeans)


def test_eq13_hand_worked():
  # Cluster 0 at (0, 0) holds (3, 4) and (0, 1): distances 5 and 1,
  # tau_0 = 6 / (2 log 3) = 2.730718. Cluster 1 at (1, 1) holds (1, 1), (1, 2)
  # and (1, 3): distances 0, 1, 2, tau_1 = 3 / (3 log 4) = 0.721348.
  # Cluster 2 is empty and cluster 3 holds one item: both get max = tau_0.
  keys = np.array([[3, 4], [0, 1], [1, 1], [1, 2], [1, 3], [9, 9]], float)
  centroids = np.array([[0, 0], [1, 1], [5, 5], [9, 8]], float)
  assignments = np.array([0, 0, 1, 1, 1, 3])
  tau = cluster_temperatures(keys, centroids, assignments)
  np.testing.assert_allclose(tau, [2.730718, 0.721348, 2.730718, 2.730718],
                             rtol=1e-5)


def test_eq13_matches_a_numpy_loop():
  rng = np.random.default_rng(1)
  keys = rng.normal(size=(40, 3))
  centroids = rng.normal(size=(4, 3))
  assignments = rng.integers(0, 4, 40)
  tau = cluster_temperatures(keys, centroids, assignments)
  for c in range(4):
    members = keys[assignments == c]
    n = len(members)
    expected = np.linalg.norm(members - centroids[c], axis=1).sum() / (n * np.log(n + 1))
    np.testing.assert_allclose(tau[c], expected, rtol=1e-5)


def test_kmeans_is_seeded_and_finds_separated_clusters():
  rng = np.random.default_rng(0)
  centers = np.eye(3, 8) * 5
  points = np.concatenate([c + rng.normal(scale=0.1, size=(30, 8)) for c in centers])
  a_centroids, a = kmeans(points, 3, seed=7, iterations=10)
  b_centroids, b = kmeans(points, 3, seed=7, iterations=10)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a_centroids, b_centroids)
  # Each true group is one cluster.
  for g in range(3):
    assert len(set(a[g * 30:(g + 1) * 30])) == 1
  assert len(set(a)) == 3
  with pytest.raises(ValueError, match="num_prototypes"):
    kmeans(points[:2], 3, seed=0)


def test_negatives_are_distinct_other_clusters_and_assign_writes_state():
  protos = Prototypes(6, 2, num_items=4)
  protos.assign(np.ones([6, 2]), np.full(6, 0.5), [5, 0, 3, 3])
  np.testing.assert_array_equal(protos.item_clusters.numpy(), [0, 5, 0, 3, 3])
  clusters = protos.clusters_of(tf.constant([1, 2, 3, 4]))
  negatives = protos.sample_negatives(clusters, 5, tf.constant([0, 1], tf.int64)).numpy()
  for row, own in zip(negatives, clusters.numpy()):
    assert sorted(row) == sorted(set(range(6)) - {own})   # r = C - 1: all others
  few = protos.sample_negatives(clusters, 2, tf.constant([0, 1], tf.int64)).numpy()
  assert all(len(set(r)) == 2 and own not in r for r, own in zip(few, clusters.numpy()))
  with pytest.raises(ValueError, match="C-1=5"):
    protos.sample_negatives(clusters, 6, tf.constant([0, 1], tf.int64))
