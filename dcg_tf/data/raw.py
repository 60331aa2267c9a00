"""`RawData`: what every loader returns and preprocessing consumes, plus the
reading helpers the loaders share (gzip-transparent opening, streamed line
blocks, byte ranges of lines that workers read independently, UTF-8 checks,
streaming id factorization, tokenization).

See docs/design.md, "Data-layer Python API".
"""

import dataclasses
import gzip
import hashlib
import io
import itertools
import os
import re
import zipfile

import numpy as np
import pandas as pd

from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport


@dataclasses.dataclass
class RawData:
  """Interactions and side features in raw-id space.

  Attributes:
    interactions: DataFrame with columns `user` and `item` (str, or a pandas
      Categorical of str to save memory on large inputs), `timestamp` (int64
      seconds; the row order within a user when the data has no time),
      optional `rating` (float), and optional `file` (int index into
      `report.files`) + `line` (1-based line number) so that later drops
      (duplicates) are counted against the input line.
    item_features: DataFrame indexed by raw item id (str); single-valued
      columns hold str (None = missing), multi-valued columns hold lists of str.
    user_features: DataFrame indexed by raw user id (str), str columns.
    report: per-file accounting of read/kept/dropped rows.
    multi_valued: names of the multi-valued item feature columns.
    has_time: False when `timestamp` is only a row order (no real time).
  """
  interactions: pd.DataFrame
  item_features: pd.DataFrame = dataclasses.field(
      default_factory=lambda: pd.DataFrame(index=pd.Index([], dtype=object)))
  user_features: pd.DataFrame = dataclasses.field(
      default_factory=lambda: pd.DataFrame(index=pd.Index([], dtype=object)))
  report: DropReport = dataclasses.field(default_factory=DropReport)
  multi_valued: tuple = ()
  has_time: bool = True

  def __post_init__(self):
    missing = {"user", "item", "timestamp"} - set(self.interactions.columns)
    if missing:
      raise ValueError("RawData.interactions lacks columns %s" % sorted(missing))
    if not np.issubdtype(self.interactions["timestamp"].dtype, np.integer):
      raise ValueError("RawData.interactions.timestamp must be integer, got %s"
                       % self.interactions["timestamp"].dtype)


def interactions_frame(users, items, timestamps, ratings=None, file_index=None,
                       lines=None):
  """Builds the interactions DataFrame from aligned arrays."""
  data = {"user": users, "item": items,
          "timestamp": np.asarray(timestamps, dtype=np.int64)}
  if ratings is not None:
    data["rating"] = np.asarray(ratings, dtype=np.float32)
  if lines is not None:
    data["file"] = np.full(len(data["timestamp"]), file_index, dtype=np.int16) \
        if np.isscalar(file_index) else np.asarray(file_index, dtype=np.int16)
    data["line"] = np.asarray(lines, dtype=np.int64)
  return pd.DataFrame(data)


# === Reading helpers shared by the loaders ===

# Bytes per streamed chunk (cut at a line end).
CHUNK_BYTES = 16 << 20


def is_gzip(path):
  """True when `path` starts with the gzip magic bytes."""
  path = str(path)
  if not os.path.exists(path):
    raise BadInputError("%s: no such file" % path)
  with open(path, "rb") as f:
    return f.read(2) == b"\x1f\x8b"


def open_binary(path):
  """Opens `path` for binary reading, transparently gunzipping `.gz` files."""
  path = str(path)
  if is_gzip(path):
    return gzip.open(path, "rb")
  return open(path, "rb")


def sha256_file(path):
  """Hex sha256 of the file's bytes.

  Reads 1 MB at a time into one reused buffer (no allocation per read);
  hashlib and the reads release the GIL, so this can run in a thread.
  """
  digest = hashlib.sha256()
  buffer = bytearray(1 << 20)
  view = memoryview(buffer)
  with open(path, "rb", buffering=0) as f:
    while True:
      size = f.readinto(buffer)
      if not size:
        break
      digest.update(view[:size])
  return digest.hexdigest()


def _normalize_block(block):
  """b"\r\n" -> b"\n" and no trailing b"\r" (the line-end rules of iter_blocks)."""
  if b"\r" in block:
    block = block.replace(b"\r\n", b"\n")
    if block.endswith(b"\r"):
      block = block[:-1]
  return block


def iter_blocks(stream, chunk_bytes=CHUNK_BYTES):
  """Yields (first_line_number, block) from a binary stream.

  A block holds whole lines joined by b"\n" (no trailing newline; b"\r\n"
  becomes b"\n"), so it has block.count(b"\n") + 1 lines. Line numbers are
  1-based. The last line may lack a newline in the file.
  """
  line_no = 1
  rest = b""
  while True:
    piece = stream.read(chunk_bytes)
    if not piece:
      break
    piece = rest + piece
    cut = piece.rfind(b"\n")
    if cut < 0:
      rest = piece
      continue
    rest = piece[cut + 1:]
    block = _normalize_block(piece[:cut])
    yield line_no, block
    line_no += block.count(b"\n") + 1
  if rest:
    yield line_no, rest[:-1] if rest.endswith(b"\r") else rest


def byte_ranges(path, chunk_bytes=CHUNK_BYTES):
  """[(start, end), ...] covering an uncompressed file in `chunk_bytes` steps.

  Each range stands for the lines that *start* inside it (see read_range), so
  the ranges can be read independently, e.g. by worker processes, and their
  blocks together are the lines of iter_blocks.
  """
  size = os.path.getsize(str(path))
  return [(start, min(start + chunk_bytes, size))
          for start in range(0, size, chunk_bytes)]


def read_range(path, start, end):
  """The block of lines of an uncompressed file that start in [start, end).

  Same layout as an iter_blocks block (lines joined by b"\n", no trailing
  newline, b"\r\n" -> b"\n"); None when no line starts in the range. The line
  bounds are found with small reads, then the block is read in one piece (no
  copies of the large buffer).
  """
  with open(str(path), "rb") as f:
    if start == 0:
      first = 0
    else:                               # the line begun before `start` is not ours
      newline = _next_newline(f, start - 1)
      if newline is None:
        return None
      first = newline + 1
    if first >= end:
      return None
    stop = _next_newline(f, end - 1)    # end of the last line (exclusive)
    if stop is None:
      stop = os.fstat(f.fileno()).st_size
    f.seek(first)
    return _normalize_block(f.read(stop - first))


def _next_newline(f, pos):
  """Offset of the first b"\n" at or after `pos` in file `f`, or None."""
  f.seek(pos)
  while True:
    piece = f.read(1 << 16)
    if not piece:
      return None
    cut = piece.find(b"\n")
    if cut >= 0:
      return pos + cut
    pos += len(piece)


def iter_line_chunks(stream, chunk_bytes=CHUNK_BYTES):
  """Yields (first_line_number, [line bytes, ...]); see iter_blocks."""
  for line_no, block in iter_blocks(stream, chunk_bytes):
    yield line_no, block.split(b"\n")


def decode_lines(lines):
  """Decodes UTF-8 lines; returns (list of str, bool array of undecodable lines)."""
  try:
    text = b"\n".join(lines).decode("utf-8")
    out = text.split("\n")
    if len(out) == len(lines):
      return out, np.zeros(len(lines), bool)
  except UnicodeDecodeError:
    pass
  out, bad = [], np.zeros(len(lines), bool)
  for i, line in enumerate(lines):
    try:
      out.append(line.decode("utf-8"))
    except UnicodeDecodeError:
      out.append("")
      bad[i] = True
  return out, bad


def factorize(values):
  """(int32 codes, list of distinct values in first-seen order) of a chunk."""
  codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=False)
  return codes.astype(np.int32), list(uniques)


class Factorizer:
  """Streaming value -> dense code mapping (first-seen order), chunk by chunk.

  `add(values)` returns the global int32 codes of a chunk; `categories()` the
  values by code. Each chunk is factorized by pandas (hash table in C) and only
  its distinct values are looked up in a dict, so memory stays at one int32 per
  row plus the distinct values.
  """

  def __init__(self):
    self._codes = {}
    self._values = []

  def add(self, values):
    return self.add_factorized(*factorize(values))

  def add_factorized(self, codes, uniques):
    """Global codes of a chunk given its local `factorize(values)`."""
    lookup = self._codes
    pos = np.fromiter(map(lookup.get, uniques, itertools.repeat(-1)), np.int64,
                      len(uniques))
    new = np.flatnonzero(pos < 0)
    if new.size:
      start = len(self._values)
      pos[new] = start + np.arange(new.size)
      fresh = [uniques[k] for k in new]
      lookup.update(zip(fresh, range(start, start + new.size)))
      self._values.extend(fresh)
    return pos[codes].astype(np.int32) if len(codes) else np.zeros(0, np.int32)

  def categories(self, decode=False):
    values = [v.decode("utf-8") for v in self._values] if decode else self._values
    return pd.Index(values, dtype=object)


def categorical(codes, factorizer, decode=False):
  """pandas Categorical of str from concatenated Factorizer codes."""
  return pd.Categorical.from_codes(
      np.asarray(codes, dtype=np.int32), categories=factorizer.categories(decode),
      validate=False)


_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text, max_tokens=None):
  """Lower-cased alphanumeric tokens of `text` (title tokens, item text)."""
  tokens = _TOKEN_RE.findall(str(text).lower())
  return tokens[:max_tokens] if max_tokens else tokens


def open_member(path, name):
  """Opens `name` inside a zip archive or a folder; returns a binary stream."""
  path = str(path)
  if zipfile.is_zipfile(path):
    archive = zipfile.ZipFile(path)
    matches = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == name]
    if not matches:
      raise BadInputError("%s: the archive has no %s" % (path, name))
    return io.BufferedReader(archive.open(matches[0]))
  return open_binary(os.path.join(path, name))
