"""Shared data of the index tests: clustered vectors and a NumPy top-k reference."""

import numpy as np
import pytest

NUM_ITEMS, DIM, K = 600, 16, 10


def clustered(num, dim, seed, clusters=12):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(clusters, dim)) * 3.0
  return (centers[rng.integers(0, clusters, num)]
          + rng.normal(size=(num, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def items():
  return clustered(NUM_ITEMS, DIM, seed=0)


@pytest.fixture(scope="module")
def queries():
  return clustered(25, DIM, seed=1)


def brute_force(queries, items, k):
  """NumPy reference: scores [Q, k] and rows [Q, k], best first."""
  scores = queries @ items.T                                    # [Q, N]
  rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]      # [Q, k]
  return np.take_along_axis(scores, rows, axis=1), rows
