"""MultiCLRecUserTower (CLRec Eq. 5-9) against a NumPy re-implementation."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.towers.multi_clrec_user_tower import MultiCLRecUserTower
from tests.layer_test_util import savedmodel_outputs_in_fresh_process

N, C, D, H, B, L = 12, 4, 6, 5, 3, 4
CATEGORIES = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 1, 2, 3, 4])  # item -> category
RHO = 0.07


def _batch():
  return {
      "history": tf.constant([[1, 5, 9, 0], [2, 3, 4, 7], [11, 0, 0, 0]],
                             tf.int64),
      "history_mask": tf.constant([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
                      > 0,
      "history_timestamp": tf.constant([[10, 20, 30, 0], [1, 2, 3, 4],
                                        [100, 0, 0, 0]], tf.int64),
      "target_timestamp": tf.constant([40, 10, 1000], tf.int64),
  }


def _tower(**kwargs):
  embedding = keras.layers.Embedding(N + 1, D,
                                     embeddings_initializer="random_normal")
  kwargs = dict(dict(num_intentions=H, importance_hidden_units=(),
                     num_serving_interests=2), **kwargs)
  tower = MultiCLRecUserTower(embedding, CATEGORIES, C, D, **kwargs)
  tower(_batch())
  return tower


def _hand_built_mlps(tower, seed=7):
  """Sets MLP_3's and MLP_4's Dense weights by hand (fixed draws, scale 0.5).

  The biases are spread around 0 so that some ReLU units are off and the
  reference must apply the non-linearity to match.
  """
  rng = np.random.default_rng(seed)
  layers = (tower.aggregation.hidden_layers + [tower.aggregation.output_layer]
            + tower.selection.hidden_layers + [tower.selection.query_layer])
  for layer in layers:
    layer.kernel.assign(0.5 * rng.standard_normal(layer.kernel.shape))
    layer.bias.assign(0.5 * rng.standard_normal(layer.bias.shape))


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis, keepdims=True))
  return e / e.sum(axis, keepdims=True)


def _unit(x):
  # As tf.math.l2_normalize: a zero vector (unknown category) stays zero.
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _numpy_mlp(x, hidden_layers, output_layer):
  """ReLU hidden layers, then a linear output layer (MLP_3, MLP_4)."""
  for layer in hidden_layers:
    x = np.maximum(x @ layer.kernel.numpy() + layer.bias.numpy(), 0.0)
  return x @ output_layer.kernel.numpy() + output_layer.bias.numpy()


def _numpy_interests(tower, batch, occupied_only=False):
  """Eq. 5-9 with a linear MLP_2 and MLP_3, MLP_4 of any depth.

  occupied_only=False is the paper's Eq. 9 (h* over all H intentions); True
  restricts the softmax to the intentions holding a valid click.
  """
  history = batch["history"].numpy()
  mask = batch["history_mask"].numpy()
  g = tower.item_embedding.embeddings.numpy()[history]           # Eq. 5
  table = tower.category_embedding.embeddings.numpy().copy()
  table[0] = 0.0                       # category 0 (unknown) embeds to zeros
  c = table[CATEGORIES[history]]
  gap = np.log1p(np.maximum(batch["target_timestamp"].numpy()[:, None]
                            - batch["history_timestamp"].numpy(), 0))
  features = np.concatenate([g, c, gap[..., None]], -1)
  scores = (features @ tower.importance.score_layer.kernel.numpy()
            + tower.importance.score_layer.bias.numpy())[..., 0]
  p_t = np.where(mask, _softmax(np.where(mask, scores, -np.inf)), 0.0)  # Eq. 6
  mu = tower.routing.prototypes.numpy()
  p_ht = _softmax(_unit(c) @ _unit(mu).T / RHO)                  # Eq. 7
  z_prime = np.einsum("blh,bl,bld->bhd", p_ht, p_t, g)           # Eq. 8
  beta = tower.aggregation.intention_bias.numpy()
  z = _numpy_mlp(
      np.concatenate([z_prime, np.broadcast_to(beta, z_prime.shape)], -1),
      tower.aggregation.hidden_layers, tower.aggregation.output_layer)
  m = _numpy_mlp(np.einsum("bl,bld->bd", p_t, g),                # Eq. 9
                 tower.selection.hidden_layers, tower.selection.query_layer)
  logits = np.einsum("bd,bhd->bh", _unit(m), _unit(z)) / RHO
  # Candidates: the intentions holding at least one valid click (argmax p_{h|t}).
  occupied = np.zeros((len(history), H), bool)
  for b, t in zip(*np.nonzero(mask)):
    occupied[b, p_ht[b, t].argmax()] = True
  candidates = occupied if occupied_only else np.ones_like(occupied)
  w = np.where(candidates,
               _softmax(np.where(candidates, logits, -np.inf)), 0.0)
  return {"importance": p_t, "routing": p_ht, "vectors": z, "weights": w,
          "mask": candidates, "occupied": occupied}


MLPS = {
    "linear": dict(aggregation_hidden_units=(), selection_hidden_units=()),
    "default": {},                                  # one hidden layer of 64
    "deeper": dict(aggregation_hidden_units=(7, 3), selection_hidden_units=(4,)),
}


@pytest.mark.parametrize("occupied_only", [False, True])
@pytest.mark.parametrize("mlps", sorted(MLPS))
def test_interests_and_serving_output_match_numpy(mlps, occupied_only):
  tower = _tower(select_occupied_only=occupied_only, **MLPS[mlps])
  _hand_built_mlps(tower)
  batch = _batch()
  got = tower.interests(batch)
  expected = _numpy_interests(tower, batch, occupied_only)
  for key in ("importance", "routing", "vectors", "weights"):
    np.testing.assert_allclose(got[key].numpy(), expected[key], rtol=2e-4,
                               atol=2e-5, err_msg=key)
  np.testing.assert_array_equal(got["mask"].numpy(),
                                expected["mask"])
  np.testing.assert_allclose(got["selection"].numpy(),
                             np.eye(H)[expected["weights"].argmax(-1)], atol=1e-6)
  vectors, mask = tower(batch)
  top = np.argsort(-expected["weights"], axis=-1, kind="stable")[:, :2]  # K = 2
  expected_mask = np.take_along_axis(expected["mask"], top, 1)
  np.testing.assert_array_equal(mask.numpy(), expected_mask)
  assert mask.shape == (B, 2) and mask.numpy()[:, 0].all()
  # User 3 has one click: with the restriction, one candidate intention;
  # without it (the paper's rule), all H are candidates.
  assert mask.numpy()[2, 1] == (not occupied_only)
  expected_vectors = _unit(np.take_along_axis(expected["vectors"],
                                              top[..., None], 1))
  np.testing.assert_allclose(vectors.numpy()[expected_mask],
                             expected_vectors[expected_mask], rtol=1e-4,
                             atol=1e-5)
  # Items are routed by their category with the tower's prototypes.
  c = tower.category_embedding.embeddings.numpy()[CATEGORIES[[3, 8]]]
  mu = tower.routing.prototypes.numpy()
  np.testing.assert_allclose(
      tower.item_routing_logits(tf.constant([3, 8], tf.int64)).numpy(),
      _unit(c) @ _unit(mu).T / RHO, rtol=1e-4, atol=1e-4)


def test_hand_built_weights_exercise_the_hidden_relu():
  # Guards the NumPy test above: with these weights some hidden units of
  # MLP_3 are off, so a reference without the ReLU disagrees with the tower.
  tower = _tower(**MLPS["default"])
  _hand_built_mlps(tower)
  batch = _batch()
  got = tower.interests(batch)["vectors"].numpy()
  expected = _numpy_interests(tower, batch)
  g = tower.item_embedding.embeddings.numpy()[batch["history"].numpy()]
  z_prime = np.einsum("blh,bl,bld->bhd", expected["routing"],
                      expected["importance"], g)
  x = np.concatenate([z_prime, np.broadcast_to(
      tower.aggregation.intention_bias.numpy(), z_prime.shape)], -1)
  hidden = tower.aggregation.hidden_layers[0]
  pre = x @ hidden.kernel.numpy() + hidden.bias.numpy()          # [B, H, 64]
  assert (pre < 0).any() and (pre > 0).any()
  without_relu = _numpy_mlp(pre, [], tower.aggregation.output_layer)
  assert np.abs(without_relu - got).max() > 1e-2


def test_defaults_are_the_papers_reading():
  # Eq. 9 over all H intentions; MLP_2-MLP_4 with one hidden layer of 64.
  tower = MultiCLRecUserTower(keras.layers.Embedding(N + 1, D), CATEGORIES,
                              C, D)
  assert tower.select_occupied_only is False
  assert (tower.importance_hidden_units == tower.aggregation_hidden_units
          == tower.selection_hidden_units == [64])


def test_restriction_keeps_empty_intentions_out():
  # S3-Rec Beauty, linear MLP_3/MLP_4: every user selected the same empty
  # intention, whose z_h = MLP_3([0; beta_h]) is user-independent, so 53-108
  # items were served in all. Point MLP_4's query at an intention no click
  # is routed to: the paper's unrestricted argmax (the default) picks it for
  # every user, select_occupied_only=True picks among the occupied ones.
  batch = _batch()
  for occupied_only in (True, False):
    tower = _tower(select_occupied_only=occupied_only)
    expected = _numpy_interests(tower, batch, occupied_only=True)
    empty = np.nonzero(~expected["occupied"].any(0))[0]
    assert empty.size, "the fixture must leave an intention without clicks"
    target = expected["vectors"][0, empty[0]]   # the same for every user
    query = tower.selection.query_layer
    query.kernel.assign(np.zeros_like(query.kernel.numpy()))
    query.bias.assign(target.astype(np.float32))
    got = tower.interests(batch)
    selected = got["selected"].numpy()
    if occupied_only:
      expected = _numpy_interests(tower, batch, occupied_only=True)
      np.testing.assert_allclose(got["weights"].numpy(), expected["weights"],
                                 rtol=2e-4, atol=2e-5)
      assert expected["mask"][np.arange(B), selected].all()
      np.testing.assert_array_equal(selected, expected["weights"].argmax(-1))
    else:
      np.testing.assert_array_equal(selected, np.full(B, empty[0]))


def test_padding_positions_do_not_change_the_output():
  tower = _tower()
  batch = _batch()
  other = dict(batch, history=tf.constant(
      [[1, 5, 9, 12], [2, 3, 4, 7], [11, 6, 2, 3]], tf.int64),
               history_timestamp=tf.constant([[10, 20, 30, 39], [1, 2, 3, 4],
                                              [100, 500, 9, 9]], tf.int64))
  np.testing.assert_allclose(tower(batch)[0].numpy(), tower(other)[0].numpy(),
                             atol=1e-6)


def test_gradients_reach_every_weight_and_tables_are_sparse():
  tower = _tower()
  with tf.GradientTape() as tape:
    out = tower.interests(_batch(), training=True)
    loss = (tf.reduce_sum(out["vectors"] * out["selection"][..., None])
            + tf.reduce_sum(tf.math.log(out["routing"] + 1e-9)))
  grads = tape.gradient(loss, tower.trainable_variables)
  for variable, grad in zip(tower.trainable_variables, grads):
    assert grad is not None, variable.name
  by_name = dict(zip([v.name for v in tower.trainable_variables], grads))
  sparse = [name for name, grad in by_name.items()
            if isinstance(grad, tf.IndexedSlices)]
  assert len(sparse) == 2, sparse   # item and category embedding tables
  assert "item_categories" not in " ".join(by_name)  # catalog not trainable


def test_config_round_trip_and_errors():
  tower = _tower()
  clone = MultiCLRecUserTower.from_config(tower.get_config())
  clone(_batch())
  clone.set_weights(tower.get_weights())
  np.testing.assert_allclose(clone(_batch())[0].numpy(),
                             tower(_batch())[0].numpy(), atol=1e-6)
  embedding = keras.layers.Embedding(N + 1, D)
  with pytest.raises(ValueError, match="item_categories must lie in"):
    MultiCLRecUserTower(embedding, CATEGORIES, C - 1, D)
  with pytest.raises(ValueError, match="num_serving_interests"):
    MultiCLRecUserTower(embedding, CATEGORIES, C, D, num_intentions=2,
                        num_serving_interests=3)
  batch = _batch()
  del batch["target_timestamp"]
  with pytest.raises(KeyError, match="target_timestamp"):
    tower(batch)


@pytest.mark.slow
def test_savedmodel_round_trip_without_dcg_tf(tmp_path):
  # ~20 s on the shared machine (tracing + a fresh TensorFlow process).
  tower = _tower(num_serving_interests=1)
  batch = _batch()
  specs = {k: tf.TensorSpec([None, None] if v.shape.rank == 2 else [None], v.dtype)
           for k, v in batch.items()}
  module = tf.Module()
  module.tower = tower
  signature = tf.function(lambda history, history_mask, history_timestamp,
                          target_timestamp: {"vectors": tower(dict(
                              history=history, history_mask=history_mask,
                              history_timestamp=history_timestamp,
                              target_timestamp=target_timestamp))[0]})
  concrete = signature.get_concrete_function(**specs)
  tf.saved_model.save(module, str(tmp_path / "user_tower"),
                      signatures={"serving_default": concrete})
  inputs = {k: v.numpy() for k, v in batch.items()}
  (loaded,) = savedmodel_outputs_in_fresh_process(
      [(tmp_path / "user_tower", inputs, tmp_path / "out.npy")])
  np.testing.assert_allclose(loaded, tower(batch)[0].numpy(), atol=1e-5)
