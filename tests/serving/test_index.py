"""build_index / save_index / load_index against NumPy brute-force search."""

import json
import os

import faiss
import numpy as np
import pytest

from dcg_tf.serving import index as index_lib

from tests.serving.index_fixtures import DIM, K, NUM_ITEMS, brute_force as _brute_force, clustered as _clustered, items, queries  # noqa: F401  (fixtures)


def _write_export_json(directory, fingerprint, num_items=NUM_ITEMS, dim=DIM,
                       metric="ip"):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "export.json"), "w") as f:
    json.dump({"num_items": num_items, "embedding_dim": dim, "metric": metric,
               "multi_interest": False, "max_len": 5,
               "export_fingerprint": fingerprint, "item_ids_sha256": "ids-sha"}, f)
  return str(directory)


def test_flat_equals_numpy_brute_force(items, queries):
  scores, labels = index_lib.build_index(items, "flat").search(queries, K)
  ref_scores, ref_rows = _brute_force(queries, items, K)
  np.testing.assert_array_equal(labels, ref_rows)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)


def test_cosine_metric_normalises_items_and_queries(items, queries):
  scores, labels = index_lib.build_index(items, "flat", metric="cosine").search(
      queries * 7.0, K)   # query scale must not matter for cosine
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  ref_scores, ref_rows = _brute_force(unit(queries), unit(items), K)
  np.testing.assert_array_equal(labels, ref_rows)
  np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
  assert scores.max() <= 1.0 + 1e-5


def test_ivf_visiting_every_cell_is_exact(items, queries):
  item_index = index_lib.build_index(items, "ivf", nlist=16)
  item_index.set_search_params(nprobe=16)   # every cell: exhaustive search
  scores, labels = item_index.search(queries, K)
  ref_scores, ref_rows = _brute_force(queries, items, K)
  np.testing.assert_array_equal(labels, ref_rows)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)
  # With one cell of 16 probed, fewer candidates are scanned: results differ.
  item_index.set_search_params(nprobe=1)
  _, labels_1 = item_index.search(queries, K)
  assert (labels_1 != ref_rows).any()


def test_ivfpq_visiting_every_cell_ranks_the_decoded_vectors(items, queries):
  item_index = index_lib.build_index(items, "ivfpq", nlist=8, pq_m=4, pq_nbits=6)
  item_index.set_search_params(nprobe=8)
  scores, labels = item_index.search(queries, K)
  # Reference: brute force over the PQ reconstructions of the rows.
  ivf = faiss.extract_index_ivf(item_index.index)
  ivf.make_direct_map()
  decoded = ivf.reconstruct_n(0, NUM_ITEMS)                      # [N, D]
  ref_scores = np.take_along_axis(queries @ decoded.T, labels, axis=1)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-3)
  exact = np.sort(queries @ decoded.T, axis=1)[:, ::-1][:, :K]
  np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-3)


def test_hnsw_recall_and_exact_scores(items, queries):
  item_index = index_lib.build_index(items, "hnsw", m=16, ef_search=200)
  scores, labels = item_index.search(queries, K)
  _, ref_rows = _brute_force(queries, items, K)
  recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(labels, ref_rows)])
  assert recall >= 0.95
  # HNSW stores the vectors: returned scores are exact inner products.
  np.testing.assert_allclose(
      scores, np.einsum("qd,qkd->qk", queries, items[labels]), rtol=1e-5, atol=1e-4)


def test_default_params():
  # nlist = round(4 sqrt(10000)) = 400, nprobe = max(16, 400 // 64 = 6) = 16;
  # PQ: largest divisor of 64 not above 64 / 4 = 16 -> 16 sub-quantisers.
  params = index_lib.default_params("ivfpq", 10000, 64)
  assert params["nlist"] == 400 and params["nprobe"] == 16
  assert params["pq_m"] == 16 and params["pq_nbits"] == 8
  # D = 30: divisors <= 7 are 1, 2, 3, 5, 6 -> 6; N = 100: floor(log2 100) = 6 bits.
  params = index_lib.default_params("ivfpq", 100, 30)
  assert params["pq_m"] == 6 and params["pq_nbits"] == 6
  # nlist = round(4 sqrt(100)) = 40 -> nprobe = min(40, 16) = 16.
  assert params["nlist"] == 40 and params["nprobe"] == 16
  assert index_lib.default_params("hnsw", 10, 8)["ef_search"] == 128
  # An explicit nlist = 4 caps the default nprobe: min(4, 16) = 4.
  assert index_lib.build_index(np.eye(8, dtype=np.float32), "ivf",
                               nlist=4).params["nprobe"] == 4
  with pytest.raises(ValueError, match="has no parameter"):
    index_lib.build_index(np.ones((4, 2)), "flat", nprobe=3)
  with pytest.raises(ValueError, match="unknown index kind"):
    index_lib.build_index(np.ones((4, 2)), "lsh")


def test_save_load_round_trip_and_sidecar(items, queries, tmp_path):
  export_dir = _write_export_json(tmp_path / "export", "fp-123")
  item_index = index_lib.build_index(items, "ivf", nlist=16, nprobe=5)
  path = str(tmp_path / "index")
  index_lib.save_index(item_index, path, index_lib.index_sidecar(export_dir))
  with open(os.path.join(path, "index.json")) as f:
    sidecar = json.load(f)
  assert sidecar["export_fingerprint"] == "fp-123"
  assert (sidecar["kind"], sidecar["metric"], sidecar["dimension"],
          sidecar["num_items"]) == ("ivf", "ip", DIM, NUM_ITEMS)
  assert sidecar["params"] == {"nlist": 16, "nprobe": 5, "seed": 1234}
  assert sidecar["id_map"]["label_to_item_index"] == "item index = label + 1"
  assert sidecar["id_map"]["item_ids_sha256"] == "ids-sha"
  loaded = index_lib.load_index(path, export_dir)
  assert loaded.index.nprobe == 5
  expected = item_index.search(queries, K)
  got = loaded.search(queries, K)
  np.testing.assert_array_equal(got[1], expected[1])
  np.testing.assert_array_equal(got[0], expected[0])


def test_fingerprint_or_shape_mismatch_is_refused(items, tmp_path):
  export_dir = _write_export_json(tmp_path / "export", "fp-123")
  path = str(tmp_path / "index")
  index_lib.save_index(index_lib.build_index(items, "flat"), path,
                       index_lib.index_sidecar(export_dir))
  other = _write_export_json(tmp_path / "other", "fp-999")
  with pytest.raises(ValueError, match="export_fingerprint 'fp-123' does not match"):
    index_lib.load_index(path, other)
  same_fp_other_dim = _write_export_json(tmp_path / "dim", "fp-123", dim=DIM + 1)
  with pytest.raises(ValueError, match="dimension 16 does not match"):
    index_lib.load_index(path, same_fp_other_dim)
  with pytest.raises(ValueError, match="export's fingerprint"):
    index_lib.save_index(index_lib.build_index(items, "flat"), path, {})
  with pytest.raises(FileNotFoundError, match="no index sidecar"):
    index_lib.load_index(str(tmp_path / "missing"), export_dir)
