"""Export, index and Retriever with the popularity knob, against NumPy and evaluate.

Reference: scores `<u, v_i> + beta * log p(i)` computed in NumPy from the
towers' own outputs, p(i) = (count(i) + 1) / (S + N) from the dataset's
training counts (Laplace, written out here, not taken from the code).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.evaluation import evaluator
from dcg_tf.serving import index as index_lib
from dcg_tf.serving.export import export_towers
from dcg_tf.serving.retriever import Retriever

MAX_LEN = 6  # conftest.MAX_LEN
NUM_ITEMS = 40
HISTORIES = [["i3", "i8", "i15"], ["i40", "i1"], ["i2", "i9", "i4", "i22", "i31"]]
BETA = 0.8


def _log_p(data):
  counts = np.asarray(data.item_count, np.float64)[1:]              # items 1..N
  return np.log((counts + 1.0) / (counts.sum() + counts.size))


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def knob_exports(mean_export, multi_export, tiny_data, tmp_path_factory):
  """The conftest towers exported again with the knob (mean: ip, multi: cosine)."""
  out = {}
  for name, exported in (("mean", mean_export), ("multi", multi_export)):
    export_dir = str(tmp_path_factory.mktemp("knob_" + name))
    export_towers(exported.user_tower, exported.item_tower, tiny_data, export_dir,
                  max_len=MAX_LEN, popularity_beta=BETA)
    out[name] = (export_dir, exported)
  return out


def _reference_top(scores, history, k):
  scores = scores.astype(np.float64).copy()
  for item in history:
    scores[int(item[1:]) - 1] = -np.inf
  rows = np.argsort(-scores, kind="stable")[:k]
  return ["i%d" % (r + 1) for r in rows], scores[rows]


def test_export_appends_log_p_and_records_the_knob(knob_exports, mean_export,
                                                   multi_export, tiny_data):
  for name, plain in (("mean", mean_export), ("multi", multi_export)):
    export_dir, _ = knob_exports[name]
    with open(os.path.join(export_dir, "export.json")) as f:
      config = json.load(f)
    with open(os.path.join(plain.export_dir, "export.json")) as f:
      plain_config = json.load(f)
    widened = np.load(os.path.join(export_dir, "item_embeddings.npy"))
    vectors = np.load(os.path.join(plain.export_dir, "item_embeddings.npy"))
    assert widened.shape == (NUM_ITEMS, vectors.shape[1] + 1)
    np.testing.assert_allclose(widened[:, -1], _log_p(tiny_data), rtol=1e-6)
    cosine = plain_config["metric"] == "cosine"
    np.testing.assert_allclose(widened[:, :-1], _unit(vectors) if cosine else vectors,
                               atol=1e-6)
    assert config["metric"] == "ip" and config["embedding_dim"] == vectors.shape[1]
    assert config["popularity"]["beta"] == BETA
    assert config["popularity"]["tower_metric"] == plain_config["metric"]
    assert "alpha = 1" in config["popularity"]["definition"]
    assert "popularity" not in plain_config


def test_retriever_ranks_by_score_plus_beta_log_p(knob_exports, tiny_data,
                                                  make_reference_batch):
  export_dir, exported = knob_exports["mean"]
  items = np.asarray(exported.item_tower(tf.range(1, NUM_ITEMS + 1, dtype=tf.int64)))
  users = np.asarray(exported.user_tower(
      make_reference_batch(tiny_data, HISTORIES, MAX_LEN)))
  for beta in (None, 0.0, -1.5):
    retriever = Retriever.from_export(export_dir, beta=beta)
    used = BETA if beta is None else beta
    assert retriever.beta == used
    for history, user in zip(HISTORIES, users):
      want_items, want_scores = _reference_top(items @ user + used * _log_p(tiny_data),
                                               history, 10)
      got = retriever.retrieve(history, k=10)
      assert [item for item, _ in got] == want_items
      np.testing.assert_allclose([s for _, s in got], want_scores, rtol=1e-5,
                                 atol=1e-5)


def test_cosine_multi_interest_with_a_faiss_index_over_the_widened_vectors(
    knob_exports, tiny_data, make_reference_batch, tmp_path):
  export_dir, exported = knob_exports["multi"]
  widened = np.load(os.path.join(export_dir, "item_embeddings.npy"))
  index_dir = str(tmp_path / "hnsw")
  index_lib.save_index(index_lib.build_index(widened, "hnsw", metric="ip",
                                             ef_search=64),
                       index_dir, index_lib.index_sidecar(export_dir))
  retriever = Retriever.from_export(export_dir, index_dir)
  assert retriever.item_index.dim == widened.shape[1]
  items = _unit(np.asarray(exported.item_tower(
      tf.range(1, NUM_ITEMS + 1, dtype=tf.int64))))                  # [N, D]
  vectors, mask = exported.user_tower(
      make_reference_batch(tiny_data, HISTORIES, MAX_LEN))
  for q, history in enumerate(HISTORIES):
    per_interest = items @ _unit(vectors.numpy()[q]).T               # [N, K]
    per_interest[:, ~mask.numpy()[q]] = -np.inf
    scores = per_interest.max(axis=1) + BETA * _log_p(tiny_data)     # [N]
    want_items, want_scores = _reference_top(scores, history, 12)
    got = retriever.retrieve(history, k=12)
    assert [item for item, _ in got] == want_items
    np.testing.assert_allclose([s for _, s in got], want_scores, atol=1e-5)


def test_a_plain_export_refuses_a_beta(mean_export):
  with pytest.raises(ValueError, match="--beta"):
    Retriever.from_export(mean_export.export_dir, beta=0.5)
  assert Retriever.from_export(mean_export.export_dir, beta=0.0).beta == 0.0


def test_retriever_and_evaluate_agree(knob_exports, tiny_data):
  """evaluate(popularity_beta) on the test split == the Retriever's top-k."""
  export_dir, exported = knob_exports["mean"]
  beta = -0.6
  got = evaluator.evaluate(
      lambda batch: np.asarray(exported.user_tower(batch, training=False)),
      np.asarray(exported.item_tower(tf.range(1, NUM_ITEMS + 1, dtype=tf.int64))),
      tiny_data, split="test", ks=(1, 5, 10), max_len=MAX_LEN, progress=False,
      popularity_beta=beta)
  users, histories, targets = evaluator.read_eval_users(tiny_data, "test")
  offsets, train_items = tiny_data.train_items_per_user()
  retriever = Retriever.from_export(export_dir, beta=beta)
  raw = [["i%d" % i for i in h] for h in histories]
  vectors = retriever.user_embeddings(raw)
  # The evaluation's exclusions: earlier items, the user's own target kept.
  exclude = [np.setdiff1d(np.union1d(train_items[offsets[u]:offsets[u + 1]], h),
                          t) for u, h, t in zip(users, histories, targets)]
  _, ranked = retriever.search_embeddings(vectors, 10, exclude=exclude)
  hits = ranked == targets[:, :1]                                    # [U, 10]
  for k in (1, 5, 10):
    assert got["HR@%d" % k] == pytest.approx(hits[:, :k].any(axis=1).mean())
    assert got["coverage@%d" % k] == len(np.unique(ranked[:, :k]))
