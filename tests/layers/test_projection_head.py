"""ProjectionHead: NumPy MLP + l2 normalisation, output width, config, contract."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.layers.projection_head import ProjectionHead
from tests.layer_test_util import run_layer_test


def _numpy_head(head, x, l2_normalize):
  """Reference: relu Dense stack with the head's own weights, linear output, l2."""
  for dense in head.hidden_layers:
    x = np.maximum(x @ dense.kernel.numpy() + dense.bias.numpy(), 0)
  if head.output_layer is not None:
    x = x @ head.output_layer.kernel.numpy() + head.output_layer.bias.numpy()
  if l2_normalize:
    # tf.math.l2_normalize: x / sqrt(max(|x|^2, 1e-12)).
    x = x / np.sqrt(np.maximum((x ** 2).sum(-1, keepdims=True), 1e-12))
  return x


@pytest.mark.parametrize("hidden_units,output_dim,l2_normalize", [
    ([6, 5], 4, True), ([6], 4, False), ([6], None, True), ([], 3, True)])
def test_forward_matches_numpy(hidden_units, output_dim, l2_normalize):
  head = ProjectionHead(hidden_units, output_dim, l2_normalize=l2_normalize,
                        dropout=0.5)
  x = np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32)
  got = head(tf.constant(x)).numpy()  # training=False: dropout is off
  np.testing.assert_allclose(got, _numpy_head(head, x, l2_normalize), atol=1e-5)
  assert got.shape == (3, head.output_dim_for(7))
  if l2_normalize:
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_empty_head_is_the_identity():
  x = tf.constant([[3.0, -4.0], [0.5, 2.0]])
  head = ProjectionHead()
  np.testing.assert_array_equal(head(x).numpy(), x.numpy())
  assert not head.weights
  # Only l2: [3, -4] / 5.
  np.testing.assert_allclose(ProjectionHead(l2_normalize=True)(x).numpy()[0],
                             [0.6, -0.8], atol=1e-6)


def test_output_dim_for():
  assert ProjectionHead().output_dim_for(8) == 8
  assert ProjectionHead(hidden_units=[5, 3]).output_dim_for(8) == 3
  assert ProjectionHead(hidden_units=[5, 3], output_dim=4).output_dim_for(8) == 4


def test_dropout_only_in_training():
  head = ProjectionHead(hidden_units=[64], output_dim=4, dropout=0.5)
  x = tf.ones([4, 8])
  np.testing.assert_array_equal(head(x).numpy(), head(x).numpy())
  assert not np.allclose(head(x, training=True).numpy(), head(x).numpy())


def test_get_config_round_trip():
  head = ProjectionHead(hidden_units=(6, 5), output_dim=4, activation="tanh",
                        dropout=0.25, l2_normalize=True, name="my_head")
  config = head.get_config()
  assert {k: config[k] for k in ("hidden_units", "output_dim", "activation",
                                 "dropout", "l2_normalize", "name")} == dict(
      hidden_units=[6, 5], output_dim=4, activation="tanh", dropout=0.25,
      l2_normalize=True, name="my_head")
  clone = ProjectionHead.from_config(config)
  assert clone.get_config() == config
  x = tf.ones([2, 3])
  head(x), clone(x)
  clone.set_weights(head.get_weights())
  np.testing.assert_allclose(clone(x).numpy(), head(x).numpy(), atol=1e-6)


def test_layer_contract():
  run_layer_test(ProjectionHead, dict(hidden_units=[6], output_dim=4, l2_normalize=True),
                 tf.constant(np.random.default_rng(1).normal(size=(3, 5)), tf.float32),
                 (3, 4))
