"""Amazon review data (McAuley et al.), 2014 and 2018 releases.

Files (plain or gzipped; the kind is told by the name):
- reviews: `reviews_<Cat>[_5].json` (2014) or `<Cat>[_5].json` (2018), strict
  JSON, one review per line: `reviewerID`, `asin`, `unixReviewTime`, `overall`.
- metadata: `meta_<Cat>.json`. 2014 lines are Python literals (single quotes),
  parsed with `ast.literal_eval` (never `eval`); 2018 lines are JSON.
  category = the last entry of the item's (first) category path, as in DIEN's
  preprocessing (PCL-AISL paper, section 3.1); brand; title tokens.

Files are read in blocks of whole lines (byte ranges that worker processes
read themselves, see `load_amazon`). The fast path matches each block with one
regular expression (`_LAYOUTS`) that validates a whole line in the published
2014 or 2018 key order (unused values are checked to be JSON strings, numbers,
literals or flat lists/objects) and captures id, item, time and rating. Any
other line (other key order or spacing, escaped ids, nested values, errors) is
parsed on its own with `json.loads`, which either recovers it or names why it is
dropped (`malformed_json`, `non_utf8`, `empty_line`, `missing_user`,
`missing_item`, `missing_timestamp`, `bad_timestamp`). `strict_json=True` sends
every line through `json.loads` (about 2.5x slower).
"""

import ast
import collections
import concurrent.futures
import itertools
import json
import math
import multiprocessing
import os
import re

import numpy as np
import pandas as pd

from dcg_tf.data import raw as raw_lib
from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport

# One regular expression validates a whole review line of the 2014 or 2018
# layout (keys in the published order, other key/value pairs skipped but still
# checked as JSON strings, numbers, literals or flat lists/objects) and captures
# the four fields; any other line falls into the last group and is re-parsed with
# json.loads. Possessive repeats and the atomic value group only stop the engine
# from retrying alternatives that cannot match (the accepted lines are the same);
# they save about 15% of the matching time.
_STR = rb'"[^"\\\x00-\x1f]*+(?:\\.[^"\\\x00-\x1f]*+)*+"'
_ID = rb'"([^"\\\x00-\x1f]+)"'
_INT = rb"(-?\d+)"
_NUM = rb"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_VALUE = (rb"(?>" + _STR + rb"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null"
          rb"|\[[^\[\]{}\n]*\]|\{[^\[\]{}\n]*\})")
_SKIP = rb"(?:, " + _STR + rb": " + _VALUE + rb")*?"
_LAYOUT_2014 = (rb'\{"reviewerID": ' + _ID + rb', "asin": ' + _ID + _SKIP +
                rb', "overall": ' + _NUM + _SKIP + rb', "unixReviewTime": ' +
                _INT + _SKIP + rb"\}")
_LAYOUT_2018 = (rb'\{"overall": ' + _NUM + _SKIP + rb', "reviewerID": ' + _ID +
                rb', "asin": ' + _ID + _SKIP + rb', "unixReviewTime": ' + _INT +
                _SKIP + rb"\}")
# Groups: user, item, rating, time (2014 order) / rating, user, item, time (2018).
_LAYOUTS = (
    (re.compile(_LAYOUT_2014), re.compile(rb"^(?:" + _LAYOUT_2014 + rb"|[^\n]*)$", re.M),
     (0, 1, 3, 2)),
    (re.compile(_LAYOUT_2018), re.compile(rb"^(?:" + _LAYOUT_2018 + rb"|[^\n]*)$", re.M),
     (1, 2, 3, 0)),
)


def is_meta_file(path):
  return os.path.basename(str(path)).startswith("meta_")


# Inputs whose review files total more than this are parsed by worker
# processes (when workers=None).
_PARALLEL_MIN_BYTES = 64 << 20


def load_amazon(paths, strict_json=False, chunk_bytes=raw_lib.CHUNK_BYTES,
                workers=None):
  """Loads Amazon reviews (+ optional metadata files) into a `RawData`.

  Every file is cut into blocks of about `chunk_bytes`; the blocks of the
  review files, then those of the metadata files, are parsed by `workers`
  processes (each reads its own byte range of an uncompressed file) while the
  main process turns the parsed review blocks into id codes in file order. The
  metadata is thus parsed while the last review blocks are consumed, and only
  matched against the reviewed items at the end.

  Args:
    paths: list of files; names starting with `meta_` are metadata, the
      others reviews.
    strict_json: parse every review line with `json.loads`.
    chunk_bytes: bytes per block.
    workers: processes parsing blocks. None: one per available CPU, at most 2,
      when the review files total over 64 MB, else 1 (parse in this process).

  Returns:
    RawData with interactions (user, item as Categorical of str; timestamp;
    rating; file, line) and item_features (category, brand, title_token).
  """
  report = DropReport()
  review_paths = [p for p in paths if not is_meta_file(p)]
  meta_paths = [p for p in paths if is_meta_file(p)]
  if not review_paths:
    raise BadInputError("amazon: no review file among %s (metadata files are "
                        "named meta_*)" % list(paths))
  if workers is None:
    workers = _default_workers(review_paths)
  for path in review_paths:
    report.add_read(path, 0)
  users, items = raw_lib.Factorizer(), raw_lib.Factorizer()
  parts = []
  lines_done = [0] * len(review_paths)          # lines consumed per review file
  meta_blocks = [[] for _ in meta_paths]
  for (kind, index), parsed in _run_in_order(
      _tasks(review_paths, meta_paths, chunk_bytes, strict_json), workers):
    if parsed is None:                           # no line starts in the range
      continue
    if kind == "meta":
      meta_blocks[index].append(parsed)
      continue
    parts.append(_consume(review_paths[index], index, parsed, lines_done[index],
                          report, users, items))
    lines_done[index] += parsed[0]
  cat = lambda k, dtype: (
      np.concatenate([p[k] for p in parts]).astype(dtype, copy=False)
      if parts else np.zeros(0, dtype))
  user_codes = raw_lib.categorical(cat(0, np.int32), users, decode=True)
  item_codes = raw_lib.categorical(cat(1, np.int32), items, decode=True)
  interactions = pd.DataFrame({
      "user": user_codes, "item": item_codes,
      "timestamp": cat(2, np.int64), "rating": cat(3, np.float32),
      "file": cat(4, np.int16), "line": cat(5, np.int64)})
  item_features = _meta_features(meta_paths, meta_blocks, item_codes.categories,
                                 report)
  return raw_lib.RawData(interactions=interactions, item_features=item_features,
                         report=report, multi_valued=("title_token",),
                         has_time=True)


def _default_workers(review_paths):
  total = sum(os.path.getsize(str(p)) for p in review_paths if os.path.exists(str(p)))
  return min(2, len(os.sched_getaffinity(0))) if total > _PARALLEL_MIN_BYTES else 1


# === Blocks and workers ===


def _block_sources(path, chunk_bytes):
  """Yields the blocks of a file as the workers get them.

  An uncompressed file yields (path, start, end) byte ranges, which a worker
  reads itself (`raw.read_range`), so the main process never copies the bytes;
  a gzipped file can only be read in order, so it is decompressed here and
  yields the blocks (bytes).
  """
  if raw_lib.is_gzip(path):
    with raw_lib.open_binary(path) as stream:
      for _, block in raw_lib.iter_blocks(stream, chunk_bytes):
        yield block
  else:
    for start, end in raw_lib.byte_ranges(path, chunk_bytes):
      yield (str(path), start, end)


def _read_source(source):
  """The block (bytes) of a `_block_sources` item; None for an empty range."""
  if isinstance(source, bytes):
    return source
  return raw_lib.read_range(*source)


def _review_task(source, strict_json):
  """`_parse_block` of a review block, line numbers relative to the block."""
  block = _read_source(source)
  return None if block is None else _parse_block(1, block, strict_json)


def _meta_task(source):
  block = _read_source(source)
  return None if block is None else _parse_meta_block(block)


def _tasks(review_paths, meta_paths, chunk_bytes, strict_json):
  """Yields (tag, function, args) for every block: reviews first, then metadata."""
  for index, path in enumerate(review_paths):
    for source in _block_sources(path, chunk_bytes):
      yield ("review", index), _review_task, (source, strict_json)
  for index, path in enumerate(meta_paths):
    for source in _block_sources(path, chunk_bytes):
      yield ("meta", index), _meta_task, (source,)


def _run_in_order(tasks, workers):
  """Yields (tag, function(*args)) for each task, in the order of `tasks`.

  With workers > 1 the calls run in forked worker processes (they only run
  regular expressions and NumPy on bytes), at most 2 * workers ahead of the
  consumer.
  """
  if workers <= 1:
    for tag, function, args in tasks:
      yield tag, function(*args)
    return
  context = multiprocessing.get_context("fork")
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
    pending = collections.deque()
    for tag, function, args in tasks:
      pending.append((tag, pool.submit(function, *args)))
      if len(pending) > 2 * workers:            # bounded read-ahead
        tag, future = pending.popleft()
        yield tag, future.result()
    while pending:
      tag, future = pending.popleft()
      yield tag, future.result()


# === Reviews ===


def _consume(path, file_index, parsed, line_offset, report, users, items):
  """Counts a parsed block into the report and encodes its ids.

  `parsed` numbers its lines from 1; `line_offset` is the number of lines of
  the file before the block.
  """
  n, user, item, ts, rating, kept_lines, dropped = parsed
  report.add_read(path, n)
  for reason, lines in dropped.items():
    report.add_dropped(path, reason, lines + line_offset)
  report.add_kept(path, ts.size)
  return (users.add_factorized(*user), items.add_factorized(*item), ts, rating,
          np.full(ts.size, file_index, np.int16), kept_lines + line_offset)


def _parse_block(first_line, block, strict_json):
  """Parses a block of review lines.

  Returns:
    (lines in the block, users, items, time int64, rating float64, line
    numbers int64 of the kept lines, dict reason -> dropped line numbers);
    users and items are chunk-local `raw.factorize` results of the ids (bytes),
    so only distinct ids travel back from a worker process.
  """
  n = block.count(b"\n") + 1
  line_numbers = np.arange(first_line, first_line + n, dtype=np.int64)
  fast = None if strict_json else _fast_path(block, n)
  if fast is not None and fast[0] is None:          # every line matched
    _, user, item, ts, rating = fast
    return (n, raw_lib.factorize(user), raw_lib.factorize(item), ts, rating,
            line_numbers, {})
  lines = block.split(b"\n")
  values = {"user": np.empty(n, object), "item": np.empty(n, object),
            "timestamp": np.zeros(n, np.int64),
            "rating": np.full(n, np.nan, np.float64)}
  ok = np.zeros(n, bool)
  if fast is not None:
    ok, user, item, ts, rating = fast
    values["user"][ok] = np.array(user, dtype=object)[ok]
    values["item"][ok] = np.array(item, dtype=object)[ok]
    values["timestamp"][ok] = np.array(ts)[ok].astype(np.int64)
    values["rating"][ok] = np.array(rating)[ok].astype(np.float64)
  reasons = np.full(n, None, object)
  for i in np.flatnonzero(~ok):
    parsed = _parse_review_line(lines[i])
    if isinstance(parsed, str):
      reasons[i] = parsed
      continue
    for key, value in zip(("user", "item", "timestamp", "rating"), parsed):
      values[key][i] = value
    ok[i] = True
  dropped = {reason: line_numbers[~ok & (reasons == reason)]
             for reason in pd.unique(reasons[~ok])}
  return (n, raw_lib.factorize(values["user"][ok]),
          raw_lib.factorize(values["item"][ok]), values["timestamp"][ok],
          values["rating"][ok], line_numbers[ok], dropped)


def _fast_path(block, n):
  """Matches every line of `block` against the block's layout.

  The layout (2014 or 2018 key order) is the one the first line matches.

  Returns:
    None when the first line matches no layout; else (ok, user, item, time,
    rating): `ok` is None when every line matched (then time and rating are
    int64/float64 arrays), or a bool mask (then the columns are tuples of
    bytes, b"" where a line did not match).
  """
  first = block[:block.find(b"\n")] if n > 1 else block
  pattern, order = None, None
  for line_pattern, chunk_pattern, group_order in _LAYOUTS:
    if line_pattern.fullmatch(first):
      pattern, order = chunk_pattern, group_order
      break
  if pattern is None:
    return None
  rows = pattern.findall(block)
  if len(rows) != n:                       # cannot happen: one match per line
    return None
  # (zip(*rows) is quadratic-ish on long lists; comprehensions are not.)
  user, item, ts, rating = ([r[k] for r in rows] for k in order)
  utf8 = None                              # every line is valid UTF-8
  if not block.isascii():                  # (isascii: no copy of the block)
    try:
      block.decode("utf-8")
    except UnicodeDecodeError:
      utf8 = np.fromiter(map(_is_utf8, block.split(b"\n")), bool, n)
  if utf8 is None and all(user):           # an empty user group = no match
    return (None, user, item, np.fromiter(map(int, ts), np.int64, n),
            np.fromiter(map(float, rating), np.float64, n))
  ok = np.fromiter(map(bool, user), bool, n)
  if utf8 is not None:
    ok &= utf8
  return ok, user, item, ts, rating


def _is_utf8(line):
  try:
    line.decode("utf-8")
    return True
  except UnicodeDecodeError:
    return False


def _parse_review_line(line):
  """Parses one review line; returns (user, item, ts, rating) bytes/ints or a reason."""
  try:
    text = line.decode("utf-8")
  except UnicodeDecodeError:
    return "non_utf8"
  if not text.strip():
    return "empty_line"
  try:
    obj = json.loads(text)
  except ValueError:
    return "malformed_json"
  if not isinstance(obj, dict):
    return "malformed_json"
  user, item = obj.get("reviewerID"), obj.get("asin")
  if not isinstance(user, str) or not user:
    return "missing_user"
  if not isinstance(item, str) or not item:
    return "missing_item"
  ts = obj.get("unixReviewTime")
  if ts is None:
    return "missing_timestamp"
  if isinstance(ts, float) and ts.is_integer():
    ts = int(ts)
  if isinstance(ts, bool) or not isinstance(ts, int):
    return "bad_timestamp"
  rating = obj.get("overall")
  rating = (float(rating) if isinstance(rating, (int, float))
            and not isinstance(rating, bool) else math.nan)
  return user.encode("utf-8"), item.encode("utf-8"), ts, rating


# === Metadata ===


# Metadata fast path: the fields used (asin, title, brand, first category path)
# are pulled out with regular expressions from lines shaped `{...}`; a line
# where a used field is present but not a plain string (or string list) goes
# to the full parser. Values elsewhere on the line are not validated.
_PYSTR = (r"'[^'\\\n]*(?:\\.[^'\\\n]*)*'"
          r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_PYSTR_RE = re.compile(_PYSTR)
_STR_LIST = r"\[\s*((?:%s)(?:\s*,\s*(?:%s))*)?\s*\]" % (_PYSTR, _PYSTR)
_META_STRINGS = tuple((key, re.compile(r":\s*(%s)?" % _PYSTR))
                      for key in ("asin", "title", "brand"))
_META_PATHS = (("categories", re.compile(r":\s*\[\s*" + _STR_LIST)),
               ("category", re.compile(r":\s*" + _STR_LIST)))


def _find_key(text, key):
  """Position just after the quoted `key` (single or double quotes), or -1."""
  for quote in ("'", '"'):
    pos = text.find(quote + key + quote)
    if pos >= 0:
      return pos + len(key) + 2
  return -1


def _unquote(literal):
  if "\\" not in literal:
    return literal[1:-1]
  return ast.literal_eval(literal)       # a single string literal: safe


def _fast_meta(text):
  """The used fields of a `{...}` metadata line, or None to use the full parser."""
  if not (text.startswith("{") and text.endswith("}")):
    return None
  obj = {}
  for key, pattern in _META_STRINGS:
    pos = _find_key(text, key)
    if pos >= 0:
      m = pattern.match(text, pos)
      if m is None or m.group(1) is None:
        return None
      obj[key] = _unquote(m.group(1))
  if "asin" not in obj:
    return None
  for key, pattern in _META_PATHS:
    pos = _find_key(text, key)
    if pos >= 0:
      m = pattern.match(text, pos)
      if m is None:
        return None
      path = [_unquote(x) for x in _PYSTR_RE.findall(m.group(1) or "")]
      obj[key] = [path] if key == "categories" else path
  return obj


def _parse_meta_line(text):
  """JSON (2018) or a Python literal (2014); returns a dict or a reason."""
  fast = _fast_meta(text)
  if fast is not None:
    return fast
  try:
    obj = json.loads(text)
  except ValueError:
    try:
      obj = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
      return "malformed_literal"
  return obj if isinstance(obj, dict) else "malformed_literal"


def meta_category(obj):
  """Last entry of the item's category path (2014 `categories`, 2018 `category`)."""
  paths = obj.get("categories")
  if isinstance(paths, list) and paths:
    path = paths[0]
    if isinstance(path, list) and path and isinstance(path[-1], str):
      return path[-1].strip() or None
  path = obj.get("category")
  if isinstance(path, list) and path and isinstance(path[-1], str):
    return path[-1].strip() or None
  return None


_META_COLUMNS = ("reason", "asin", "category", "brand", "title_token")


def _parse_meta_block(block):
  """Parses a block of metadata lines.

  Returns:
    dict of equal-length lists, one entry per line (_META_COLUMNS): `reason`
    is why the line is dropped (None when it has an item id), the others the
    line's item id and features (None for dropped lines).
  """
  lines = block.split(b"\n")
  texts, bad_utf8 = raw_lib.decode_lines(lines)
  out = {name: [None] * len(lines) for name in _META_COLUMNS}
  reason, asins = out["reason"], out["asin"]
  for k, text in enumerate(texts):
    if bad_utf8[k]:
      reason[k] = "non_utf8"
      continue
    if not text.strip():
      reason[k] = "empty_line"
      continue
    obj = _parse_meta_line(text)
    if isinstance(obj, str):
      reason[k] = obj
      continue
    asin = obj.get("asin")
    if not isinstance(asin, str) or not asin:
      reason[k] = "missing_item"
      continue
    brand, title = obj.get("brand"), obj.get("title")
    asins[k] = asin
    out["category"][k] = meta_category(obj)
    out["brand"][k] = brand.strip() or None if isinstance(brand, str) else None
    out["title_token"][k] = raw_lib.tokenize(title) if isinstance(title, str) else []
  return out


def _meta_features(paths, blocks, known_items, report):
  """Item features from the parsed metadata blocks of each file, and their accounting.

  A line with an item id is kept when the item was reviewed and no earlier
  line (of any metadata file) was kept for it; else it is dropped as
  `item_not_in_interactions` or `duplicate_item`.

  Args:
    paths: metadata files.
    blocks: per file, the `_parse_meta_block` results in file order.
    known_items: pd.Index of the reviewed item ids.
    report: DropReport the files are counted into.

  Returns:
    DataFrame indexed by item id: category, brand, title_token (lists of str).
  """
  columns = {name: list(itertools.chain.from_iterable(
      b[name] for file_blocks in blocks for b in file_blocks))
             for name in _META_COLUMNS}
  lines = pd.DataFrame(columns, dtype=object)
  sizes = [sum(len(b["reason"]) for b in file_blocks) for file_blocks in blocks]
  reason = lines["reason"].to_numpy(object, copy=True)
  has_id = lines["reason"].isna().to_numpy()
  known = has_id & (known_items.get_indexer(lines["asin"].where(has_id, "")) >= 0)
  first = known.copy()
  first[known] = ~lines["asin"][known].duplicated(keep="first").to_numpy()
  reason[has_id & ~known] = "item_not_in_interactions"
  reason[known & ~first] = "duplicate_item"
  bounds = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
  for k, path in enumerate(paths):
    lo, hi = bounds[k], bounds[k + 1]
    report.add_read(path, hi - lo)
    file_reasons = reason[lo:hi]
    dropped = ~first[lo:hi]
    for name in pd.unique(file_reasons[dropped]):
      report.add_dropped(path, name, 1 + np.flatnonzero(dropped & (file_reasons == name)))
    report.add_kept(path, int(first[lo:hi].sum()))
  kept = lines[first]
  return pd.DataFrame(
      {name: pd.Series(kept[name].to_numpy(object), dtype=object)
       for name in ("category", "brand", "title_token")}
      ).set_axis(pd.Index(kept["asin"].to_numpy(object), dtype=object))
