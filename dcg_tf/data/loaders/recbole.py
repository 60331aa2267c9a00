"""RecBole atomic files (UniSRec downstream datasets, e.g. Amazon Scientific).

Files of dataset `<Name>` (tab separated; `.inter`/`.text` start with a typed
header like `user_id:token\\titem_id_list:token_seq\\titem_id:token`):
- `<Name>.user2index`, `<Name>.item2index`: `raw id \\t 0-based index` (no header).
- `<Name>.test.inter[.gz]`: one row per user, the history before the test item
  and the test item, in index space. Each user's full sequence is rebuilt as
  history + target (`train` holds every prefix and `valid` the sequence minus
  its last item, so `test` alone carries everything).
- `<Name>.text`: `item_id:token \\t text:token_seq`, the item text
  "title. categories. brand." (UniSRec joins the three with ". "), parsed
  into three fields (`split_item_text`): `title_token` and `category_token`
  (multi-valued, lower-cased alphanumeric tokens) and `brand` (single-valued,
  the brand string as one value).

Ids are mapped back to raw ids (ASINs, reviewer ids) so the vocabularies name
the real entities. The row order is the time (`has_time` False).
"""

import os

import numpy as np
import pandas as pd

from dcg_tf.data import raw as raw_lib
from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport

_SUFFIXES = (".test.inter", ".user2index", ".item2index", ".text")


def _find(paths):
  """Expands folders and returns suffix -> path."""
  files = []
  for path in map(str, paths):
    if os.path.isdir(path):
      files += [os.path.join(path, n) for n in sorted(os.listdir(path))]
    elif os.path.exists(path):
      files.append(path)
    else:
      raise BadInputError("%s: no such file or folder" % path)
  found = {}
  for f in files:
    name = f[:-3] if f.endswith(".gz") else f
    for suffix in _SUFFIXES:
      if name.endswith(suffix):
        found.setdefault(suffix, f)
  return found


def _read_lines(path, report):
  report.add_read(path, 0)
  with raw_lib.open_binary(path) as stream:
    lines = stream.read().split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
  return raw_lib.decode_lines(lines)


def _read_index(path, report):
  """Reads `raw \\t index`; returns an object array raw id by index."""
  texts, bad = _read_lines(path, report)
  report.add_read(path, len(texts))
  numbers = np.arange(1, len(texts) + 1)
  fields = [t.split("\t") for t in texts]
  good = np.array([not b and len(f) == 2 and f[1].strip().isdigit()
                   for f, b in zip(fields, bad)], bool)
  report.add_dropped(path, "non_utf8", numbers[bad])
  report.add_dropped(path, "malformed_line", numbers[~good & ~bad])
  report.add_kept(path, int(good.sum()))
  raw = [f[0].strip() for f, g in zip(fields, good) if g]
  index = np.array([int(f[1]) for f, g in zip(fields, good) if g], np.int64)
  table = np.full(index.max() + 1 if index.size else 0, None, object)
  table[index] = raw
  return table


def _check_header(path, header, expected):
  names = [h.split(":")[0] for h in header.split("\t")]
  if names[:len(expected)] != expected:
    raise BadInputError("%s: line 1 should be a typed header with fields %s, got %r"
                        % (path, expected, header))


def load_recbole(paths):
  """Loads a RecBole dataset from its folder or files; returns RawData."""
  found = _find(paths)
  for suffix in (".test.inter", ".user2index", ".item2index"):
    if suffix not in found:
      raise BadInputError("recbole: no *%s file among %s" % (suffix, list(paths)))
  report = DropReport()
  users = _read_index(found[".user2index"], report)
  items = _read_index(found[".item2index"], report)
  path = found[".test.inter"]
  texts, bad = _read_lines(path, report)
  if not texts:
    report.add_read(path, 0)
    raise BadInputError("%s: the file is empty" % path)
  _check_header(path, texts[0], ["user_id", "item_id_list", "item_id"])
  texts, bad = texts[1:], bad[1:]
  report.add_read(path, len(texts))
  numbers = np.arange(2, len(texts) + 2)
  seq_users, seq_items, seq_lines = [], [], []
  dropped = {}
  for number, text, is_bad in zip(numbers, texts, bad):
    fields = text.split("\t")
    if is_bad:
      dropped.setdefault("non_utf8", []).append(number)
      continue
    if len(fields) != 3:
      dropped.setdefault("wrong_field_count", []).append(number)
      continue
    try:
      u = int(fields[0])
      seq = [int(x) for x in fields[1].split()] + [int(fields[2])]
    except ValueError:
      dropped.setdefault("non_integer_id", []).append(number)
      continue
    if not 0 <= u < users.size or users[u] is None:
      dropped.setdefault("unknown_user", []).append(number)
      continue
    if any(not 0 <= i < items.size or items[i] is None for i in seq):
      dropped.setdefault("unknown_item", []).append(number)
      continue
    seq_users.append(np.full(len(seq), u))
    seq_items.append(np.asarray(seq))
    seq_lines.append(np.full(len(seq), number))
  for reason, lines in dropped.items():
    report.add_dropped(path, reason, lines)
  kept = len(seq_users)
  report.add_kept(path, kept)
  u = np.concatenate(seq_users) if seq_users else np.zeros(0, np.int64)
  i = np.concatenate(seq_items) if seq_items else np.zeros(0, np.int64)
  file_index = list(report.files).index(path)
  interactions = raw_lib.interactions_frame(
      users[u], items[i], np.arange(u.size, dtype=np.int64), None, file_index,
      np.concatenate(seq_lines) if seq_lines else np.zeros(0, np.int64))
  features = pd.DataFrame(index=pd.Index([], dtype=object))
  multi = ()
  if ".text" in found:
    features = _read_text(found[".text"], set(interactions["item"]), report)
    multi = ("title_token", "category_token")
  return raw_lib.RawData(interactions=interactions, item_features=features,
                         report=report, multi_valued=multi, has_time=False)


def _read_text(path, known, report):
  texts, bad = _read_lines(path, report)
  if not texts:
    report.add_read(path, 0)
    raise BadInputError("%s: the file is empty" % path)
  _check_header(path, texts[0], ["item_id", "text"])
  texts, bad = texts[1:], bad[1:]
  report.add_read(path, len(texts))
  rows, dropped = {}, {}
  for number, text, is_bad in zip(range(2, len(texts) + 2), texts, bad):
    fields = text.split("\t")
    if is_bad:
      dropped.setdefault("non_utf8", []).append(number)
    elif len(fields) != 2:
      dropped.setdefault("wrong_field_count", []).append(number)
    elif fields[0].strip() not in known:
      dropped.setdefault("item_not_in_interactions", []).append(number)
    elif fields[0].strip() in rows:
      dropped.setdefault("duplicate_item", []).append(number)
    else:
      rows[fields[0].strip()] = split_item_text(fields[1])
  for reason, lines in dropped.items():
    report.add_dropped(path, reason, lines)
  report.add_kept(path, len(rows))
  title, category, brand = (list(column) for column in zip(*rows.values())) if rows else ([], [], [])
  return pd.DataFrame({"title_token": [raw_lib.tokenize(t) for t in title],
                       "category_token": [raw_lib.tokenize(c) for c in category],
                       "brand": brand},
                      index=pd.Index(list(rows.keys()), dtype=object))


def split_item_text(text):
  """Splits UniSRec's item text "title. categories. brand." into its parts.

  UniSRec writes each item's text as title, category path and brand, each
  followed by ". " (an empty part leaves ". ." behind). Titles may contain
  ". " themselves ("4.4 x 8.4 in. 1-ply"), brands rarely do, so the text is
  split from the right: the last part is the brand, the one before it the
  category path, everything before that the title. A text without three
  parts is all title (no category path, no brand).

  Returns:
    (title, categories, brand): strings; brand None when empty.

  Example:
    >>> split_item_text("Shop Towels, 10 x 12. Industrial & Scientific Wipes. Scott. ")
    ('Shop Towels, 10 x 12', 'Industrial & Scientific Wipes', 'Scott')
  """
  body = text.strip()
  if body.endswith("."):
    body = body[:-1]
  parts = body.rsplit(". ", 2)
  if len(parts) < 3:
    return text.strip(), "", None
  title, categories, brand = (part.strip() for part in parts)
  if categories == ".":   # an empty category path: "title. . brand."
    categories = ""
  return title, categories, brand or None
