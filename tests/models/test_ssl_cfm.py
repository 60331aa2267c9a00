"""SSLCFMModel: Eq. 5 = Eq. 6 + alpha Eq. 3 against NumPy, masked fields use
the learned defaults (and get a gradient), per-step seeds, the SSL batch is
uniform over the catalog, FD, G's private layers, and nothing of the
augmentation in the exported item tower."""

import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.models.ssl_cfm import SSL_STREAM
from dcg_tf.optimizers import get_optimizer
from dcg_tf.training import trainer as trainer_lib
from tests.models.fixtures import first_batch, small_model, tiny_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return tiny_data(tmp_path_factory)



def _softmax_loss(scores, ids, tau):
  """-log softmax(scores / tau)[i, i] with other copies of ids[i] removed."""
  out = []
  for i in range(len(scores)):
    keep = (ids != ids[i]) | (np.arange(len(ids)) == i)
    row = scores[i][keep] / tau
    out.append(np.log(np.exp(row - row.max()).sum()) + row.max() - scores[i, i] / tau)
  return np.array(out)


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_total_loss_is_eq5_of_eq6_and_spread_out_against_numpy(data):
  # SO: no augmentation and H = G, so every term is a plain tower output.
  model = small_model(data, "spread_out", ssl_weight=0.7)
  batch = first_batch(model, data)
  out = model.compute_loss(batch)
  users = model.user_tower(batch).numpy()
  target = batch["target"].numpy()
  items = model.item_tower(target).numpy()
  main = _softmax_loss(_unit(users) @ _unit(items).T, target, 0.07).mean()  # Eq. 6
  ssl_ids = batch["aux"][SSL_STREAM]["item"].numpy()
  z = _unit(model.item_tower(ssl_ids).numpy())
  ssl = _softmax_loss(z @ z.T, ssl_ids, 0.1).mean()                         # Eq. 3
  assert float(out["main_loss"]) == pytest.approx(main, rel=1e-4)
  assert float(out["ssl_loss"]) == pytest.approx(ssl, rel=1e-4)
  assert float(out["loss"]) == pytest.approx(main + 0.7 * ssl, rel=1e-4)    # Eq. 5


def test_cfm_views_use_the_defaults_of_masked_fields_and_eq3_matches_numpy(data):
  model = small_model(data, "ssl_cfm_no_dropout")
  embedding = model.item_tower.item_embedding
  assert embedding.field_names == ("item", "category", "attribute")
  ids = tf.constant(np.arange(1, 16), tf.int64)
  seed = tf.constant([0, 5], tf.int64)
  z, z_prime = (v.numpy() for v in model.ssl_views(ids, seed))
  masked_a = int(np.flatnonzero(
      model.view_masks(tf.random.experimental.stateless_fold_in(seed, 0))[0])[0])
  tables = [embedding.id_embedding] + list(embedding.feature_embeddings)
  table = tables[masked_a].trainable_variables[0]
  # Changing the masked field's table moves only the view that keeps it ...
  original = table.numpy()
  table.assign(original + 1.0)
  z2, z2_prime = (v.numpy() for v in model.ssl_views(ids, seed))
  table.assign(original)
  np.testing.assert_allclose(z2, z, atol=1e-6)
  assert np.abs(z2_prime - z_prime).max() > 1e-3
  # ... and changing its default moves only the view that masks it.
  defaults = model.field_masking.default_embeddings
  before = defaults.numpy()
  defaults.assign(before + np.eye(3, dtype=np.float32)[masked_a][:, None])
  z3, z3_prime = (v.numpy() for v in model.ssl_views(ids, seed))
  defaults.assign(before)
  assert np.abs(z3 - z).max() > 1e-3
  np.testing.assert_allclose(z3_prime, z_prime, atol=1e-6)


def test_the_gradient_of_the_ssl_loss_reaches_the_defaults(data):
  model = small_model(data, "ssl_cfm")
  batch = first_batch(model, data)
  defaults = model.field_masking.default_embeddings
  model.compute_loss(batch, training=True)
  with tf.GradientTape(persistent=True) as tape:
    out = model.compute_loss(batch, training=True)
  total = tape.gradient(out["loss"], defaults)
  main = tape.gradient(out["main_loss"], defaults)
  # Complementary masks: every field is masked in one view, so every default
  # row gets a gradient, and only through the SSL term.
  assert (np.abs(tf.convert_to_tensor(total).numpy()).sum(axis=1) > 0).all()
  assert main is None


def test_the_step_keys_the_draws_and_the_seed_field_changes(data):
  model = small_model(data, "ssl_cfm", seed=4)
  np.testing.assert_array_equal(model.step_seed().numpy(), [4, 0])  # no optimizer
  model.optimizer = get_optimizer("lazy_adam", 0.01)
  masks = []
  for step in range(12):
    model.optimizer.iterations.assign(step)
    np.testing.assert_array_equal(model.step_seed().numpy(), [4, step])
    masks.append(tuple(model.view_masks(model.step_seed())[0].numpy()))
  assert len(set(masks)) > 1
  model.optimizer.iterations.assign(3)
  assert tuple(model.view_masks(model.step_seed())[0].numpy()) == masks[3]


def _chi_square(counts, p):
  expected = counts.sum() * p
  return float(((counts - expected) ** 2 / expected).sum())


def _chi_square_critical(df, z=3.090):
  """The 0.999 quantile of chi-square(df), Wilson-Hilferty (z = 0.999 normal quantile)."""
  return df * (1 - 2 / (9 * df) + z * np.sqrt(2 / (9 * df))) ** 3


def _drawn(model, data, batches=50):
  stream = model.auxiliary_streams(data, batch_size=64, seed=0, epoch=0)[SSL_STREAM]
  ids = np.concatenate([b["item"].numpy() for b in stream.take(batches)])
  return np.bincount(ids, minlength=data.num_items + 1)


def test_the_ssl_batch_is_uniform_over_the_catalog(data):
  n = data.num_items
  counts = _drawn(small_model(data, "ssl_cfm"), data)
  assert counts[0] == 0
  uniform = np.full(n, 1.0 / n)
  assert _chi_square(counts[1:], uniform) < _chi_square_critical(n - 1)
  # The switch draws by training frequency instead, far from uniform.
  counts = _drawn(small_model(data, "ssl_cfm", ssl_item_distribution="training"), data)
  train = data.item_count[1:] / data.item_count[1:].sum()
  live = train > 0
  assert _chi_square(counts[1:][live], train[live]) < _chi_square_critical(live.sum() - 1)
  assert (counts[1:][~live] == 0).all()
  assert _chi_square(counts[1:], uniform) > 10 * _chi_square_critical(n - 1)


def test_feature_dropout_augments_the_main_task_only_while_training(data):
  model = small_model(data, "feature_dropout", dropout_rate=0.5)
  assert model.auxiliary_streams(data, 4, 0, 0) == {}
  ids = tf.constant(np.arange(1, 16), tf.int64)
  plain = model.item_tower(ids).numpy()
  np.testing.assert_array_equal(model.encode_candidates(ids, training=False).numpy(),
                                plain)
  dropped = model.encode_candidates(ids, training=True).numpy()
  # Items with several attributes lose some of them in the training view.
  assert np.abs(dropped - plain).max() > 1e-4
  batch = first_batch(model, data)
  out = model.compute_loss(batch, training=True)
  assert "ssl_loss" not in out and float(out["loss"]) == float(out["main_loss"])


def test_second_encoder_has_its_own_top_layers_and_shares_the_tables(data):
  model = small_model(data, "spread_out", ssl_private_layers=1)
  ids = tf.constant([1, 2, 3], tf.int64)
  z, z_prime = model.ssl_views(ids, tf.constant([0, 0], tf.int64))
  assert np.abs(_unit(z.numpy()) - _unit(z_prime.numpy())).max() > 1e-3
  batch = first_batch(model, data)
  with tf.GradientTape() as tape:
    ssl = model.compute_loss(batch, training=True)["ssl_loss"]
  own = model.second_encoder_layers[0].trainable_variables
  table = model.item_tower.item_embedding.feature_embeddings[0].trainable_variables
  grads = tape.gradient(ssl, own + table)
  assert all(g is not None for g in grads)
  with pytest.raises(ValueError, match="ssl_private_layers=3"):
    small_model(data, "ssl_cfm", ssl_private_layers=3)


class _ItemServing(tf.Module):

  def __init__(self, tower):
    super().__init__()
    self.tower = tower

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
  def serve(self, item):
    return self.tower(item, training=False)


def test_the_exported_item_tower_holds_no_augmentation(data, tmp_path):
  model = small_model(data, "ssl_cfm", ssl_private_layers=1)
  model.compute_loss(first_batch(model, data), training=True)
  augmentation = [model.field_masking.default_embeddings] + [
      v for layer in model.second_encoder_layers for v in layer.variables]
  assert all(any(v is w for w in model.variables) for v in augmentation)
  tower_vars = model.item_tower.variables
  assert not any(v is w for v in augmentation for w in tower_vars)
  path = str(tmp_path / "item_tower")
  tf.saved_model.save(_ItemServing(model.item_tower), path)
  saved = [name for name, _ in tf.train.list_variables(
      os.path.join(path, "variables", "variables"))
           if name.endswith("VARIABLE_VALUE")]
  assert len(saved) == len(tower_vars)
  assert not [n for n in saved if "default" in n or "second_encoder" in n
              or "masking" in n]
