"""Sequence files: SASRec/BERT4Rec `user item` lines and S3-Rec user-per-line files.

- pairs (`../shared/data/amazon-beauty-bert4rec/beauty.txt`): one `user item`
  per line, each user's lines in time order.
- user per line (`../shared/data/amazon-s3rec/<Name>.txt`): `user item1 item2
  ...` in time order, plus an optional `<Name>_item2attributes.json` (a JSON
  object `{"item": [attribute, ...]}`) read as the multi-valued item feature
  `attribute`.

There are no timestamps: `timestamp` is the event's position (line index for
pairs, position in the line for user-per-line), so sorting by it keeps the
file's order, and `RawData.has_time` is False.
"""

import json
import os

import numpy as np
import pandas as pd

from dcg_tf.data import raw as raw_lib
from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport


def is_attribute_file(path):
  return os.path.basename(str(path)).endswith("_item2attributes.json")


def derive_category(attribute_lists, max_coverage=0.5):
  """One category per item from its attribute list (S3-Rec data has no category).

  S3-Rec's attributes mix Amazon's category path and the brand, without names.
  The category of an item is its attribute carried by the most items, ignoring
  attributes carried by more than `max_coverage` of the catalog (the roots of
  the category path, such as "Beauty"); brands, each on few items, rarely win.
  Ties go to the smaller attribute string. An item whose attributes are all
  above the coverage takes its most common one; an item without any gets None.

  Args:
    attribute_lists: list of lists of attribute strings, one per item.
    max_coverage: share of items above which an attribute is a root.

  Returns:
    list of str or None, one per item.
  """
  frequency = {}
  for attrs in attribute_lists:
    for a in set(attrs):
      frequency[a] = frequency.get(a, 0) + 1
  limit = max_coverage * max(len(attribute_lists), 1)
  out = []
  for attrs in attribute_lists:
    if not attrs:
      out.append(None)
      continue
    narrow = [a for a in set(attrs) if frequency[a] <= limit] or list(set(attrs))
    out.append(min(narrow, key=lambda a: (-frequency[a], a)))
  return out


def load_sequence(paths, layout="auto", category_from_attributes=True):
  """Loads sequence files.

  Args:
    paths: sequence files (plain or gzipped) and optionally
      `*_item2attributes.json` files.
    layout: "pairs", "user_per_line", or "auto" (user_per_line when a line has
      more than two fields or an attribute file is given).
    category_from_attributes: with attributes, also derive a single-valued
      `category` feature (`derive_category`), which Multi-CLRec's routing needs.

  Returns:
    RawData.
  """
  report = DropReport()
  seq_paths = [str(p) for p in paths if not is_attribute_file(p)]
  attr_paths = [str(p) for p in paths if is_attribute_file(p)]
  if not seq_paths:
    raise BadInputError("sequence: no sequence file among %s" % list(paths))
  frames = []
  for file_index, path in enumerate(seq_paths):
    frames.append(_load_file(path, file_index, layout, bool(attr_paths), report))
  interactions = pd.concat(frames, ignore_index=True)
  features = pd.DataFrame(index=pd.Index([], dtype=object))
  multi = ()
  if attr_paths:
    known = set(interactions["item"])
    parts = [_load_attributes(p, known, report) for p in attr_paths]
    features = pd.concat(parts)
    features = features[~features.index.duplicated(keep="first")]
    multi = ("attribute",)
    if category_from_attributes:
      features["category"] = derive_category(list(features["attribute"]))
  return raw_lib.RawData(interactions=interactions, item_features=features,
                         report=report, multi_valued=multi, has_time=False)


def _load_file(path, file_index, layout, has_attributes, report):
  report.add_read(path, 0)
  with raw_lib.open_binary(path) as stream:
    data = stream.read()
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  texts, bad_utf8 = raw_lib.decode_lines(lines)
  numbers = np.arange(1, len(texts) + 1, dtype=np.int64)
  report.add_read(path, len(texts))
  fields = [t.split() for t in texts]
  counts = np.fromiter(map(len, fields), np.int64, len(fields))
  if layout == "auto":
    layout = ("user_per_line" if has_attributes or (counts > 2).any()
              else "pairs")
  empty = (counts == 0) & ~bad_utf8
  if layout == "pairs":
    wrong = (counts != 2) & ~empty & ~bad_utf8
  elif layout == "user_per_line":
    wrong = (counts < 2) & ~empty & ~bad_utf8
  else:
    raise ValueError("unknown sequence layout %r" % layout)
  report.add_dropped(path, "non_utf8", numbers[bad_utf8])
  report.add_dropped(path, "empty_line", numbers[empty])
  report.add_dropped(path, "wrong_field_count", numbers[wrong])
  good = ~bad_utf8 & ~empty & ~wrong
  report.add_kept(path, int(good.sum()))
  fields = [f for f, g in zip(fields, good) if g]
  numbers = numbers[good]
  if layout == "pairs":
    users = np.array([f[0] for f in fields], dtype=object)
    items = np.array([f[1] for f in fields], dtype=object)
    ts, lines_of = numbers.copy(), numbers
  else:
    lengths = counts[good] - 1
    users = np.repeat(np.array([f[0] for f in fields], dtype=object), lengths)
    items = np.array([x for f in fields for x in f[1:]], dtype=object)
    # The global event position keeps each user's order, also across lines.
    ts = np.arange(items.size, dtype=np.int64)
    lines_of = np.repeat(numbers, lengths)
  return raw_lib.interactions_frame(users, items, ts, None, file_index, lines_of)


def _load_attributes(path, known, report):
  report.add_read(path, 0)
  with raw_lib.open_binary(path) as stream:
    data = stream.read()
  try:
    obj = json.loads(data.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise BadInputError("%s: not valid UTF-8 (%s)" % (path, e)) from e
  except ValueError as e:
    raise BadInputError("%s: not a JSON object (%s)" % (path, e)) from e
  if not isinstance(obj, dict):
    raise BadInputError("%s: expected a JSON object item -> [attributes], got %s"
                        % (path, type(obj).__name__))
  # Entries are numbered 1.. in file order in place of line numbers.
  report.add_read(path, len(obj))
  rows, dropped = {}, {}
  for number, (item, attrs) in enumerate(obj.items(), start=1):
    if not isinstance(attrs, list):
      dropped.setdefault("malformed_entry", []).append(number)
    elif str(item) not in known:
      dropped.setdefault("item_not_in_interactions", []).append(number)
    else:
      rows[str(item)] = [str(a) for a in attrs]
  for reason, numbers in dropped.items():
    report.add_dropped(path, reason, numbers)
  report.add_kept(path, len(rows))
  return pd.DataFrame({"attribute": list(rows.values())},
                      index=pd.Index(list(rows.keys()), dtype=object))
