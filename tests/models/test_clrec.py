"""CLRecModel: Figure 1 variants, enqueue-before-loss, FIFO, gradients, u2u."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.towers.clrec_user_tower import CLRecUserTower
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.losses.in_batch_softmax import in_batch_softmax
from dcg_tf.models.clrec import CLRecModel
from dcg_tf.optimizers import LazyAdam

NUM_ITEMS, L = 12, 5


def _towers(seed=0):
  tf.random.set_seed(seed)
  embedding = ItemEmbedding(
      num_items=NUM_ITEMS, dim=8, combine="sum",
      features=[{"name": "category", "kind": "single", "vocab_size": 3}],
      feature_arrays={"category": (np.arange(NUM_ITEMS + 1) % 4).astype(np.int32)})
  item_tower = ItemTower(embedding, l2_normalize=True)
  user_tower = CLRecUserTower(embedding, max_len=L, num_heads=2,
                              attention_hidden_units=4)
  return user_tower, item_tower


def _batch(targets, histories, users=None):
  """Left-aligned batch; history rows are lists of item ids."""
  b = len(targets)
  history = np.zeros((b, L), np.int64)
  for i, row in enumerate(histories):
    history[i, :len(row)] = row
  mask = history > 0
  times = np.where(mask, 10 * (np.arange(L) + 1)[None, :], 0)
  return {
      "user": tf.constant(users if users is not None else np.arange(1, b + 1),
                          tf.int64),
      "history": tf.constant(history), "history_mask": tf.constant(mask),
      "history_timestamp": tf.constant(times, tf.int64),
      "target": tf.constant(targets, tf.int64),
      "target_timestamp": tf.constant(10 * (mask.sum(1) + 1), tf.int64),
  }


BATCH1 = _batch([1, 2, 3], [[7, 8], [9], [10, 11, 12]])
BATCH2 = _batch([4, 5, 4], [[7], [8, 9, 10], [11, 12]])


def _eq3_numpy(query, positive, negatives, valid, pos_ids, neg_ids, t=0.07):
  """Eq. 3 with cosine similarity, masked slots and accidental hits skipped."""
  def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
  q, p, n = unit(query), unit(positive), unit(negatives)
  out = []
  for b in range(len(q)):
    pos = q[b] @ p[b] / t
    neg = [q[b] @ n[i] / t for i in range(len(n))
           if valid[i] and neg_ids[i] != pos_ids[b]]
    out.append(np.log(np.exp(pos) + np.exp(neg).sum()) - pos)
  return np.array(out)


@pytest.mark.parametrize("queue", ["in_batch", "raw", "cached"])
def test_empty_queue_loss_equals_in_batch_softmax(queue):
  # The batch is enqueued before the loss: with an empty queue the negatives
  # are exactly the batch's other positives (duplicate target 4 masked).
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, queue=queue, queue_size=6)
  loss = model.compute_loss(BATCH2, training=True)["loss"].numpy()
  query = user_tower(BATCH2).numpy()
  items = item_tower(BATCH2["target"]).numpy()
  want = in_batch_softmax(query, items, temperature=0.07,
                          candidate_ids=BATCH2["target"]).numpy().mean()
  np.testing.assert_allclose(loss, want, rtol=1e-5)


def _ring(queue):
  values, valid = queue.contents()
  start = int(queue.pointer.numpy()) if int(queue.size.numpy()) == queue.capacity else 0
  return np.roll(values.numpy(), -start, axis=0)[:int(valid.numpy().sum())]


@pytest.mark.parametrize("queue", ["raw", "cached"])
def test_fifo_contents_after_steps_and_eval_does_not_enqueue(queue):
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, queue=queue, queue_size=5)
  reference = collections.deque(maxlen=5)
  for batch in (BATCH1, BATCH2, BATCH1):
    model.compute_loss(batch, training=True)
    reference.extend(batch["target"].numpy().tolist())
  ids_queue = model.item_queue if queue == "raw" else model.item_id_queue
  assert _ring(ids_queue).tolist() == list(reference) == [4, 5, 4, 1, 2, 3][-5:]
  if queue == "cached":
    # Cached g(y) of the enqueued items (weights unchanged, so equal to now).
    np.testing.assert_allclose(_ring(model.item_queue),
                               item_tower(tf.constant(list(reference))).numpy(),
                               atol=1e-6)
  before = [w.numpy().copy() for w in ids_queue.weights]
  model.compute_loss(BATCH2, training=False)
  for b, w in zip(before, ids_queue.weights):
    np.testing.assert_array_equal(b, w.numpy())


def test_third_step_matches_numpy_and_raw_equals_cached_without_updates():
  user_tower, item_tower = _towers()
  raw = CLRecModel(user_tower, item_tower, queue="raw", queue_size=9)
  cached = CLRecModel(user_tower, item_tower, queue="cached", queue_size=9)
  for model in (raw, cached):
    model.compute_loss(BATCH1, training=True)
    model.compute_loss(BATCH2, training=True)
  got_raw = raw.compute_loss(BATCH1, training=True)["loss"].numpy()
  got_cached = cached.compute_loss(BATCH1, training=True)["loss"].numpy()
  # Negatives: the queue after enqueueing BATCH1 again = [1, 2, 3, 4, 5, 4, 1,
  # 2, 3]; both copies of a row's own target are accidental hits.
  query = user_tower(BATCH1).numpy()
  positive = item_tower(BATCH1["target"]).numpy()
  queue_ids = np.array([1, 2, 3, 4, 5, 4, 1, 2, 3])
  negatives = item_tower(tf.constant(queue_ids)).numpy()
  want = _eq3_numpy(query, positive, negatives, np.ones(9, bool),
                    BATCH1["target"].numpy(), queue_ids).mean()
  np.testing.assert_allclose(got_raw, want, rtol=1e-5)
  np.testing.assert_allclose(got_cached, want, rtol=1e-5)
  # Without accidental-hit removal every other slot is a negative, the old
  # copies of a row's target (slots 0..2) and duplicates included; only the
  # row's own live positive is not (it is the numerator).
  keep_hits = CLRecModel(user_tower, item_tower, queue="raw", queue_size=9,
                         remove_accidental_hits=False)
  for batch in (BATCH1, BATCH2):
    keep_hits.compute_loss(batch, training=True)
  got = keep_hits.compute_loss(BATCH1, training=True)["loss"].numpy()
  want = []
  for b in range(3):
    others = np.concatenate([np.delete(positive, b, axis=0), negatives[:6]])
    want.append(_eq3_numpy(query[b:b + 1], positive[b:b + 1], others,
                           np.ones(len(others), bool), np.array([-1]),
                           np.zeros(len(others)))[0])
  np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)


def _id_rows_gradient(model):
  with tf.GradientTape() as tape:
    loss = model.compute_loss(BATCH2, training=True)["loss"]
  table = model.item_tower.item_embedding.id_embedding.trainable_weights[0]
  variables = model.trainable_variables
  grads = dict(zip([v.ref() for v in variables], tape.gradient(loss, variables)))
  assert not any(v.ref() in grads for v in
                 model.item_queue.weights + [model.item_queue.buffer])
  grad = grads[table.ref()]
  assert isinstance(grad, tf.IndexedSlices)
  return tf.convert_to_tensor(grad).numpy()


def test_queue_gets_no_gradient_and_cached_stops_gradient_of_old_batches():
  # Items 1..3 are only in the queue (from BATCH1), not in BATCH2.
  for queue, old_rows_move in (("raw", True), ("cached", False)):
    user_tower, item_tower = _towers()
    model = CLRecModel(user_tower, item_tower, queue=queue, queue_size=6)
    model.compute_loss(BATCH1, training=True)
    assert all(not w.trainable for w in model.item_queue.weights)
    grad = _id_rows_gradient(model)
    old = np.abs(grad[[1, 2, 3]]).sum()
    present = np.abs(grad[[4, 5]]).sum()
    assert present > 0
    assert (old > 0) == old_rows_move, queue


def test_checkpoint_round_trip_restores_queues_and_key_encoder(tmp_path):
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, queue="cached", queue_size=5,
                     momentum=0.9, u2u_weight=0.5, u2u_queue_size=4)
  for batch in (BATCH1, BATCH2):
    model.compute_loss(batch, training=True)
  # Training-only state is out of reach of the (exported) towers.
  tower_refs = {w.ref() for w in model.user_tower.weights + model.item_tower.weights}
  training_only = (model.item_queue.weights + model.item_id_queue.weights
                   + model.u2u_queue.weights + model.item_key_encoder.weights
                   + model.user_key_encoder.weights)
  # ... apart from the catalog arrays, which the key copies share (read-only).
  catalog = {w.ref() for w in item_tower.item_embedding.item_features.weights}
  assert catalog and tower_refs & {w.ref() for w in training_only} == catalog
  state = [w.numpy().copy() for w in model.non_trainable_weights]
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  user2, item2 = _towers(seed=7)
  model2 = CLRecModel(user2, item2, queue="cached", queue_size=5,
                      momentum=0.9, u2u_weight=0.5, u2u_queue_size=4)
  model2.compute_loss(BATCH1, training=False)     # create the variables
  tf.train.Checkpoint(model=model2).restore(path)
  restored = [w.numpy() for w in model2.non_trainable_weights]
  assert len(state) == len(restored)
  for a, b in zip(state, restored):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(model2.item_queue.buffer.numpy(),
                                model.item_queue.buffer.numpy())
  np.testing.assert_array_equal(model2.u2u_queue.buffer.numpy(),
                                model.u2u_queue.buffer.numpy())


def test_training_reduces_loss_and_momentum_follows_after_step():
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, queue="cached", queue_size=12,
                     momentum=0.9)
  model.compile(optimizer=keras.optimizers.Adam(0.05))
  # Six distinct targets: five in-batch negatives per row.
  batch = _batch([1, 2, 3, 4, 5, 6], [[7, 8], [9], [10, 11, 12], [7], [8, 9], [12]])
  start = model.compute_loss(batch, training=False)["loss"].numpy()  # no enqueue
  pairs = model.item_key_encoder.weight_pairs()
  key_before = [k.numpy().copy() for _, k in pairs]
  step = model.train_step   # eager: tracing costs more than 20 tiny steps
  step(batch)
  # keras Adam moves every row: the key gets Eq. 2 on every row of every weight.
  for (o, k), kb in zip(pairs, key_before):
    if k.dtype.is_floating:
      np.testing.assert_allclose(k.numpy(), 0.9 * kb + 0.1 * o.numpy(), atol=1e-6)
  for _ in range(20):
    step(batch)
  model.item_queue.reset()      # evaluate on the batch alone, as at the start
  model.item_id_queue.reset()
  end = model.compute_loss(batch, training=False)["loss"].numpy()
  assert end < 0.5 * start, (start, end)


def test_lazy_momentum_in_train_step_equals_dense_ema():
  # LazyAdam: the key tables are caught up lazily around apply_gradients
  # (before_apply_gradients / after_train_step); reading every item at the end
  # must give Eq. 2 applied to every weight at every step, here in NumPy.
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, queue="cached", queue_size=12,
                     momentum=0.8)
  model.compile(optimizer=LazyAdam(0.05))
  batches = [BATCH1, BATCH2, _batch([6, 7, 1], [[2], [3, 4], [5]])]
  model.compute_loss(BATCH1, training=False)      # builds the key copy
  pairs = model.item_key_encoder.weight_pairs()
  reference = [o.numpy().astype(np.float64) for o, _ in pairs]
  for step in range(6):
    model.train_step(batches[step % 3])
    reference = [0.8 * r + 0.2 * o.numpy() for r, (o, _) in zip(reference, pairs)]
  # Lazy: items 8..12 are not in the last batch, so their key rows were not
  # written at its step (6); each table has one `last_steps` entry per row.
  encoder = model.item_key_encoder
  assert int(encoder.step.numpy()) == 6
  id_rows = [last.numpy() for last in encoder.last_steps
             if last.shape[0] == NUM_ITEMS + 1]
  assert len(id_rows) == 1 and (id_rows[0][8:] < 6).all()
  encoder(tf.range(NUM_ITEMS + 1, dtype=tf.int64))
  for (_, k), r in zip(pairs, reference):
    np.testing.assert_allclose(k.numpy(), r, rtol=1e-5, atol=1e-6, err_msg=k.name)


def test_u2u_split_is_before_and_after_a_sampled_time():
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, u2u_weight=1.0, u2u_queue_size=4,
                     u2u_max_after=2)
  batch = _batch([4, 5, 6], [[7, 8, 9, 10], [11], []])
  for _ in range(5):
    before, after, valid = model.split_sequences(batch)
    np.testing.assert_array_equal(valid.numpy(), [True, True, False])
    for row, n in ((0, 4), (1, 1)):
      sequence = np.concatenate([batch["history"].numpy()[row, :n],
                                 batch["target"].numpy()[row:row + 1]])
      times = 10 * (np.arange(n + 1) + 1)
      k = int(before["history_mask"].numpy()[row].sum())
      assert 1 <= k <= n
      np.testing.assert_array_equal(before["history"].numpy()[row, :k], sequence[:k])
      assert before["target_timestamp"].numpy()[row] == times[k]
      want_after = sequence[k:k + 2]
      m = int(after["history_mask"].numpy()[row].sum())
      np.testing.assert_array_equal(after["history"].numpy()[row, :m], want_after)
      np.testing.assert_array_equal(after["history"].numpy()[row, m:], 0)
      assert after["target_timestamp"].numpy()[row] == times[k + m - 1]


def test_u2u_loss_with_empty_queue_is_in_batch_softmax_over_users():
  user_tower, item_tower = _towers()
  model = CLRecModel(user_tower, item_tower, queue="in_batch", u2u_weight=0.5,
                     u2u_queue_size=6, seed=3)
  batch = _batch([4, 5, 6], [[7, 8, 9, 10], [11, 12], [7]], users=[1, 2, 1])
  model.split_rng.reset_from_seed(3)
  before, after, _ = model.split_sequences(batch)
  q, p = user_tower(before).numpy(), user_tower(after).numpy()
  model.split_rng.reset_from_seed(3)
  out = model.compute_loss(batch, training=True)
  # Rows 0 and 2 are the same user: not each other's negatives.
  want = in_batch_softmax(q, p, temperature=0.07,
                          candidate_ids=tf.constant([1, 2, 1])).numpy().mean()
  np.testing.assert_allclose(out["u2u_loss"].numpy(), want, rtol=1e-5)
  np.testing.assert_allclose(out["loss"].numpy(),
                             out["u2i_loss"].numpy() + 0.5 * want, rtol=1e-5)
  assert int(model.u2u_queue.size.numpy()) == 3


def test_graph_mode_matches_eager_across_wrap_around():
  # Queue of 4 with batches of 3 wraps on the second batch; the tf.function
  # must order enqueue and read like eager execution.
  user_tower, item_tower = _towers()
  eager = CLRecModel(user_tower, item_tower, queue="cached", queue_size=4)
  graph = CLRecModel(user_tower, item_tower, queue="cached", queue_size=4)
  step = tf.function(lambda batch: graph.compute_loss(batch, training=True))
  for batch in (BATCH1, BATCH2, BATCH1):
    np.testing.assert_allclose(step(batch)["loss"].numpy(),
                               eager.compute_loss(batch, training=True)["loss"].numpy(),
                               rtol=1e-6)
  for a, b in zip(eager.non_trainable_weights, graph.non_trainable_weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_bad_arguments():
  user_tower, item_tower = _towers()
  with pytest.raises(ValueError, match="momentum needs queue='cached'"):
    CLRecModel(user_tower, item_tower, queue="raw", momentum=0.9)
  with pytest.raises(ValueError, match="queue must be one of"):
    CLRecModel(user_tower, item_tower, queue="big")


class _TinyData:
  """Duck-typed ProcessedDataset: what the experiment builders read."""
  num_items = NUM_ITEMS
  item_count = np.array([0] + [12 - i for i in range(NUM_ITEMS)], np.int64)
  item_features = {"category": (np.arange(NUM_ITEMS + 1) % 4).astype(np.int32)}
  schema = {"item_features": [{"name": "category", "kind": "single",
                               "vocab_size": 3, "max_len": 1}]}


@pytest.mark.parametrize("name,encoder", [
    ("clrec", "clrec"), ("clrec", "sasrec"), ("sampled_softmax", "clrec"),
    ("negative_sampling", "clrec"), ("shared_negative_sampling", "clrec"),
    ("ipw", "clrec")])
def test_registered_experiments_build_and_train_one_step(name, encoder):
  from dcg_tf import configs  # pylint: disable=g-import-not-at-top
  from dcg_tf.models import registry  # pylint: disable=g-import-not-at-top
  configs.import_all()
  assert registry.get_experiment(name).defaults["user_encoder"] == "clrec"
  assert registry.get_experiment(name).defaults["temperature"] == 0.07
  params = registry.resolve_params(name, {"max_len": L, "embedding_dim": 8,
                                          "queue_size": 6, "user_encoder": encoder})
  model = registry.build_model(name, params, _TinyData())
  assert model.item_tower.normalized
  assert type(model.user_tower).__name__ == {
      "clrec": "CLRecUserTower", "sasrec": "SelfAttentionUserTower"}[encoder]
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  for _ in range(2):   # eager: one trace per experiment would dominate
    assert np.isfinite(model.train_step(BATCH2)["loss"].numpy())
  if name == "clrec":
    assert int(model.item_queue.size.numpy()) == 6   # two batches of 3


def test_all_positions_in_batch_equals_in_batch_softmax_over_positions():
  """With all_positions and queue="in_batch", Eq. 3 runs over every position
  with all positions' positives as negatives: the in-batch softmax (tested
  against NumPy in tests/losses) on (queries [P], positives [P])."""
  import dcg_tf.layers.embeddings.item_embedding as ie  # pylint: disable=g-import-not-at-top
  from dcg_tf.towers.item_tower import ItemTower  # pylint: disable=g-import-not-at-top
  from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower  # pylint: disable=g-import-not-at-top
  from dcg_tf.losses.in_batch_softmax import in_batch_softmax  # pylint: disable=g-import-not-at-top
  from dcg_tf.models.clrec import CLRecModel  # pylint: disable=g-import-not-at-top
  tf.random.set_seed(0)
  emb = ie.ItemEmbedding(num_items=9, dim=8)
  user = SelfAttentionUserTower(emb, max_len=4, num_blocks=1, dropout=0.0,
                                l2_normalize=True)
  item = ItemTower(emb, l2_normalize=True)
  model = CLRecModel(user, item, queue="in_batch", temperature=0.5, all_positions=True)
  batch = {"history": tf.constant([[1, 2, 3, 0], [4, 5, 0, 0]], tf.int64),
           "history_mask": tf.constant([[1, 1, 1, 0], [1, 1, 0, 0]]) > 0,
           "target": tf.constant([6, 2], tf.int64)}
  got = model.compute_loss(batch, training=False)["loss"]
  queries, ids = model.queries_and_targets(batch)
  np.testing.assert_array_equal(ids.numpy(), [2, 3, 6, 5, 2])
  expected = tf.reduce_mean(in_batch_softmax(queries, item(ids), temperature=0.5,
                                             candidate_ids=ids))
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5)


def test_enqueue_positions_fills_the_queue_with_every_positions_positive():
  """What the queue holds with all_positions: the B targets by default, every
  position's next item with enqueue_positions (hand-worked below)."""
  from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower  # pylint: disable=g-import-not-at-top
  tf.random.set_seed(0)
  emb = ItemEmbedding(num_items=9, dim=8)
  user = SelfAttentionUserTower(emb, max_len=4, num_blocks=1, dropout=0.0,
                                l2_normalize=True)
  item = ItemTower(emb, l2_normalize=True)
  batch = {"history": tf.constant([[1, 2, 3, 0], [4, 5, 0, 0]], tf.int64),
           "history_mask": tf.constant([[1, 1, 1, 0], [1, 1, 0, 0]]) > 0,
           "target": tf.constant([6, 2], tf.int64)}
  # Row 0: history 1 2 3, target 6 -> next items 2, 3, 6; row 1: 4 5, target
  # 2 -> next items 5, 2. Positions in batch order: 2 3 6 5 2.
  targets_only = CLRecModel(user, item, queue="raw", queue_size=8,
                            all_positions=True)
  positions = CLRecModel(user, item, queue="raw", queue_size=8,
                         all_positions=True, enqueue_positions=True)
  small = CLRecModel(user, item, queue="raw", queue_size=3, all_positions=True,
                     enqueue_positions=True)
  first = [model.compute_loss(batch, training=True)["loss"].numpy()
           for model in (targets_only, positions, small)]
  assert _ring(targets_only.item_queue).tolist() == [6, 2]
  assert _ring(positions.item_queue).tolist() == [2, 3, 6, 5, 2]
  assert _ring(small.item_queue).tolist() == [6, 5, 2]     # the last C = 3
  # The first step has no older queue entry: every variant's loss is the
  # in-batch softmax over the positions (tested above).
  in_batch = CLRecModel(user, item, queue="in_batch", all_positions=True)
  np.testing.assert_allclose(
      first, [in_batch.compute_loss(batch, training=False)["loss"].numpy()] * 3,
      rtol=1e-5)
  with pytest.raises(ValueError, match="enqueue_positions needs all_positions"):
    CLRecModel(user, item, queue="raw", enqueue_positions=True)
