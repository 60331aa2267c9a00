"""Row ranges of an item embedding matrix, read one chunk at a time.

The index builder (`dcg_tf.serving.index.build_index`) reads the exported
`item_embeddings.npy` [N, D] through a reader, `read(start, stop)` at a time,
so a 100M x 64 catalog (25.6 GB of float32) never has to fit in memory: the
builder holds one chunk, the training sample and the index it fills.

A reader is any object with
  shape: (N, D)
  read(start, stop) -> float array [stop - start, D] of rows start..stop-1.

`NpyReader` reads a `.npy` file (what `np.save` and the export write) with
plain seeks and reads, no memory map, so the rows it has read do not stay in
the process's resident memory; `ArrayReader` wraps an array already in memory.

Example:
  >>> reader = NpyReader("export/item_embeddings.npy")
  >>> reader.shape                                   # (N, D)
  >>> block = reader.read(0, 1000)                   # [1000, D]
"""

import os

import numpy as np


class NpyReader:
  """Reads rows of a 2-D `.npy` file without loading or mapping the whole file.

  Args:
    path: a `.npy` file holding a C-ordered float matrix [N, D].
  """

  def __init__(self, path):
    self.path = str(path)
    try:
      with open(self.path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
          shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        else:
          shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        self._offset = f.tell()
    except FileNotFoundError:
      raise FileNotFoundError("%s: no such embeddings file" % self.path) from None
    except ValueError as e:
      raise ValueError("%s: not a .npy file (%s)" % (self.path, e)) from None
    if len(shape) != 2 or fortran_order or dtype.kind != "f":
      raise ValueError("%s: expected a C-ordered float matrix [N, D], found "
                       "shape %s, dtype %s, fortran_order %s"
                       % (self.path, shape, dtype, fortran_order))
    self.shape = tuple(int(s) for s in shape)
    self.dtype = dtype
    expected = self._offset + self.shape[0] * self.shape[1] * dtype.itemsize
    size = os.path.getsize(self.path)
    if size < expected:
      raise ValueError("%s: truncated, %d bytes for a [%d, %d] %s matrix that "
                       "needs %d" % (self.path, size, self.shape[0],
                                     self.shape[1], dtype, expected))

  def read(self, start, stop):
    """Rows start..stop-1 as an array [stop - start, D] of the file's dtype."""
    start, stop = _checked_range(start, stop, self.shape[0], self.path)
    dim = self.shape[1]
    with open(self.path, "rb") as f:
      f.seek(self._offset + start * dim * self.dtype.itemsize)
      block = np.fromfile(f, dtype=self.dtype, count=(stop - start) * dim)
    return block.reshape(stop - start, dim)                        # [rows, D]

  def __repr__(self):
    return "NpyReader(%r, shape=%s)" % (self.path, self.shape)


class ArrayReader:
  """A reader over an array in memory (e.g. `np.load(path)` or a memmap).

  Args:
    array: float array [N, D].
  """

  def __init__(self, array):
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
      array = np.asarray(array, dtype=np.float32)
    if len(array.shape) != 2:
      raise ValueError("embeddings must be a matrix [N, D], got shape %s"
                       % (array.shape,))
    self.array = array
    self.shape = tuple(int(s) for s in array.shape)

  def read(self, start, stop):
    start, stop = _checked_range(start, stop, self.shape[0], "embeddings")
    return self.array[start:stop]                                  # [rows, D]


def as_reader(embeddings):
  """`embeddings` as a reader: a reader stays one, a path opens an `NpyReader`,
  an array becomes an `ArrayReader`."""
  if hasattr(embeddings, "read") and hasattr(embeddings, "shape"):
    if len(embeddings.shape) != 2:
      raise ValueError("%r: a reader's shape must be (N, D), got %s"
                       % (embeddings, embeddings.shape))
    return embeddings
  if isinstance(embeddings, (str, os.PathLike)):
    return NpyReader(embeddings)
  return ArrayReader(embeddings)


def chunk_bounds(start, stop, chunk_rows):
  """[(a, b)] covering start..stop-1 in order, each at most `chunk_rows` rows."""
  if chunk_rows < 1:
    raise ValueError("chunk_rows must be >= 1, got %r" % chunk_rows)
  return [(a, min(stop, a + chunk_rows)) for a in range(start, stop, chunk_rows)]


def _checked_range(start, stop, num_rows, name):
  start, stop = int(start), int(stop)
  if not 0 <= start <= stop <= num_rows:
    raise ValueError("%s: rows [%d, %d) are outside [0, %d)"
                     % (name, start, stop, num_rows))
  return start, stop
