"""Retriever against NumPy brute force over the exported item embeddings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dcg_tf
from dcg_tf.serving import index as index_lib
from dcg_tf.serving.retriever import Retriever

MAX_LEN = 6  # conftest.MAX_LEN
NUM_ITEMS = 40
HISTORIES = [["i3", "i8", "i15"], ["i40", "i1"], ["i2", "i9", "i4", "i22", "i31"]]


@pytest.fixture(scope="module")
def mean_retriever(mean_export):
  return Retriever.from_export(mean_export.export_dir)


@pytest.fixture(scope="module")
def multi_retriever(multi_export):
  return Retriever.from_export(multi_export.export_dir)


def _brute_force(scores, history, k, exclude):
  """Top-k ("i<item>", score) from scores [N] (row r = item r + 1), by NumPy."""
  scores = scores.astype(np.float64).copy()
  if exclude:
    for item in history:
      scores[int(item[1:]) - 1] = -np.inf
  rows = np.argsort(-scores, kind="stable")[:k]
  return [("i%d" % (r + 1), scores[r]) for r in rows if np.isfinite(scores[r])]


def _assert_same_ranking(got, expected):
  assert [item for item, _ in got] == [item for item, _ in expected]
  np.testing.assert_allclose([s for _, s in got], [s for _, s in expected],
                             rtol=1e-5, atol=1e-5)


def _user_vectors(export, data, histories, make_reference_batch):
  return export.user_tower(make_reference_batch(data, histories, MAX_LEN))


def test_retrieve_matches_brute_force_and_excludes_history(
    mean_retriever, mean_export, tiny_data, make_reference_batch):
  items = np.load(os.path.join(mean_export.export_dir, "item_embeddings.npy"))
  users = _user_vectors(mean_export, tiny_data, HISTORIES, make_reference_batch)
  for history, user in zip(HISTORIES, users.numpy()):
    scores = items @ user                                           # [N]
    got = mean_retriever.retrieve(history, k=10)
    _assert_same_ranking(got, _brute_force(scores, history, 10, exclude=True))
    assert not set(history) & {item for item, _ in got}
    # k = every item: with exclusion N - |history| come back, without all N.
    everything = mean_retriever.retrieve(history, k=NUM_ITEMS)
    assert len(everything) == NUM_ITEMS - len(history)
    kept = mean_retriever.retrieve(history, k=NUM_ITEMS, exclude_history=False)
    _assert_same_ranking(kept, _brute_force(scores, history, NUM_ITEMS, exclude=False))


def test_unknown_ids_are_ignored_and_batch_equals_single(mean_retriever):
  noisy = ["nope", "i3", "", "i8", "never-seen", "i15"]
  _assert_same_ranking(mean_retriever.retrieve(noisy, k=8),
                       mean_retriever.retrieve(HISTORIES[0], k=8))
  batch = mean_retriever.retrieve_batch(HISTORIES, k=7)
  for history, got in zip(HISTORIES, batch):
    _assert_same_ranking(got, mean_retriever.retrieve(history, k=7))
  with pytest.raises(TypeError, match="list of item ids"):
    mean_retriever.retrieve("i3", k=5)


def test_multi_interest_merges_by_max_over_interests(
    multi_retriever, multi_export, tiny_data, make_reference_batch):
  items = np.load(os.path.join(multi_export.export_dir, "item_embeddings.npy"))
  vectors, mask = _user_vectors(multi_export, tiny_data, HISTORIES,
                                make_reference_batch)
  for q, history in enumerate(HISTORIES):
    per_interest = items @ vectors.numpy()[q].T                     # [N, K]
    per_interest[:, ~mask.numpy()[q]] = -np.inf
    scores = per_interest.max(axis=1)                               # [N]
    got = multi_retriever.retrieve(history, k=12)
    _assert_same_ranking(got, _brute_force(scores, history, 12, exclude=True))
  assert "multi_interest=True" in repr(multi_retriever)


def test_index_backed_retriever_and_foreign_index(mean_export, multi_export,
                                                  mean_retriever, tmp_path):
  items = np.load(os.path.join(mean_export.export_dir, "item_embeddings.npy"))
  item_index = index_lib.build_index(items, "ivf", nlist=4, nprobe=4)
  index_dir = str(tmp_path / "ivf")
  index_lib.save_index(item_index, index_dir,
                       index_lib.index_sidecar(mean_export.export_dir))
  retriever = Retriever.from_export(mean_export.export_dir, index_dir)
  assert "ivf" in repr(retriever)
  # Every cell probed: the IVF index ranks exactly like the flat search.
  for history in HISTORIES:
    _assert_same_ranking(retriever.retrieve(history, k=10),
                         mean_retriever.retrieve(history, k=10))
  with pytest.raises(ValueError, match="built from another export"):
    Retriever.from_export(multi_export.export_dir, index_dir)


def test_retriever_is_the_package_api(mean_retriever):
  assert dcg_tf.Retriever is Retriever
  assert repr(mean_retriever).startswith(
      "Retriever(items=40, dim=8, metric='ip', search='exact flat'")


def _run_binary(module, *args):
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  result = subprocess.run([sys.executable, "-m", module] + list(args),
                          capture_output=True, text=True, cwd=root, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.strip().splitlines()


def test_retrieve_binary_prints_the_ranking(mean_export, mean_retriever, tmp_path):
  items = np.load(os.path.join(mean_export.export_dir, "item_embeddings.npy"))
  index_dir = str(tmp_path / "hnsw")
  index_lib.save_index(index_lib.build_index(items, "hnsw", ef_search=64), index_dir,
                       index_lib.index_sidecar(mean_export.export_dir))
  lines = _run_binary("experiments.retrieve", "--export_dir=" + mean_export.export_dir,
                      "--index_dir=" + index_dir, "--history=i3,i8,unknown,i15",
                      "--k=5")
  assert "history of 4 items (3 known)" in lines[-6]
  ranked = [line.split() for line in lines[-5:]]
  # HNSW with efSearch 64 over 40 items visits them all: the exact top 5.
  expected = mean_retriever.retrieve(["i3", "i8", "i15"], k=5)
  assert [r[0] for r in ranked] == ["1", "2", "3", "4", "5"]
  assert [r[1] for r in ranked] == [item for item, _ in expected]
  np.testing.assert_allclose([float(r[2]) for r in ranked],
                             [s for _, s in expected], atol=1e-5)


@pytest.mark.slow
def test_build_index_binary_writes_a_loadable_index(mean_export, tmp_path):
  index_dir = str(tmp_path / "ivfpq")
  _run_binary("experiments.build_index", "--export_dir=" + mean_export.export_dir,
              "--index=ivfpq", "--output_dir=" + index_dir, "--nlist=4",
              "--nprobe=4", "--pq_m=2", "--pq_nbits=4")
  loaded = index_lib.load_index(index_dir, mean_export.export_dir)
  assert (loaded.kind, loaded.num_items, loaded.dim) == ("ivfpq", 40, 8)
  assert loaded.params == {"nlist": 4, "nprobe": 4, "seed": 1234, "pq_m": 2,
                           "pq_nbits": 4}


@pytest.mark.parametrize("history", [[], ["nope", "unknown"]])
def test_a_history_with_no_known_id_warns_that_it_is_not_personalised(
    mean_retriever, mean_export, tiny_data, make_reference_batch, history):
  items = np.load(os.path.join(mean_export.export_dir, "item_embeddings.npy"))
  # Reference: the user tower on an all-padding history (unknown ids map to 0).
  user = _user_vectors(mean_export, tiny_data, [[]], make_reference_batch).numpy()[0]
  with pytest.warns(UserWarning, match="not personalised"):
    got = mean_retriever.retrieve(history, k=5)
  scores = items @ user                                             # [N]
  # Compared by score (the mean of no item is the zero vector: every score
  # ties), each returned item scored as the reference scores it.
  np.testing.assert_allclose([s for _, s in got], np.sort(scores)[::-1][:5],
                             atol=1e-5)
  np.testing.assert_allclose([s for _, s in got],
                             [scores[int(item[1:]) - 1] for item, _ in got],
                             atol=1e-5)


def test_a_known_history_does_not_warn(mean_retriever, recwarn):
  mean_retriever.retrieve(["i3", "nope"], k=5)
  assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_k_above_the_catalog_is_clipped_with_a_warning(mean_retriever):
  with pytest.warns(UserWarning, match="k=1000 is above the catalog size"):
    got = mean_retriever.retrieve(["i3", "i8"], k=1000)
  # 40 items, the 2 of the history excluded.
  assert len(got) == NUM_ITEMS - 2
  assert got == mean_retriever.retrieve(["i3", "i8"], k=NUM_ITEMS)


def test_retrieve_binary_warns_in_one_line_each(mean_export):
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  result = subprocess.run(
      [sys.executable, "-m", "experiments.retrieve",
       "--export_dir=" + mean_export.export_dir, "--history=nope", "--k=1000"],
      capture_output=True, text=True, cwd=root, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  warned = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(warned) == 2, result.stderr
  assert all(line.startswith("warning: ") for line in warned), warned
  assert "not personalised" in warned[0] and "k=1000" in warned[1]
  assert len(result.stdout.strip().splitlines()) == 1 + NUM_ITEMS


def test_retrieve_binary_answers_a_history_file(mean_export, mean_retriever,
                                                tmp_path):
  histories = [["i3", "i8", "unknown", "i15"], ["i20"], ["i1", "i2"]]
  path = tmp_path / "histories.txt"
  path.write_text("".join(",".join(h) + "\n" for h in histories))
  output = tmp_path / "out.json"
  lines = _run_binary("experiments.retrieve", "--export_dir=" + mean_export.export_dir,
                      "--history_file=" + str(path), "--output=" + str(output),
                      "--k=5", "--batch_size=2")
  assert "3 histories, top 5 each" in lines[-1]
  got = json.loads(output.read_text())
  assert len(got) == 3
  # Exact search: each line equals the one-history answer of the Retriever.
  for row, history in zip(got, histories):
    expected = mean_retriever.retrieve(history, k=5)
    assert row["items"] == [item for item, _ in expected]
    np.testing.assert_allclose(row["scores"], [s for _, s in expected], atol=1e-5)
