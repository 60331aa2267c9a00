"""checkpoint_difference: per-variable max |a - b| of two checkpoints vs NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.training import checkpoint


def _save(path, kernel, bias, step):
  ckpt = tf.train.Checkpoint(kernel=tf.Variable(kernel), bias=tf.Variable(bias),
                             step=tf.Variable(step, dtype=tf.int64))
  return ckpt.write(path)


def test_checkpoint_difference_matches_numpy(tmp_path):
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(4, 3)).astype(np.float32)
  bias = rng.normal(size=(3,)).astype(np.float32)
  other_kernel = kernel.copy()
  other_kernel[2, 1] += 0.25
  a = _save(str(tmp_path / "a"), kernel, bias, 7)
  b = _save(str(tmp_path / "b"), other_kernel, bias, 9)   # int step: not compared
  diff = checkpoint.checkpoint_difference(a, b)
  kernel_key = [k for k in diff if k.startswith("kernel")][0]
  bias_key = [k for k in diff if k.startswith("bias")][0]
  assert set(diff) == {kernel_key, bias_key}
  assert diff[kernel_key] == pytest.approx(
      np.abs(kernel.astype(np.float64) - other_kernel).max())
  assert diff[bias_key] == 0.0
  assert set(checkpoint.checkpoint_difference(a, a).values()) == {0.0}


def test_checkpoint_difference_refuses_different_variables(tmp_path):
  a = _save(str(tmp_path / "a"), np.zeros((2, 2), np.float32), np.zeros(2, np.float32), 1)
  b = _save(str(tmp_path / "b"), np.zeros((3, 2), np.float32), np.zeros(2, np.float32), 1)
  with pytest.raises(ValueError, match="shape"):
    checkpoint.checkpoint_difference(a, b)
  c = tf.train.Checkpoint(kernel=tf.Variable(np.zeros((2, 2), np.float32))).write(
      str(tmp_path / "c"))
  with pytest.raises(ValueError, match="different float variables"):
    checkpoint.checkpoint_difference(a, c)


def test_equal_infinities_and_nan_in_both_are_equal(tmp_path):
  nan = np.float32("nan")
  a = _save(str(tmp_path / "a"), np.array([[nan, 1.0]], np.float32),
            np.array([nan], np.float32), 1)
  b = _save(str(tmp_path / "b"), np.array([[nan, 1.5]], np.float32),
            np.array([2.0], np.float32), 1)
  diff = checkpoint.checkpoint_difference(a, b)
  assert sorted(diff.values()) == [0.5, np.inf]
  inf = np.float32("-inf")
  c = _save(str(tmp_path / "c"), np.array([[inf, 1.0]], np.float32),
            np.array([inf], np.float32), 1)
  assert set(checkpoint.checkpoint_difference(c, c).values()) == {0.0}


def test_common_only_compares_shared_variables_and_lists_the_rest(tmp_path):
  a = _save(str(tmp_path / "a"), np.ones((2, 2), np.float32), np.zeros(2, np.float32), 1)
  c = tf.train.Checkpoint(kernel=tf.Variable(np.full((2, 2), 1.5, np.float32)),
                          extra=tf.Variable(np.zeros(3, np.float32))).write(
                              str(tmp_path / "c"))
  diff, (only_a, only_c) = checkpoint.checkpoint_difference(a, c, common_only=True)
  assert [k.split("/")[0] for k in diff] == ["kernel"]
  assert list(diff.values()) == [0.5]           # |1 - 1.5|
  assert [k.split("/")[0] for k in only_a] == ["bias"]
  assert [k.split("/")[0] for k in only_c] == ["extra"]
