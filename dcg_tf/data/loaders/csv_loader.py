"""Any CSV/TSV with a column mapping, and the delimited-table reader the
MovieLens loader shares.

Columns are named by header name or by 0-based position. Rows with the wrong
number of fields (`wrong_field_count`), undecodable bytes (`non_utf8`), empty
user/item (`missing_user`, `missing_item`) or a timestamp that is neither a
number nor a date (`bad_timestamp`) are dropped and counted with their line
numbers.
"""

import csv

import numpy as np
import pandas as pd

from dcg_tf.data import raw as raw_lib
from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport


def read_table(stream, name, sep, report, header=True, encoding="utf-8",
               expected_columns=None):
  """Reads a delimited text table into a DataFrame of str columns.

  Args:
    stream: binary stream.
    name: the file name used in the report and in error messages.
    sep: one-character delimiter (csv quoting rules apply) or a longer literal
      separator such as "::" (split as is, no quoting).
    report: DropReport; every data line is counted as kept or dropped.
    header: the first line names the columns.
    encoding: "utf-8" (undecodable lines are dropped as `non_utf8`) or
      "latin-1" (every byte decodes).
    expected_columns: number of fields when there is no header.

  Returns:
    (DataFrame with str columns, int64 array of the kept rows' line numbers).
  """
  report.add_read(name, 0)
  data = stream.read()
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
  if encoding == "utf-8":
    texts, bad_utf8 = raw_lib.decode_lines(lines)
  else:
    texts, bad_utf8 = [l.decode(encoding) for l in lines], np.zeros(len(lines), bool)
  first = 1
  if header:
    if not texts:
      report.add_read(name, 0)
      raise BadInputError("%s: the file is empty (no header line)" % name)
    if bad_utf8[0]:
      raise BadInputError("%s: line 1 (header) is not valid UTF-8" % name)
    columns = _split([texts[0]], sep)[0]
    texts, bad_utf8, first = texts[1:], bad_utf8[1:], 2
  else:
    if expected_columns is None:
      raise ValueError("read_table: expected_columns is needed without a header")
    columns = [str(i) for i in range(expected_columns)]
  numbers = np.arange(first, first + len(texts), dtype=np.int64)
  report.add_read(name, len(texts))
  rows = _split(texts, sep)
  width = len(columns)
  counts = np.fromiter(map(len, rows), np.int64, len(rows))
  empty = np.fromiter((not t.strip() for t in texts), bool, len(texts))
  good = (counts == width) & ~bad_utf8 & ~empty
  report.add_dropped(name, "non_utf8", numbers[bad_utf8])
  report.add_dropped(name, "empty_line", numbers[empty & ~bad_utf8])
  report.add_dropped(name, "wrong_field_count",
                     numbers[(counts != width) & ~bad_utf8 & ~empty])
  kept_rows = [r for r, g in zip(rows, good) if g]
  frame = pd.DataFrame(kept_rows, columns=columns, dtype=object) if kept_rows \
      else pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
  return frame, numbers[good]


def _split(texts, sep):
  if len(sep) == 1:
    return list(csv.reader(texts, delimiter=sep, strict=False))
  return [t.split(sep) for t in texts]


def parse_timestamps(values):
  """Seconds as int64 from numbers or date strings; returns (ts, bad mask)."""
  values = pd.Series(values, dtype=object).str.strip()
  numeric = pd.to_numeric(values, errors="coerce")
  ts = np.zeros(len(values), np.int64)
  good = numeric.notna().to_numpy().copy()
  ts[good] = np.floor(numeric[good].to_numpy(np.float64)).astype(np.int64)
  rest = ~good & values.notna().to_numpy() & (values != "").to_numpy()
  if rest.any():
    dates = pd.to_datetime(values[rest], errors="coerce", utc=True, format="mixed")
    ok = dates.notna().to_numpy()
    idx = np.flatnonzero(rest)
    seconds = (dates[ok] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    ts[idx[ok]] = seconds.to_numpy(np.int64)
    good[idx[ok]] = True
  return ts, ~good


def _column(frame, spec, name, path):
  """Resolves a column given by header name or 0-based index."""
  if spec is None:
    return None
  if spec in frame.columns:
    return frame[spec]
  try:
    index = int(spec)
  except ValueError:
    index = None
  if index is not None and 0 <= index < frame.shape[1]:
    return frame.iloc[:, index]
  raise BadInputError("%s: no column %r for %s (columns: %s)"
                      % (path, spec, name, list(frame.columns)))


def load_csv(paths, user_col, item_col, timestamp_col=None, rating_col=None,
             item_feature_cols=(), multi_valued_cols=(), multi_sep="|",
             sep=",", header=True, encoding="utf-8"):
  """Loads interactions from one or more CSV/TSV files.

  Args:
    paths: files (plain or gzipped).
    user_col, item_col: column names (or 0-based indices as strings/ints).
    timestamp_col: seconds or dates; without it the row order is the time.
    rating_col: optional numeric rating.
    item_feature_cols: columns holding item features (first value per item).
    multi_valued_cols: the subset of item_feature_cols that hold lists joined
      by `multi_sep`.
    sep: field delimiter ("," or "\\t" ...).
    header: whether the first line names the columns.

  Returns:
    RawData.
  """
  report = DropReport()
  frames, features = [], []
  order_base = 0
  for file_index, path in enumerate(paths):
    path = str(path)
    if not header:
      with raw_lib.open_binary(path) as stream:
        first = stream.readline().decode(encoding, "replace")
      expected = len(next(csv.reader([first], delimiter=sep))) if first else 0
    else:
      expected = None
    with raw_lib.open_binary(path) as stream:
      frame, numbers = read_table(stream, path, sep, report, header=header,
                                  encoding=encoding, expected_columns=expected)
    user = _column(frame, user_col, "user", path).str.strip()
    item = _column(frame, item_col, "item", path).str.strip()
    bad = {"missing_user": (user == "").to_numpy(),
           "missing_item": (item == "").to_numpy()}
    if timestamp_col is not None:
      ts, bad_ts = parse_timestamps(_column(frame, timestamp_col, "timestamp", path))
      bad["bad_timestamp"] = bad_ts
    else:
      ts = order_base + np.arange(len(frame), dtype=np.int64)
    rating = None
    if rating_col is not None:
      rating = pd.to_numeric(_column(frame, rating_col, "rating", path),
                             errors="coerce").to_numpy(np.float32)
      bad["bad_rating"] = np.isnan(rating)
    dropped = np.zeros(len(frame), bool)
    for reason, mask in bad.items():
      mask = mask & ~dropped
      report.add_dropped(path, reason, numbers[mask])
      dropped |= mask
    keep = ~dropped
    report.add_kept(path, int(keep.sum()))
    frames.append(raw_lib.interactions_frame(
        user[keep].to_numpy(object), item[keep].to_numpy(object), ts[keep],
        None if rating is None else rating[keep], file_index, numbers[keep]))
    order_base += len(frame)
    if item_feature_cols:
      cols = {c: _column(frame, c, "item feature", path)[keep]
              for c in item_feature_cols}
      feat = pd.DataFrame({str(c): v.to_numpy(object) for c, v in cols.items()},
                          index=item[keep].to_numpy(object))
      features.append(feat)
  interactions = pd.concat(frames, ignore_index=True)
  item_features = pd.DataFrame(index=pd.Index([], dtype=object))
  multi = tuple(str(c) for c in multi_valued_cols)
  if features:
    item_features = pd.concat(features)
    item_features = item_features[~item_features.index.duplicated(keep="first")]
    for c in item_features.columns:
      col = item_features[c].fillna("").astype(str).str.strip()
      if c in multi:
        item_features[c] = [[v.strip() for v in s.split(multi_sep) if v.strip()]
                            for s in col]
      else:
        item_features[c] = col.where(col != "", None)
  return raw_lib.RawData(interactions=interactions, item_features=item_features,
                         report=report, multi_valued=multi,
                         has_time=timestamp_col is not None)
