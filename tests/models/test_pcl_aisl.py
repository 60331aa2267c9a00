"""PCL-AISL and the multi-interest baselines: losses, key encoder, prototypes, export."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.models import registry
from dcg_tf.optimizers import get_optimizer
from dcg_tf.serving.export import export_towers
from dcg_tf.training import checkpoint
from dcg_tf.training import trainer as trainer_lib
from tests.data.fixtures import write_tiny_dataset

configs.import_all()

NUM_ITEMS = 40
SMALL = {"embedding_dim": 8, "max_len": 6, "num_negatives": 3}
# pcl_aisl runs always; the others (20-50 s each on a loaded machine) are slow.
MODELS = ["pcl_aisl"] + [pytest.param(name, marks=pytest.mark.slow) for name in (
    "mind", "comirec_dr", "comirec_sa", "pcl_aisl_no_pcl", "pcl_aisl_no_aisl")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  path = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=30,
                            num_items=NUM_ITEMS, seed=2)
  return ProcessedDataset.load(path)


def _build(name, data, **overrides):
  trainer_lib.set_seeds(1)
  params = registry.resolve_params(name, dict(SMALL, **overrides))
  return registry.build_model(name, params, data)


def _unit(x):
  # tf.math.l2_normalize: x / sqrt(max(|x|^2, 1e-12)) (a zero vector stays 0,
  # e.g. an interest the ReLU projection zeroes).
  return x / np.sqrt(np.maximum((x ** 2).sum(-1, keepdims=True), 1e-12))


def _batch(data, seed=0, size=6):
  config = trainer_lib.TrainerConfig(batch_size=size, max_len=6, seed=seed,
                                     all_prefixes=True)
  return next(iter(trainer_lib.training_dataset(
      _build("mind", data), data, config, epoch=0)))


def test_max_reduction_scores_by_the_best_active_interest(data):
  # Eq. 1 with the "max" reduction: s(u, i) = max over ACTIVE k of cos_k(i),
  # checked against NumPy on the tower's own interests.
  model = _build("pcl_aisl_no_pcl", data)
  batch = _batch(data)
  user = model.user_tower.interests(batch)
  items = tf.constant([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 5, 9], [2, 4, 6],
                       [3, 6, 9]], tf.int64)
  candidates = model.encode_items(items, False)
  got = model.interest_scores(user, candidates[:, 0], candidates).numpy()
  v = _unit(user["vectors"].numpy())
  e = candidates.numpy()
  active = user["mask"].numpy()
  for b in range(6):
    cos = e[b] @ v[b].T                                        # [C, K]
    np.testing.assert_allclose(got[b], cos[:, active[b]].max(1), atol=1e-5)
  # K_u is the number of leading active slots.
  np.testing.assert_array_equal(active.sum(1), user["num_interests"].numpy())
  assert np.all(active[:, 0])


def test_hard_reduction_reads_the_interest_closest_to_the_target(data):
  model = _build("comirec_dr", data)
  batch = _batch(data)
  user = model.user_tower.interests(batch)
  items = tf.concat([tf.cast(batch["target"], tf.int64)[:, None],
                     tf.constant([[1, 2]] * 6, tf.int64)], 1)
  candidates = model.encode_items(items, False)
  got = model.interest_scores(user, candidates[:, 0], candidates).numpy()
  v = user["vectors"].numpy()
  e = candidates.numpy()
  for b in range(6):
    best = np.argmax(v[b] @ e[b, 0])                          # <v_k, e+>
    vb = _unit(v[b, best])
    np.testing.assert_allclose(got[b], e[b] @ vb, atol=1e-5)


def test_main_loss_is_eq1_bce_and_aisl_gets_a_gradient(data):
  model = _build("pcl_aisl_no_pcl", data)
  batch = _batch(data)
  with tf.GradientTape() as tape:
    out = model.compute_loss(batch, training=True)
  selection = model.user_tower.interest_selection.trainable_variables
  grads = tape.gradient(out["loss"], selection)
  assert any(np.abs(g.numpy()).max() > 0 for g in grads)
  assert 1.0 <= float(out["num_interests"]) <= 4.0


def test_key_encoder_follows_eq10_and_gets_no_gradient(data):
  model = _build("pcl_aisl", data, momentum=0.9)
  model.compile(optimizer=get_optimizer("lazy_adam", 0.05))
  batch = _batch(data)
  model.train_step(batch)       # builds everything; keys copied at first call
  pairs = model.key_encoder.weight_pairs()
  assert pairs
  trainable = {id(v) for v in model.trainable_variables}
  assert not any(id(k) in trainable for _, k in pairs)
  # No gradient from the loss reaches the key encoder's weights.
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([k for _, k in pairs])
    loss = model.compute_loss(batch, training=True)["loss"]
  assert all(g is None for g in tape.gradient(loss, [k for _, k in pairs]))
  before = [k.numpy().copy() for _, k in pairs]
  model.train_step(_batch(data, seed=1))
  for (online, key), old in zip(pairs, before):
    # Eq. 10 after the optimizer step: k <- 0.9 k + 0.1 o (o: the new online).
    np.testing.assert_allclose(key.numpy(), 0.9 * old + 0.1 * online.numpy(),
                               rtol=1e-5, atol=1e-7)


def test_self_loss_is_eq11_over_the_batch_keys(data):
  model = _build("pcl_aisl", data, prototype_weight=0.0)
  model.compile(optimizer=get_optimizer("lazy_adam", 0.05))
  batch = _batch(data)
  out = model.compute_loss(batch, training=True)
  target = tf.cast(batch["target"], tf.int64)
  q = model.encode_items(target, False).numpy()
  seed = tf.random.experimental.stateless_fold_in(model.step_seed(), 0)
  k = model.keys(target, seed).numpy()
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  ids = target.numpy()
  losses = []
  for x in range(len(ids)):
    logits = q[x] @ k.T / 0.1
    keep = (ids != ids[x]) | (np.arange(len(ids)) == x)     # other copies removed
    losses.append(-logits[x] + np.log(np.exp(logits[keep]).sum()))
  np.testing.assert_allclose(float(out["ssl_loss"]), np.mean(losses), rtol=1e-4)


def _train(name, data, model_dir, steps=0, epochs=2):
  trainer_lib.set_seeds(5)
  model = _build(name, data)
  config = trainer_lib.TrainerConfig(batch_size=8, max_len=6, epochs=epochs,
                                     steps=steps, seed=5, all_prefixes=True,
                                     checkpoint_every=1000, log_every=1000,
                                     progress=False)
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 0.05), data,
                                str(model_dir), config)
  trainer.train()
  return trainer, model


@pytest.mark.slow
def test_prototypes_refresh_each_epoch_are_checkpointed_and_resume_exactly(
    data, tmp_path):
  tf.config.experimental.enable_op_determinism()
  full, model = _train("pcl_aisl", data, tmp_path / "full")
  assert int(model.refreshed_epoch) == 1
  protos = model.prototypes
  assert np.abs(protos.prototypes.numpy()).sum() > 0
  assert protos.num_prototypes == 4                       # N / 10
  # The clusters are the k-means of the current keys: each item's prototype
  # is (one of) its nearest by inner product among the refreshed centroids.
  keys = model.prototype_keys(5, 1)
  nearest = (keys @ protos.prototypes.numpy().T).max(1)
  own = np.sum(keys * protos.prototypes.numpy()[protos.item_clusters.numpy()[1:]], 1)
  assert np.mean(np.isclose(own, nearest, atol=1e-4)) > 0.9
  per_epoch = full.steps_per_epoch()
  stop = per_epoch + per_epoch // 2            # inside epoch 1, after its refresh
  _train("pcl_aisl", data, tmp_path / "resumed", steps=stop)
  _train("pcl_aisl", data, tmp_path / "resumed")
  diff = checkpoint.checkpoint_difference(
      checkpoint.checkpoint_path(str(tmp_path / "full")),
      checkpoint.checkpoint_path(str(tmp_path / "resumed")))
  assert "model/prototypes/prototypes/.ATTRIBUTES/VARIABLE_VALUE" in diff
  assert "model/prototypes/temperatures/.ATTRIBUTES/VARIABLE_VALUE" in diff
  assert all(v == 0.0 for v in diff.values()), {k: v for k, v in diff.items() if v}
  # The integer state too: the clusters and which refresh has run.
  readers = [tf.train.load_checkpoint(checkpoint.checkpoint_path(str(tmp_path / d)))
             for d in ("full", "resumed")]
  for key in ("model/prototypes/item_clusters/.ATTRIBUTES/VARIABLE_VALUE",
              "model/refreshed_epoch/.ATTRIBUTES/VARIABLE_VALUE"):
    a, b = (r.get_tensor(key) for r in readers)
    np.testing.assert_array_equal(a, b)
  assert int(readers[0].get_tensor(
      "model/refreshed_epoch/.ATTRIBUTES/VARIABLE_VALUE")) == 1


@pytest.mark.parametrize("name", MODELS)
def test_trains_a_few_steps_and_exports_k_vectors_and_mask(name, data, tmp_path):
  _, model = _train(name, data, tmp_path / "model", steps=3, epochs=1)
  export_dir = str(tmp_path / "export")
  export_towers(model.user_tower, model.item_tower, data, export_dir, max_len=6)
  saved = tf.train.list_variables(
      os.path.join(export_dir, "user_tower", "variables", "variables"))
  saved_names = " ".join(n for n, _ in saved)
  for training_only in ("prototypes", "key_encoder", "proposal", "key_mask"):
    assert training_only not in saved_names, (name, training_only)
  history = np.array([[4, 9, 2, 0, 0, 0], [1, 0, 0, 0, 0, 0]], np.int64)
  vocab = data.vocab("item")
  raw = [[vocab[i - 1] if i else "" for i in row] for row in history]
  got = _serve_without_dcg_tf(os.path.join(export_dir, "user_tower"), raw, tmp_path)
  vectors, mask = model.user_tower({"history": tf.constant(history),
                                    "history_mask": tf.constant(history > 0)})
  assert got["embeddings"].shape == (2, 4, 8) and got["mask"].shape == (2, 4)
  np.testing.assert_allclose(got["embeddings"], vectors.numpy(), atol=1e-5)
  np.testing.assert_array_equal(got["mask"], mask.numpy())
  assert np.all(got["mask"][:, 0])
  if name.startswith("pcl_aisl") and name != "pcl_aisl_no_aisl":
    k_u = model.user_tower.interests({"history": tf.constant(history),
                                      "history_mask": tf.constant(history > 0)})
    np.testing.assert_array_equal(got["mask"].sum(1), k_u["num_interests"].numpy())


_SERVE = """
import json, sys
import numpy as np
import tensorflow as tf
directory, history, out = json.loads(sys.argv[1])
model = tf.saved_model.load(directory)
result = model.signatures["serving_default"](history=tf.constant(history))
np.savez(out, **{k: v.numpy() for k, v in result.items()})
assert "dcg_tf" not in sys.modules and "tf_keras" not in sys.modules
"""


def _serve_without_dcg_tf(directory, history, tmp_path):
  """The export's serving_default outputs, from a process without dcg_tf."""
  out = str(tmp_path / "served.npz")
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  result = subprocess.run(
      [sys.executable, "-c", _SERVE, json.dumps([directory, history, out])],
      env=env, capture_output=True, text=True, timeout=300, cwd="/", check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(out, allow_pickle=False) as served:
    return {k: served[k] for k in served.files}
