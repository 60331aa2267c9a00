"""MicRec's item CL plug-in: Eq. 3 and Eq. 5 of a built model against NumPy,
Eq. 8's total, any experiment switching it on by parameters (runs without it
keep their parameters), training steps, and no projector in the exported
towers."""

import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.models import registry
from dcg_tf.optimizers import get_optimizer
from dcg_tf.training import trainer as trainer_lib
from tests.models.fixtures import first_batch, small_model, tiny_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return tiny_data(tmp_path_factory)



def _dense(layer, x):
  kernel, bias = [v.numpy() for v in layer.output_layer.weights]
  return x @ kernel + bias


def test_feature_level_loss_is_eq3_on_the_projected_fields(data):
  # Mask ratio 0: the augmentation is the identity, so Eq. 3 is computable
  # from the field embeddings and the projector's weights alone.
  model = small_model(data, "two_tower", item_cl="fea", item_cl_mask_ratio=0.0,
                 item_cl_weights=0.5)
  batch = first_batch(model, data)
  out = model.total_loss(batch, training=True)
  task = model.item_contrastive
  ids = batch["target"].numpy()
  fields = model.item_tower.item_embedding.field_embeddings(ids).numpy()
  z = _dense(task.projectors["fea"], fields.reshape(len(ids), -1))   # [B, D]
  s = z @ z.T                                                        # tau = 1
  expected = []
  for i in range(len(ids)):
    negatives = [s[i, j] for j in range(len(ids)) if ids[j] != ids[i]]
    expected.append(np.log(np.exp(negatives).sum()) - s[i, i] if negatives else 0.)
  np.testing.assert_allclose(out["item_cl_fea_loss"], np.mean(expected),
                             rtol=1e-4, atol=1e-5)
  main = model.compute_loss(batch, training=True)["loss"]
  np.testing.assert_allclose(out["loss"], main + 0.5 * np.mean(expected),
                             rtol=1e-4, atol=1e-5)


def test_session_level_loss_is_eq5_on_the_stream(data):
  model = small_model(data, "two_tower", item_cl="sess", item_cl_negatives=4,
                 item_cl_positives=2)
  batch = first_batch(model, data)
  pairs = {k: v.numpy() for k, v in batch["aux"]["item_cl_sess"].items()}
  out = model.total_loss(batch, training=True)
  project = lambda ids: _dense(model.item_contrastive.projectors["sess"],
                               model.item_tower(ids.reshape(-1)).numpy())
  a = project(pairs["anchor"])
  p = project(pairs["positive"]).reshape(a.shape[0], 2, -1)
  n = project(pairs["negative"]).reshape(a.shape[0], 4, -1)
  expected = np.zeros(len(a))
  for i in range(len(a)):
    neg = [a[i] @ n[i, k] for k in range(4) if pairs["negative_mask"][i, k]]
    for k in range(2):
      if pairs["positive_mask"][i, k] and neg:
        expected[i] += np.log(np.exp(neg).sum()) - a[i] @ p[i, k]
  assert pairs["positive_mask"].any()
  np.testing.assert_allclose(out["item_cl_sess_loss"], expected.mean(),
                             rtol=1e-4, atol=1e-5)


def test_parameters_of_the_plugin_appear_only_when_given():
  assert not any(k.startswith("item_cl") for k in
                 registry.resolve_params("two_tower"))
  params = registry.resolve_params("clrec", {"item_cl": "fea"})
  assert params["item_cl"] == "fea"
  assert registry.auxiliary_task_modules(params) == ["dcg_tf.configs.micrec"]
  assert registry.auxiliary_task_modules(registry.resolve_params("two_tower")) == []
  assert registry.resolve_params("micrec")["item_cl"] == "fea,sem,sess"
  with pytest.raises(KeyError, match="plug-in tasks"):
    registry.resolve_params("two_tower", {"item_cll": "fea"})


def test_a_model_without_the_plugin_is_unchanged(data):
  model = small_model(data, "two_tower")
  assert model.auxiliary_tasks == []
  batch = first_batch(model, data)
  assert "aux" not in batch
  assert model.total_loss(batch)["loss"] == model.compute_loss(batch)["loss"]


def _micrec(data, **params):
  # Titles: the tiny catalog has none, so sem uses shared taxonomy values.
  return small_model(data, "micrec", item_cl_sem_source="taxonomy",
                item_cl_negatives=5, queue_size=16, **params)


def test_micrec_exports_no_projector(data, tmp_path):
  model = _micrec(data)
  out = model.total_loss(first_batch(model, data), training=True)
  assert {"item_cl_fea_loss", "item_cl_sem_loss", "item_cl_sess_loss"} <= set(out)
  projector_vars = list(model.item_contrastive.trainable_variables)
  assert len(projector_vars) == 6           # three 1-layer projectors
  assert all(any(v is w for w in model.trainable_variables)
             for v in projector_vars)
  tower_vars = model.item_tower.variables + model.user_tower.variables
  assert not any(v is w for v in projector_vars for w in tower_vars)
  path = str(tmp_path / "item_tower")
  tf.saved_model.save(_ItemServing(model.item_tower), path)
  saved = [name for name, _ in tf.train.list_variables(
      os.path.join(path, "variables", "variables"))
           if name.endswith("VARIABLE_VALUE")]
  assert len(saved) == len(model.item_tower.variables)
  assert not [n for n in saved if "projector" in n]


@pytest.mark.slow
def test_micrec_trains_and_checkpoints_its_projectors(data, tmp_path):
  model = _micrec(data)
  config = trainer_lib.TrainerConfig(batch_size=6, max_len=6, seed=0,
                                     all_prefixes=True, steps=3, epochs=1)
  trainer = trainer_lib.Trainer(model, get_optimizer("lazy_adam", 1e-3), data,
                                str(tmp_path / "run"), config)
  assert np.isfinite(float(trainer.train()["loss"]))
  ckpt = [name for name, _ in tf.train.list_variables(
      tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")))]
  assert any("item_contrastive" in n and "projector" in n for n in ckpt)


class _ItemServing(tf.Module):

  def __init__(self, tower):
    super().__init__()
    self.tower = tower

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
  def serve(self, item):
    return self.tower(item, training=False)
