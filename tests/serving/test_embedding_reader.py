"""NpyReader / ArrayReader / chunk_bounds against np.load and hand-worked ranges."""

import numpy as np
import pytest

from dcg_tf.serving import embedding_reader


@pytest.fixture
def npy(tmp_path):
  array = np.random.default_rng(0).normal(size=(37, 5)).astype(np.float32)
  path = tmp_path / "items.npy"
  np.save(path, array, allow_pickle=False)
  return str(path), array


def test_npy_reader_returns_the_rows_np_load_holds(npy):
  path, array = npy
  reader = embedding_reader.NpyReader(path)
  assert reader.shape == (37, 5)
  for start, stop in [(0, 37), (0, 1), (10, 23), (36, 37), (5, 5)]:
    np.testing.assert_array_equal(reader.read(start, stop), array[start:stop])
  with pytest.raises(ValueError, match=r"rows \[30, 38\) are outside \[0, 37\)"):
    reader.read(30, 38)


def test_npy_reader_reads_a_version_2_header(tmp_path):
  array = np.arange(12, dtype=np.float32).reshape(4, 3)
  path = str(tmp_path / "v2.npy")
  with open(path, "wb") as f:
    np.lib.format.write_array(f, array, version=(2, 0))
  np.testing.assert_array_equal(embedding_reader.NpyReader(path).read(1, 3),
                                [[3, 4, 5], [6, 7, 8]])


def test_npy_reader_errors_name_the_file(npy, tmp_path):
  path, _ = npy
  with open(path, "rb") as f:
    content = f.read()
  truncated = str(tmp_path / "truncated.npy")
  with open(truncated, "wb") as f:
    f.write(content[:-8])   # two float32 values short
  with pytest.raises(ValueError, match="truncated.npy: truncated"):
    embedding_reader.NpyReader(truncated)
  vector = str(tmp_path / "vector.npy")
  np.save(vector, np.zeros(4, np.float32))
  with pytest.raises(ValueError, match=r"vector.npy: expected a C-ordered float "
                                       r"matrix \[N, D\], found shape \(4,\)"):
    embedding_reader.NpyReader(vector)
  with pytest.raises(FileNotFoundError, match="nothing.npy: no such embeddings file"):
    embedding_reader.NpyReader(str(tmp_path / "nothing.npy"))


def test_as_reader_and_chunk_bounds(npy):
  path, array = npy
  assert isinstance(embedding_reader.as_reader(path), embedding_reader.NpyReader)
  in_memory = embedding_reader.as_reader(array)
  np.testing.assert_array_equal(in_memory.read(3, 9), array[3:9])
  assert embedding_reader.as_reader(in_memory) is in_memory
  # Rows 10..34 in chunks of 10: [10, 20), [20, 30), [30, 35).
  assert embedding_reader.chunk_bounds(10, 35, 10) == [(10, 20), (20, 30), (30, 35)]
  assert embedding_reader.chunk_bounds(4, 4, 10) == []
  with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
    embedding_reader.chunk_bounds(0, 5, 0)
