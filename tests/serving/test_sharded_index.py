"""Sharded and chunk-built indexes against NumPy brute force and one flat index."""

import json
import os

import faiss
import numpy as np
import pytest

from dcg_tf.errors import InputError
from dcg_tf.evaluation.topk import TopKSearcher
from dcg_tf.serving import index as index_lib
from dcg_tf.serving.retriever import Retriever

from tests.serving.index_fixtures import DIM, K, NUM_ITEMS, brute_force as _brute_force, clustered as _clustered, items, queries  # noqa: F401  (fixtures)


class RecordingReader:
  """A reader over an array that records every row range it is asked for."""

  def __init__(self, array):
    self.array, self.shape, self.requests = array, array.shape, []

  def read(self, start, stop):
    self.requests.append((start, stop))
    return self.array[start:stop]


def _export_json(directory, fingerprint="fp-1", num_items=NUM_ITEMS, dim=DIM):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "export.json"), "w") as f:
    json.dump({"num_items": num_items, "embedding_dim": dim, "metric": "ip",
               "multi_interest": False, "max_len": 5,
               "export_fingerprint": fingerprint, "item_ids_sha256": "ids"}, f)
  return str(directory)


@pytest.mark.parametrize("shards", [2, 7])
def test_sharded_flat_equals_one_flat_index_and_numpy(items, queries, shards):
  sharded = index_lib.build_index(items, "flat", shards=shards, chunk_rows=50)
  if shards == 7:
    # floor(600 s / 7) for s = 0..7: 0, 85, 171, 257, 342, 428, 514, 600.
    assert sharded.shard_bounds == [[0, 85], [85, 171], [171, 257], [257, 342],
                                    [342, 428], [428, 514], [514, 600]]
  assert sharded.index.ntotal == NUM_ITEMS and sharded.num_shards == shards
  scores, labels = sharded.search(queries, K)
  one_scores, one_labels = index_lib.build_index(items, "flat").search(queries, K)
  np.testing.assert_array_equal(labels, one_labels)
  np.testing.assert_allclose(scores, one_scores, rtol=1e-6, atol=1e-6)
  ref_scores, ref_rows = _brute_force(queries, items, K)
  np.testing.assert_array_equal(labels, ref_rows)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)


def test_multi_interest_queries_over_shards_merge_by_max_without_duplicates(items):
  sharded = index_lib.build_index(items, "flat", shards=3, chunk_rows=64)
  searcher = TopKSearcher(items, index=sharded.index)         # the evaluator's path
  vectors = _clustered(3 * 4, DIM, seed=2).reshape(4, 3, DIM)  # [Q=4, K=3, D]
  mask = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], bool)
  exclude = [np.array([5, 17]), np.array([], np.int64), np.array([600]),
             np.arange(1, 40)]
  scores, got = searcher.search(vectors, K, exclude=exclude, query_mask=mask)
  for q in range(4):
    # Reference: an item's score is the max over the ACTIVE vectors; excluded
    # items (1-based) never come back; each item at most once.
    per_vector = items @ vectors[q][mask[q]].T                  # [N, active]
    best = per_vector.max(axis=1)                               # [N]
    best[exclude[q] - 1] = -np.inf
    ref_rows = np.argsort(-best, kind="stable")[:K]
    np.testing.assert_array_equal(got[q], ref_rows + 1)
    np.testing.assert_allclose(scores[q], best[ref_rows], rtol=1e-5, atol=1e-4)
    assert len(set(got[q])) == K


def test_sharded_ivfpq_probing_every_cell_ranks_the_decoded_vectors(items, queries):
  params = dict(nlist=8, nprobe=8, pq_m=4, pq_nbits=6)
  sharded = index_lib.build_index(items, "ivfpq", shards=3, chunk_rows=100, **params)
  parts = sharded.shard_indexes()                              # IndexIVFPQ x 3
  # Trained once: every shard holds the same coarse centroids and PQ codebooks.
  centroids = [part.quantizer.reconstruct_n(0, 8) for part in parts]
  codebooks = [faiss.vector_to_array(part.pq.centroids) for part in parts]
  for other_centroids, other_codebooks in zip(centroids[1:], codebooks[1:]):
    np.testing.assert_array_equal(other_centroids, centroids[0])
    np.testing.assert_array_equal(other_codebooks, codebooks[0])
  # Reference: brute force over the PQ reconstructions of all shards' rows.
  decoded = []
  for part in parts:
    part.make_direct_map()
    decoded.append(part.reconstruct_n(0, part.ntotal))          # [rows, D]
  decoded = np.concatenate(decoded)                             # [N, D]
  scores, labels = sharded.search(queries, K)
  ref_scores, _ = _brute_force(queries, decoded, K)
  np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(
      scores, np.take_along_axis(queries @ decoded.T, labels, axis=1),
      rtol=1e-4, atol=1e-3)
  # The same as one IVF-PQ index trained on the same sample, up to the order
  # of equal scores (rows with the same PQ code score exactly alike).
  one_scores, one_labels = index_lib.build_index(items, "ivfpq", **params).search(
      queries, K + 1)
  np.testing.assert_array_equal(scores, one_scores[:, :K])
  for q, k in np.argwhere(labels != one_labels[:, :K]):
    assert (one_scores[q] == scores[q, k]).sum() >= 2, (q, k)


def test_the_builder_only_reads_chunks_of_at_most_chunk_rows():
  # Flat, 2 shards of 300 rows, chunks of 128: within each shard
  # [0,128) [128,256) [256,300) | [300,428) [428,556) [556,600).
  reader = RecordingReader(_clustered(NUM_ITEMS, DIM, seed=0))
  index_lib.build_index(reader, "flat", shards=2, chunk_rows=128)
  assert reader.requests == [(0, 128), (128, 256), (256, 300),
                             (300, 428), (428, 556), (556, 600)]
  # IVF-PQ over 20,000 rows, nlist 16: first the training sample of
  # max(64 * 16, 10,000) = 10,000 random rows, read in the chunks that hold
  # them (here all 7: [0, 3000) ... [18000, 20000)); then the 3 shards
  # [0, 6666) [6666, 13333) [13333, 20000) (floor(20000 s / 3)), 3 chunks each.
  reader = RecordingReader(_clustered(20_000, 8, seed=3))
  built = index_lib.build_index(reader, "ivfpq", shards=3, chunk_rows=3000,
                                nlist=16, pq_m=2, pq_nbits=4)
  assert reader.requests[:7] == [(0, 3000), (3000, 6000), (6000, 9000),
                                 (9000, 12000), (12000, 15000), (15000, 18000),
                                 (18000, 20000)]
  assert reader.requests[7:] == [
      (0, 3000), (3000, 6000), (6000, 6666),
      (6666, 9666), (9666, 12666), (12666, 13333),
      (13333, 16333), (16333, 19333), (19333, 20000)]
  assert built.index.ntotal == 20_000


class _ComputedRows(RecordingReader):
  """200,000 rows [sin r, cos r] made on request, recording the requests."""

  def __init__(self):
    self.shape, self.requests = (200_000, 2), []

  def read(self, start, stop):
    self.requests.append((start, stop))
    rows = np.arange(start, stop, dtype=np.float64)
    return np.stack([np.sin(rows), np.cos(rows)], axis=1)       # [rows, 2]


def test_chunks_without_a_sampled_row_are_not_read():
  # 10,000 of 200,000 rows sampled (nlist 2), chunks of 20 rows: a chunk holds
  # no sampled row with probability about 0.95^20 = 0.36, and is then skipped,
  # so about 64% of the 10,000 chunks are read for the sample. The add pass
  # reads all 10,000 chunks, last.
  reader = _ComputedRows()
  threads = faiss.omp_get_max_threads()
  faiss.omp_set_num_threads(1)   # 10,000 tiny adds: no OpenMP start-up each time
  try:
    index_lib.build_index(reader, "ivf", chunk_rows=20, nlist=2)
  finally:
    faiss.omp_set_num_threads(threads)
  sample_reads, add_reads = reader.requests[:-10_000], reader.requests[-10_000:]
  assert add_reads == [(a, a + 20) for a in range(0, 200_000, 20)]
  assert 0.55 < len(sample_reads) / 10_000 < 0.72
  assert set(sample_reads) <= set(add_reads)


def test_save_and_load_a_sharded_index(items, queries, tmp_path):
  export_dir = _export_json(tmp_path / "export")
  path = str(tmp_path / "index")
  manifest = index_lib.build_and_save_index(
      items, path, index_lib.index_sidecar(export_dir), kind="ivf", shards=3,
      chunk_rows=64, nlist=8, nprobe=3)
  assert sorted(os.listdir(path)) == [
      "index.json", "shard_00000-of-00003.faiss", "shard_00001-of-00003.faiss",
      "shard_00002-of-00003.faiss"]
  with open(os.path.join(path, "index.json")) as f:
    assert json.load(f) == manifest
  assert manifest["num_shards"] == 3 and manifest["export_fingerprint"] == "fp-1"
  assert [(s["start"], s["stop"]) for s in manifest["shards"]] == [
      (0, 200), (200, 400), (400, 600)]
  loaded = index_lib.load_index(path, export_dir)
  assert [part.nprobe for part in loaded.shard_indexes()] == [3, 3, 3]
  in_memory = index_lib.build_index(items, "ivf", shards=3, nlist=8, nprobe=3)
  np.testing.assert_array_equal(loaded.search(queries, K)[1],
                                in_memory.search(queries, K)[1])
  # save_index of the in-memory shards writes the same manifest.
  again = str(tmp_path / "again")
  index_lib.save_index(in_memory, again, index_lib.index_sidecar(export_dir))
  with open(os.path.join(again, "index.json")) as f:
    assert json.load(f) == manifest
  # One shard: today's layout, index.faiss and no shard fields.
  single = str(tmp_path / "single")
  content = index_lib.build_and_save_index(items, single,
                                           index_lib.index_sidecar(export_dir))
  assert sorted(os.listdir(single)) == ["index.faiss", "index.json"]
  assert "shards" not in content and "num_shards" not in content


def test_a_missing_or_foreign_shard_is_refused_naming_the_file(items, tmp_path):
  export_dir = _export_json(tmp_path / "export")
  path = str(tmp_path / "index")
  index_lib.build_and_save_index(items, path, index_lib.index_sidecar(export_dir),
                                 shards=2)
  shard_1 = os.path.join(path, "shard_00001-of-00002.faiss")
  os.rename(shard_1, shard_1 + ".moved")
  with pytest.raises(FileNotFoundError,
                     match=r"shard_00001-of-00002.faiss: missing, but .*index.json"):
    index_lib.load_index(path, export_dir)
  # A shard of another dimension in its place.
  other = faiss.IndexFlatIP(DIM + 2)
  other.add(np.zeros((300, DIM + 2), np.float32))
  faiss.write_index(other, shard_1)
  with pytest.raises(InputError, match=r"shard_00001-of-00002.faiss: dimension 18"):
    index_lib.load_index(path, export_dir)
  # A shard of the right dimension but another row count.
  other = faiss.IndexFlatIP(DIM)
  other.add(np.zeros((299, DIM), np.float32))
  faiss.write_index(other, shard_1)
  with pytest.raises(InputError, match=r"holds 299 vectors, .* rows \[300, 600\)"):
    index_lib.load_index(path, export_dir)
  os.remove(os.path.join(path, "index.json"))
  with pytest.raises(FileNotFoundError, match="index.json: no index sidecar"):
    index_lib.load_index(path, export_dir)
  with pytest.raises(ValueError, match=r"shards=601: choose 1 to the number of "
                                       r"items \(600\)"):
    index_lib.build_index(items, shards=601)


def test_a_nan_row_is_named_by_the_chunked_reader(items):
  bad = items.copy()
  bad[431, 2] = np.nan
  with pytest.raises(ValueError, match=r"row 431 \(item 432\) holds NaN"):
    index_lib.build_index(bad, "flat", shards=2, chunk_rows=100)


def test_retriever_and_binary_load_a_sharded_index(mean_export, multi_export,
                                                   tmp_path):
  histories = [["i3", "i8", "i15"], ["i40", "i1"], ["i2", "i9", "i4"]]
  for export in (mean_export, multi_export):
    manifest, index_dir = index_lib.build_export_index(
        export.export_dir, "flat", output_dir=str(tmp_path / os.path.basename(
            export.export_dir)), shards=3, chunk_rows=7)
    assert manifest["num_shards"] == 3
    exact = Retriever.from_export(export.export_dir)
    sharded = Retriever.from_export(export.export_dir, index_dir)
    assert "flat x3 shards" in repr(sharded)
    for history in histories:
      # Multi-interest (multi_export): per-interest search merged by max.
      got, expected = sharded.retrieve(history, k=10), exact.retrieve(history, k=10)
      assert [item for item, _ in got] == [item for item, _ in expected]
      np.testing.assert_allclose([s for _, s in got], [s for _, s in expected],
                                 rtol=1e-5, atol=1e-5)
  # The default output folder names the shard count.
  _, index_dir = index_lib.build_export_index(mean_export.export_dir, "ivfpq", shards=2,
                                        nlist=4, pq_m=2, pq_nbits=4)
  assert index_dir == os.path.join(mean_export.export_dir, "index_ivfpq_2shards")
  assert index_lib.load_index(index_dir, mean_export.export_dir).num_shards == 2


def test_the_binary_refuses_embeddings_of_another_shape(mean_export, tmp_path):
  import shutil
  export_dir = str(tmp_path / "export")
  shutil.copytree(mean_export.export_dir, export_dir)
  path = os.path.join(export_dir, "item_embeddings.npy")
  np.save(path, np.load(path)[:, :-1])
  with pytest.raises(ValueError, match=r"item_embeddings.npy has shape \(40, 7\), "
                                       r"but .*export.json says \(40, 8\)"):
    index_lib.build_export_index(export_dir, "flat", shards=2)
