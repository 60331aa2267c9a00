"""MultiCLRecModel: queue updates before the loss (Eq. 13), losses, checkpoints."""

import types

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.multi_clrec_user_tower import MultiCLRecUserTower
from dcg_tf import configs
from dcg_tf.models import registry

configs.import_all()
from dcg_tf.models.multi_clrec import MultiCLRecModel

N, C, D, H, B, L = 20, 4, 8, 3, 4, 5
RNG = np.random.default_rng(0)
CATEGORIES = np.concatenate([[0], RNG.integers(1, C + 1, N)]).astype(np.int32)


def _model(queue="raw", main=6, secondary=3, seed=0):
  tf.random.set_seed(seed)
  embedding = ItemEmbedding(
      N, D, features=[{"name": "category", "kind": "single", "vocab_size": C}],
      feature_arrays={"category": CATEGORIES}, combine="concat")
  item_tower = ItemTower(embedding, output_dim=D, l2_normalize=True)
  user_tower = MultiCLRecUserTower(
      item_tower, CATEGORIES, C, D, num_intentions=H,
      category_embedding=embedding.feature_embeddings[0])
  return MultiCLRecModel(user_tower, item_tower, num_intentions=H,
                         main_queue_size=main, secondary_queue_size=secondary,
                         queue=queue)


def _batch(seed):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, L + 1, size=B)
  mask = np.arange(L)[None, :] < lengths[:, None]
  return {
      "history": tf.constant(np.where(mask, rng.integers(1, N + 1, (B, L)), 0)),
      "history_mask": tf.constant(mask),
      "history_timestamp": tf.constant(np.where(mask, np.arange(L)[None], 0)),
      "target_timestamp": tf.constant(lengths),
      "target": tf.constant(rng.choice(np.arange(1, N + 1), B, replace=False)),
  }


def _queue_state(model):
  return [w.numpy().copy() for w in model.queues.weights]


def test_enqueue_before_loss_matches_numpy_eq13():
  model = _model()
  batch = _batch(1)
  user = model.user_tower.interests(batch)
  out = model.compute_loss(batch, training=True)
  ids, _, valid = model.queues.main_contents()
  # Rule (1): the targets are in Q_0 when the loss is computed, so with empty
  # queues the negatives of each example are the other examples' targets.
  np.testing.assert_array_equal(ids.numpy()[valid.numpy()], batch["target"].numpy())
  z = tf.math.l2_normalize(user["vectors"], -1).numpy()      # [B, H, D]
  pos = model.item_tower(batch["target"]).numpy()               # [B, D], unit
  sel = user["selection"].numpy()
  expected = []
  for b in range(B):
    s = z[b] @ pos.T / 0.07                                     # [H, B]
    numerator = np.sum(sel[b] * np.exp(s[:, b]))
    expected.append(-np.log(numerator / np.exp(s).sum()))
  np.testing.assert_allclose(float(out["cl_loss"]), np.mean(expected), rtol=1e-4)
  np.testing.assert_allclose(
      float(out["loss"]),
      float(out["cl_loss"] + out["aux1"] + out["aux2"] + out["aux3"]), rtol=1e-6)


def test_dequeued_items_join_the_queue_of_their_intention_and_eval_is_read_only():
  model = _model(main=4, secondary=3)
  for seed in range(5):
    model.compute_loss(_batch(seed), training=True)
  sec_ids, _, sec_valid = model.queues.secondary_contents()
  assert sec_valid.numpy().sum() > 0
  routed = model.user_tower.item_interests(sec_ids).numpy()    # [H, Qs]
  rows = np.broadcast_to(np.arange(H)[:, None], routed.shape)
  np.testing.assert_array_equal(routed[sec_valid.numpy()], rows[sec_valid.numpy()])
  state = _queue_state(model)
  model.compute_loss(_batch(9), training=False)
  for a, b in zip(state, _queue_state(model)):
    np.testing.assert_array_equal(a, b)


def test_cached_queue_keeps_the_present_batch_gradient():
  # From empty queues Q_0 holds only the batch's targets; the cached variant
  # puts their fresh representations back, so its loss and gradients equal
  # those of the raw variant, which re-encodes them.
  results = []
  batch = _batch(2)
  reference = _model("raw")
  reference(batch)
  for queue in ("raw", "cached"):
    model = _model(queue)
    model(batch)
    for mine, theirs in zip(model.trainable_variables,
                            reference.trainable_variables):
      mine.assign(theirs)
    with tf.GradientTape() as tape:
      loss = model.compute_loss(batch, training=True)["loss"]
    grads = tape.gradient(loss, model.trainable_variables)
    results.append((float(loss), [tf.convert_to_tensor(g).numpy() for g in grads]))
  assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
  for a, b in zip(results[0][1], results[1][1]):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("queue", ["raw", "cached"])
def test_training_steps_run_every_loss_is_exercised_queues_get_no_gradient(queue):
  model = _model(queue)
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  for seed in range(3):
    out = model.train_step(_batch(seed))
    for key in ("loss", "cl_loss", "aux1", "aux2", "aux3"):
      assert np.isfinite(float(out[key])), key
  assert int(model.queues.main_ids.size) == 6
  assert int(model.queues.secondary_count.numpy().sum()) > 0
  batch = _batch(7)
  queue_variables = model.queues.weights
  assert not any(v.trainable for v in queue_variables)
  trainable = {id(v) for v in model.trainable_variables}
  assert not any(id(v) in trainable for v in queue_variables)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([v for v in queue_variables if v.dtype.is_floating])
    out = model.compute_loss(batch, training=True)
  assert all(g is None for g in tape.gradient(out["loss"], queue_variables))
  # Each auxiliary loss moves the parameters it is meant to shape.
  prototypes = model.user_tower.routing.prototypes
  aggregation = model.user_tower.aggregation.trainable_variables
  for key, variables in (("aux1", [prototypes]), ("aux3", [prototypes]),
                         ("aux2", aggregation), ("cl_loss", aggregation)):
    grads = tape.gradient(out[key], variables)
    assert any(g is not None and np.abs(tf.convert_to_tensor(g).numpy()).max() > 0
               for g in grads), key
  assert float(out["aux1"]) > 0 and float(out["aux2"]) > 0
  assert float(out["aux3"]) > 0


@pytest.mark.slow
def test_graph_mode_train_step_matches_eager():
  # The trainer runs train_step inside tf.function (tracing takes ~10-20 s on
  # a loaded 2-core machine, hence slow): the queue updates and losses must be
  # those of eager execution.
  eager, graph = _model("cached"), _model("cached")
  for model in (eager, graph):
    model(_batch(0))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
  for mine, theirs in zip(graph.trainable_variables, eager.trainable_variables):
    mine.assign(theirs)
  step = tf.function(graph.train_step)
  for seed in range(3):
    a, b = eager.train_step(_batch(seed)), step(_batch(seed))
    np.testing.assert_allclose(float(a["loss"]), float(b["loss"]), rtol=1e-4)
  for a, b in zip(_queue_state(eager), _queue_state(graph)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_checkpoint_round_trip_restores_all_queues(tmp_path):
  model = _model("cached")
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  for seed in range(3):  # 12 targets through Q_0 of size 6: 6 reach Q_h
    model.train_step(_batch(seed))
  assert model.queues.secondary_count.numpy().sum() > 0
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  restored = _model("cached", seed=1)
  restored(_batch(0))
  restored.compute_loss(_batch(0), training=False)  # builds every weight
  tf.train.Checkpoint(model=restored).restore(path).expect_partial()
  for a, b in zip(_queue_state(model), _queue_state(restored)):
    np.testing.assert_array_equal(a, b)
  a = model.compute_loss(_batch(8), training=False)
  b = restored.compute_loss(_batch(8), training=False)
  np.testing.assert_allclose(float(a["loss"]), float(b["loss"]), rtol=1e-6)


def test_registered_builder_trains_on_a_catalog_with_categories():
  data = types.SimpleNamespace(
      num_items=N,
      schema={"item_features": [
          {"name": "category", "kind": "single", "vocab_size": C, "max_len": 1},
          {"name": "attribute", "kind": "multi", "vocab_size": 6, "max_len": 2}]},
      item_features={"category": CATEGORIES,
                     "attribute": RNG.integers(0, 7, (N + 1, 2)).astype(np.int32)})
  params = registry.resolve_params("multi_clrec", {
      "embedding_dim": D, "num_intentions": H, "main_queue_size": 8,
      "secondary_queue_size": 4, "queue": "cached"})
  model = registry.build_model("multi_clrec", params, data)
  # c_t is g's category embedding (Eq. 5).
  assert model.user_tower.category_embedding is (
      model.item_tower.item_embedding.feature_embeddings[0])
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  out = model.train_step(_batch(0))
  assert np.isfinite(float(out["loss"]))
  vectors, mask = model(_batch(1))
  assert vectors.shape == (B, 1, D) and mask.numpy().all()
  data.schema = {"item_features": []}
  with pytest.raises(ValueError, match="no item feature 'category'"):
    registry.build_model("multi_clrec", params, data)


def test_defaults_and_beauty_config_use_the_paper_queue_and_candidates():
  # Regression: experiments/configs/multi_clrec_s3rec_beauty.cfg ran with
  # queue=cached, under which the MLP_1 item encoder collapsed (item-item
  # cosine 0.9993, HR@50 0.0045); the paper uses no caching on u2i tasks
  # (appendix A). Eq. 9 selects among all H intentions (the paper's rule).
  import os  # pylint: disable=g-import-not-at-top
  params = registry.resolve_params("multi_clrec", {})
  assert params["queue"] == "raw" and params["select_occupied_only"] is False
  path = os.path.join(os.path.dirname(__file__), "..", "..", "experiments",
                      "configs", "multi_clrec_s3rec_beauty.cfg")
  with open(path) as f:
    flags = [line.strip() for line in f if line.startswith("--")]
  assert "--param=queue=raw" in flags
  assert not any(flag.startswith("--param=queue=cached") for flag in flags)
  # The config states its Eq. 9 rule.
  assert "--param=select_occupied_only=False" in flags


def _category_only_data():
  return types.SimpleNamespace(
      num_items=N,
      schema={"item_features": [
          {"name": "category", "kind": "single", "vocab_size": C, "max_len": 1}]},
      item_features={"category": CATEGORIES})


@pytest.mark.parametrize("hidden_units", [[5], []])
def test_registered_mlp1_matches_numpy_with_hand_built_weights(hidden_units):
  # MLP_1 (Eq. 5) = the item tower: [e_id(y); e_cat(y)] -> projection P
  # (linear, from the concat item embedding) -> hidden ReLU layers
  # (`hidden_units`, default [64]; [] = linear) -> output W -> l2-normalised.
  params = registry.resolve_params("multi_clrec", {
      "embedding_dim": D, "num_intentions": H, "main_queue_size": 8,
      "secondary_queue_size": 4, "hidden_units": hidden_units})
  model = registry.build_model("multi_clrec", params, _category_only_data())
  tower = model.item_tower
  ids = tf.constant([1, 2, 7, 20], tf.int64)
  tower(ids)
  rng = np.random.default_rng(3)
  for variable in tower.trainable_variables:        # hand-built, scale 0.5
    variable.assign(0.5 * rng.standard_normal(variable.shape))
  embedding = tower.item_embedding
  x = np.concatenate([
      embedding.id_embedding.embeddings.numpy()[ids.numpy()],
      embedding.feature_embeddings[0].embeddings.numpy()[
          CATEGORIES[ids.numpy()]]], -1)                          # [4, 2D]
  x = x @ embedding.projection.kernel.numpy() + embedding.projection.bias.numpy()
  for layer in tower.head.hidden_layers:
    pre = x @ layer.kernel.numpy() + layer.bias.numpy()
    assert (pre < 0).any()                  # the ReLU switches units off
    x = np.maximum(pre, 0.0)
  x = x @ tower.head.output_layer.kernel.numpy() + (
      tower.head.output_layer.bias.numpy())
  expected = x / np.linalg.norm(x, axis=-1, keepdims=True)
  np.testing.assert_allclose(tower(ids).numpy(), expected, rtol=1e-4,
                             atol=1e-5)
  assert len(tower.head.hidden_layers) == len(hidden_units)
  assert registry.resolve_params("multi_clrec", {})["hidden_units"] == [64]


def test_builder_rejects_a_string_for_the_eq9_rule():
  # `--param=select_occupied_only=false` reaches the builder as the string
  # "false" (not a Python literal), which bool() would read as True.
  params = registry.resolve_params("multi_clrec", {
      "embedding_dim": D, "num_intentions": H,
      "select_occupied_only": "false"})
  with pytest.raises(ValueError, match="select_occupied_only must be True"):
    registry.build_model("multi_clrec", params, _category_only_data())


def test_traced_gradient_sums_no_activation_with_an_addn_of_three_or_more():
  # Regression (issue 10): the gradients of z_h, g(y_t), c_t and g(y_T) were
  # each summed over 3-10 consumers by one AddN, which Grappler's memory
  # optimizer turns into AssignAdds in run-time order, so two processes
  # training the same config drifted (S3-Rec Beauty: 57 of 71 variables
  # differed after one step). `fan_out` copies keep every such AddN at <= 2
  # inputs. Variable gradients (the item tower runs on history, targets and
  # queue) may still have 3; activations are the tensors with B rows.
  model = _model()
  batch = _batch(0)
  model.compute_loss(batch, training=False)

  @tf.function
  def gradients(batch):
    with tf.GradientTape() as tape:
      loss = model.compute_loss(batch, training=True)["loss"]
    return tape.gradient(loss, model.trainable_variables)

  graph = gradients.get_concrete_function(batch).graph
  wide = [(op.name, len(op.inputs)) for op in graph.get_operations()
          if op.type == "AddN" and len(op.inputs) > 2
          and op.outputs[0].shape.rank and op.outputs[0].shape[0] == B]
  assert not wide, wide


# Genres of a hand-made catalog (ids: 1 = Comedy, 2 = Drama, 3 = Horror),
# rows 0 (padding) to 5, 0-padded; rows 6..N carry no genre.
GENRES = np.zeros([N + 1, 3], np.int32)
GENRES[1:6] = [[2, 1, 0],    # Drama, Comedy
               [2, 0, 0],    # Drama
               [1, 3, 2],    # Comedy, Horror, Drama
               [0, 0, 0],    # (no genres listed)
               [3, 1, 1]]    # Horror, Comedy listed twice
# Items carrying each genre (each item once): Comedy {1, 3, 5} = 3,
# Drama {1, 2, 3} = 3, Horror {3, 5} = 2. Rarest per item:
#   1: Drama 3 vs Comedy 3, a tie -> the lower id, Comedy (1) (counting item
#      5's Comedy twice would give Drama; the first listed would be Drama);
#   2: Drama (2); 3: Horror 2 < 3 (3); 4: none -> 0 (unknown); 5: Horror (3);
#   6..N: none -> 0.
RAREST = np.array([0, 1, 2, 3, 0, 3] + [0] * (N - 5))


def test_rarest_category_matches_the_hand_worked_catalog():
  from dcg_tf.configs.multi_clrec import rarest_category  # pylint: disable=g-import-not-at-top
  np.testing.assert_array_equal(rarest_category(GENRES), RAREST)
  # A single-valued column is its own category.
  np.testing.assert_array_equal(rarest_category(CATEGORIES), CATEGORIES)


def _genre_data():
  return types.SimpleNamespace(
      num_items=N,
      schema={"item_features": [
          {"name": "genre", "kind": "multi", "vocab_size": 3, "max_len": 3}]},
      item_features={"genre": GENRES})


def test_builder_routes_a_multi_valued_field_by_each_items_rarest_value():
  params = registry.resolve_params("multi_clrec", {
      "embedding_dim": D, "num_intentions": H, "main_queue_size": 8,
      "secondary_queue_size": 4, "category_feature": "genre",
      "category_value": "rarest"})
  model = registry.build_model("multi_clrec", params, _genre_data())
  tower = model.user_tower
  np.testing.assert_array_equal(tower.item_categories.numpy(), RAREST)
  # c_t is the row of the chosen genre in g's (multi-valued) genre table
  # (Eq. 5), not the mean over the item's genres; unknown -> zeros.
  table = model.item_tower.item_embedding.feature_embeddings[0]
  assert tower.category_embedding is table
  ids = tf.constant([[1, 2, 3, 4, 5]], tf.int64)
  c = tower.category_embeddings(ids).numpy()[0]                  # [5, D]
  rows = table.embeddings.numpy()
  np.testing.assert_allclose(c[[0, 1, 2, 4]], rows[[1, 2, 3, 3]], rtol=1e-6)
  np.testing.assert_array_equal(c[3], np.zeros(D))
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  assert np.isfinite(float(model.train_step(_batch(0))["loss"]))


def test_builder_refuses_a_multi_valued_field_by_default_and_unknown_rules():
  params = registry.resolve_params("multi_clrec", {
      "embedding_dim": D, "num_intentions": H, "category_feature": "genre"})
  assert params["category_value"] == "only"
  with pytest.raises(ValueError, match="'genre' is 'multi'-valued.*"
                     "category_value=rarest"):
    registry.build_model("multi_clrec", params, _genre_data())
  params["category_value"] = "first"
  with pytest.raises(ValueError,
                     match="category_value must be one of only, rarest, got 'first'"):
    registry.build_model("multi_clrec", params, _genre_data())
