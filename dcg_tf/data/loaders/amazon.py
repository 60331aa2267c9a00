"""Amazon review data (McAuley et al.), 2014 and 2018 releases.

Files (plain or gzipped; the kind is told by the name):
- reviews: `reviews_<Cat>[_5].json` (2014) or `<Cat>[_5].json` (2018), strict
  JSON, one review per line: `reviewerID`, `asin`, `unixReviewTime`, `overall`.
- metadata: `meta_<Cat>.json`. 2014 lines are Python literals (single quotes),
  parsed with `ast.literal_eval` (never `eval`); 2018 lines are JSON.
  category = the last entry of the item's (first) category path, as in DIEN's
  preprocessing (PCL-AISL paper, section 3.1); brand; title tokens.

Reviews are read in streamed chunks. The fast path matches each chunk with one
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
# json.loads.
_STR = rb'"[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*"'
_ID = rb'"([^"\\\x00-\x1f]+)"'
_INT = rb"(-?\d+)"
_NUM = rb"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_VALUE = (rb"(?:" + _STR + rb"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null"
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


# Review files larger than this are parsed by worker processes (when workers=None).
_PARALLEL_MIN_BYTES = 64 << 20


def load_amazon(paths, strict_json=False, chunk_bytes=raw_lib.CHUNK_BYTES,
                workers=None):
  """Loads Amazon reviews (+ optional metadata files) into a `RawData`.

  Args:
    paths: list of files; names starting with `meta_` are metadata, the
      others reviews.
    strict_json: parse every review line with `json.loads`.
    chunk_bytes: bytes per streamed chunk.
    workers: processes parsing review chunks (the main process reads the file
      and builds the id codes). None: one per available CPU, at most 2, for
      files over 64 MB, else 1.

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
  users, items = raw_lib.Factorizer(), raw_lib.Factorizer()
  parts = []
  for file_index, path in enumerate(review_paths):
    report.add_read(path, 0)
    n_workers = workers
    if n_workers is None:
      n_workers = (min(2, len(os.sched_getaffinity(0)))
                   if os.path.getsize(path) > _PARALLEL_MIN_BYTES else 1)
    with raw_lib.open_binary(path) as stream:
      for parsed in _parse_blocks(stream, chunk_bytes, strict_json, n_workers):
        parts.append(_consume(path, file_index, parsed, report, users, items))
  cat = lambda k, dtype: (np.concatenate([p[k] for p in parts]).astype(dtype)
                          if parts else np.zeros(0, dtype))
  user_codes = raw_lib.categorical(cat(0, np.int32), users, decode=True)
  item_codes = raw_lib.categorical(cat(1, np.int32), items, decode=True)
  interactions = pd.DataFrame({
      "user": user_codes, "item": item_codes,
      "timestamp": cat(2, np.int64), "rating": cat(3, np.float32),
      "file": cat(4, np.int16), "line": cat(5, np.int64)})
  known = set(item_codes.categories)
  item_features = _load_meta_files(meta_paths, known, report)
  return raw_lib.RawData(interactions=interactions, item_features=item_features,
                         report=report, multi_valued=("title_token",),
                         has_time=True)


# === Reviews ===


def _parse_blocks(stream, chunk_bytes, strict_json, workers):
  """Yields `_parse_block` results in file order, using `workers` processes."""
  blocks = raw_lib.iter_blocks(stream, chunk_bytes)
  if workers <= 1:
    for first_line, block in blocks:
      yield _parse_block(first_line, block, strict_json)
    return
  # fork: the workers only run regular expressions and NumPy on the bytes.
  context = multiprocessing.get_context("fork")
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
    pending = collections.deque()
    for first_line, block in blocks:
      pending.append(pool.submit(_parse_block, first_line, block, strict_json))
      if len(pending) > 2 * workers:          # bounded read-ahead
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def _consume(path, file_index, parsed, report, users, items):
  """Counts a parsed block into the report and encodes its ids."""
  n, user, item, ts, rating, kept_lines, dropped = parsed
  report.add_read(path, n)
  for reason, lines in dropped.items():
    report.add_dropped(path, reason, lines)
  report.add_kept(path, ts.size)
  return (users.add_factorized(*user), items.add_factorized(*item), ts, rating,
          np.full(ts.size, file_index, np.int16), kept_lines)


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
  try:
    block.decode("utf-8")
    utf8 = None
  except UnicodeDecodeError:
    utf8 = np.fromiter(map(_is_utf8, block.split(b"\n")), bool, n)
  if utf8 is None and all(user):           # an empty user group = no match
    return (None, user, item, np.array(ts).astype(np.int64),
            np.array(rating).astype(np.float64))
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


def _load_meta_files(paths, known_items, report):
  rows = {}
  for path in paths:
    report.add_read(path, 0)
    with raw_lib.open_binary(path) as stream:
      for first_line, lines in raw_lib.iter_line_chunks(stream):
        texts, bad_utf8 = raw_lib.decode_lines(lines)
        report.add_read(path, len(lines))
        dropped = {}
        kept = 0
        for i, text in enumerate(texts):
          number = first_line + i
          if bad_utf8[i]:
            dropped.setdefault("non_utf8", []).append(number)
            continue
          if not text.strip():
            dropped.setdefault("empty_line", []).append(number)
            continue
          obj = _parse_meta_line(text)
          if isinstance(obj, str):
            dropped.setdefault(obj, []).append(number)
            continue
          asin = obj.get("asin")
          if not isinstance(asin, str) or not asin:
            dropped.setdefault("missing_item", []).append(number)
          elif asin not in known_items:
            dropped.setdefault("item_not_in_interactions", []).append(number)
          elif asin in rows:
            dropped.setdefault("duplicate_item", []).append(number)
          else:
            brand = obj.get("brand")
            title = obj.get("title")
            rows[asin] = (meta_category(obj),
                          brand.strip() or None if isinstance(brand, str) else None,
                          raw_lib.tokenize(title) if isinstance(title, str) else [])
            kept += 1
        for reason, numbers in dropped.items():
          report.add_dropped(path, reason, numbers)
        report.add_kept(path, kept)
  values = list(rows.values())
  return pd.DataFrame(
      {name: pd.Series([v[k] for v in values], dtype=object)
       for k, name in enumerate(("category", "brand", "title_token"))}
      ).set_axis(pd.Index(list(rows), dtype=object))
