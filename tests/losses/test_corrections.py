"""Logit corrections (tfrs `tasks.Retrieval` order) against hand-worked values.

Each correction is checked on numbers worked by hand in the comments, and the
masked entries against NumPy softmaxes of the rows with those entries left out.
"""

import pathlib
import re

import numpy as np
import tensorflow as tf

from dcg_tf.layers.masking import MASKED_LOGIT, mask_logits
from dcg_tf.losses import corrections

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_masked_logit_is_tfrs_min_float():
  # tfrs layers/loss.py: MIN_FLOAT = np.finfo(np.float32).min / 100 = -3.40282e36.
  np.testing.assert_allclose(MASKED_LOGIT, -3.4028234663852886e36, rtol=1e-12)
  assert np.isfinite(np.float32(MASKED_LOGIT))
  # 100x of head room: dividing by rho = 0.07 stays finite in float32.
  assert np.isfinite(np.float32(MASKED_LOGIT) / np.float32(0.07))


def test_temperature():
  # [[1, 2], [3, -1]] / 0.5 = [[2, 4], [6, -2]].
  got = corrections.apply_temperature(tf.constant([[1.0, 2.0], [3.0, -1.0]]), 0.5)
  np.testing.assert_allclose(got.numpy(), [[2.0, 4.0], [6.0, -2.0]])


def test_log_q_correction_with_probability_floor():
  # q = [0.5, 1e-9, 0.25]; the floor lifts 1e-9 to 1e-6:
  # log q = [-0.693147, -13.815511, -1.386294];
  # logits [1, 1, 1] - log q = [1.693147, 14.815511, 2.386294].
  q = tf.constant([0.5, 1e-9, 0.25])
  np.testing.assert_allclose(corrections.floor_probability(q).numpy(),
                             [0.5, 1e-6, 0.25], rtol=1e-6)
  log_q = corrections.log_probability(q)[None, :]                  # [1, 3]
  got = corrections.log_q_correction(tf.ones([2, 3]), log_q).numpy()
  np.testing.assert_allclose(got, [[1.693147, 14.815511, 2.386294]] * 2,
                             rtol=1e-6)


def test_accidental_hits_keep_the_positive_column():
  # In-batch: positives [7, 8, 7] are candidates 0..2, candidate 3 is id 9.
  # Row 0 (positive 7, own column 0): column 2 is another 7 -> hit.
  # Row 1 (8): no other 8. Row 2 (7, own column 2): column 0 -> hit.
  ids = tf.constant([7, 8, 7, 9], tf.int64)
  positive = tf.constant(np.eye(3, 4, dtype=bool))
  hits = corrections.accidental_hits(ids[:3], ids, positive).numpy()
  np.testing.assert_array_equal(hits, [[0, 0, 1, 0], [0, 0, 0, 0],
                                       [1, 0, 0, 0]])
  # Without positive columns (negatives apart from the positives), every
  # equal id is a hit; per-row candidate ids [B, N] work the same way.
  shared = corrections.accidental_hits([7, 8], [8, 7, 7]).numpy()
  np.testing.assert_array_equal(shared, [[0, 1, 1], [1, 0, 0]])
  per_row = corrections.accidental_hits([7, 8], [[7, 1], [7, 8]]).numpy()
  np.testing.assert_array_equal(per_row, [[1, 0], [0, 1]])


def test_removed_hits_get_zero_softmax_weight_and_no_gradient():
  scores = tf.constant([[2.0, 1.0, 3.0, 0.5]])
  hits = tf.constant([[False, False, True, False]])
  with tf.GradientTape() as tape:
    tape.watch(scores)
    logits = corrections.remove_accidental_hits(scores, hits)
    probabilities = tf.nn.softmax(logits)
    loss = -tf.math.log(probabilities[0, 0])
  assert logits.numpy()[0, 2] == np.float32(MASKED_LOGIT)
  # NumPy: the softmax of the row with column 2 left out.
  expected = _softmax(np.array([2.0, 1.0, 0.5]))
  np.testing.assert_allclose(probabilities.numpy()[0, [0, 1, 3]], expected,
                             rtol=1e-6)
  assert probabilities.numpy()[0, 2] == 0.0
  assert tape.gradient(loss, scores).numpy()[0, 2] == 0.0


def test_invalid_slots_and_a_fully_masked_row():
  scores = tf.constant([[1.0, 5.0, 2.0], [4.0, 4.0, 4.0]])
  valid = tf.constant([[True, False, True], [False, False, False]])
  logits = corrections.mask_invalid(scores, valid).numpy()
  np.testing.assert_array_equal(logits[0],
                                np.float32([1.0, MASKED_LOGIT, 2.0]))
  # softmax([1, 2]) = [1/(1+e), e/(1+e)] = [0.268941, 0.731059].
  np.testing.assert_allclose(tf.nn.softmax(logits).numpy()[0],
                             [0.268941, 0.0, 0.731059], rtol=1e-5)
  # Every slot masked: finite and uniform (the callers decide what it means).
  np.testing.assert_allclose(tf.nn.softmax(logits).numpy()[1], [1 / 3] * 3,
                             rtol=1e-6)


def test_mask_logits_keeps_kept_entries_bit_for_bit():
  x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
  valid = np.array([[True, False, True, True], [False, True, True, False]])
  got = mask_logits(tf.constant(x), tf.constant(valid)[:, None, :]).numpy()
  np.testing.assert_array_equal(got[np.broadcast_to(valid[:, None], x.shape)],
                                x[np.broadcast_to(valid[:, None], x.shape)])
  assert (got[~np.broadcast_to(valid[:, None], x.shape)]
          == np.float32(MASKED_LOGIT)).all()


def test_order_temperature_log_q_hits_then_invalid():
  # scores [1, 2, 3, 4], T = 0.5, q = [0.5, 0.25, 1, 1],
  # column 2 an accidental hit, column 3 an invalid slot.
  # 1. temperature: [2, 4, 6, 8]
  # 2. log-Q:       [2 + ln 2, 4 + ln 4, 6, 8] = [2.693147, 5.386294, 6, 8]
  # 3. hits:        [2.693147, 5.386294, M, 8]
  # 4. invalid:     [2.693147, 5.386294, M, M]
  scores = tf.constant([[1.0, 2.0, 3.0, 4.0]])
  log_q = corrections.log_probability([0.5, 0.25, 1.0, 1.0])[None, :]
  hits = tf.constant([[False, False, True, False]])
  valid = tf.constant([[True, True, True, False]])
  got = corrections.correct_logits(scores, 0.5, log_q, hits, valid).numpy()
  m = np.float32(MASKED_LOGIT)
  np.testing.assert_allclose(got[0, :2], [2.693147, 5.386294], rtol=1e-6)
  assert got[0, 2] == m and got[0, 3] == m
  # The other order, log-Q before temperature, is (1 + ln 2) / 0.5 = 3.386294:
  # not what the losses compute.
  assert abs(got[0, 0] - 3.386294) > 0.5
  # Masks last: a mask applied before the temperature and log-Q would have
  # moved the removed entry to M / 0.5 - 0, not M.
  early = corrections.correct_logits(
      corrections.mask_invalid(scores, valid), 0.5, log_q).numpy()
  assert early[0, 3] != m
  # Each correction is skipped when its argument is None.
  np.testing.assert_array_equal(corrections.correct_logits(scores).numpy(),
                                scores.numpy())


def test_one_masked_logit_constant_in_the_package():
  """No logit mask but layers/masking.py's in layers, towers, losses, models.

  (evaluation/topk.py's -inf ranks excluded items last; it is no logit.)
  """
  pattern = re.compile(r"-\s*1e9|finfo\(|float\(\"-inf\"\)|-np\.inf")
  offenders = []
  paths = [p for folder in ("layers", "towers", "losses", "models",
                            "training_state")
           for p in (ROOT / "dcg_tf" / folder).rglob("*.py")]
  for path in sorted(paths):
    if path.relative_to(ROOT).as_posix() == "dcg_tf/layers/masking.py":
      continue
    for number, line in enumerate(path.read_text().splitlines(), 1):
      if pattern.search(line):
        offenders.append("%s:%d: %s" % (path.relative_to(ROOT), number,
                                        line.strip()))
  assert not offenders, "use dcg_tf.layers.masking:\n" + "\n".join(offenders)
