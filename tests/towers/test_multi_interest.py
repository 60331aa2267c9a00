"""The multi-interest contract: declaration checks and the selection hook."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.towers import multi_interest
from tests.towers import test_multi_clrec_user_tower as multi_clrec_test


class _Single:
  pass


class _Multi:
  is_multi_interest = True
  max_interests = 2


class _LabelAware(_Multi):
  """Hard label-aware selection (ComiRec): one-hot argmax_h <v_h, e> over the mask."""

  def select_for_target(self, interests, target_embedding):
    scores = np.einsum("bhd,bd->bh", interests["vectors"], target_embedding)
    scores = np.where(interests["mask"], scores, -np.inf)
    return np.eye(scores.shape[1])[scores.argmax(-1)]


def test_split_output_follows_the_declaration():
  vectors, mask = np.zeros((3, 2, 4)), np.ones((3, 2), bool)
  got_vectors, got_mask = multi_interest.split_output(_Multi(), (vectors, mask))
  assert got_vectors is vectors and got_mask is mask
  single = np.zeros((3, 4))
  assert multi_interest.split_output(_Single(), single) == (single, None)
  assert not multi_interest.is_multi_interest(_Single())
  with pytest.raises(ValueError, match="does not declare is_multi_interest"):
    multi_interest.split_output(_Single(), (vectors, mask))
  with pytest.raises(ValueError, match="does not return"):
    multi_interest.split_output(_Multi(), single)
  with pytest.raises(ValueError, match=r"vectors \[B, K=2, D\]"):
    multi_interest.split_output(_Multi(), (np.zeros((3, 5, 4)), np.ones((3, 5))))


def test_target_selection_prefers_the_tower_hook():
  # v_0 = (1, 0), v_1 = (0, 1), v_2 = (5, 5) masked out; target e = (0.2, 0.9):
  # <v_0, e> = 0.2, <v_1, e> = 0.9 -> interest 1 (v_2 would score 5.5).
  interests = {"vectors": np.array([[[1, 0], [0, 1], [5, 5]]], np.float32),
               "mask": np.array([[True, True, False]]),
               "selection": np.array([[1.0, 0.0, 0.0]])}
  target = np.array([[0.2, 0.9]], np.float32)
  np.testing.assert_array_equal(
      multi_interest.target_selection(_LabelAware(), interests, target), [[0, 1, 0]])
  # Without the hook: the tower's target-independent selection (Eq. 9).
  np.testing.assert_array_equal(
      multi_interest.target_selection(_Multi(), interests, target), [[1, 0, 0]])
  del interests["selection"]
  with pytest.raises(ValueError, match="no 'selection'"):
    multi_interest.target_selection(_Multi(), interests, target)


def test_multi_clrec_tower_implements_the_contract():
  tower = multi_clrec_test._tower()            # pylint: disable=protected-access
  batch = multi_clrec_test._batch()            # pylint: disable=protected-access
  assert multi_interest.is_multi_interest(tower)
  assert (tower.max_interests, tower.interest_slots) == (2, multi_clrec_test.H)
  vectors, mask = multi_interest.split_output(tower, tower(batch))
  assert vectors.shape == (multi_clrec_test.B, 2, multi_clrec_test.D)
  assert mask.numpy().any(axis=1).all()        # every user has an active interest
  out = tower.interests(batch)
  assert out["vectors"].shape[1] == tower.interest_slots
  # Eq. 9 selection: the straight-through one-hot of h* = argmax_h w_h.
  np.testing.assert_allclose(
      multi_interest.target_selection(tower, out, tf.zeros([3, 6])).numpy(),
      np.eye(tower.interest_slots)[out["weights"].numpy().argmax(-1)], atol=1e-6)
