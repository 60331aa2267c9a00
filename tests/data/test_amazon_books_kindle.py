"""PCL-AISL's own data: Amazon Books and Kindle Store (2014 release) through the
DIEN-style preprocessing (`--format=amazon --split=dien`), on generated files
in the 2014 review and metadata formats (the real files are not on these
machines). The expected sequences and categories come from the generator."""

import gzip
import json
import os

import numpy as np
import pytest

from dcg_tf.data import preprocess as pp
from dcg_tf.data.dataset import ProcessedDataset
from experiments import preprocess as binary
from tests.data.test_preprocess import _sequences
from tests.data.test_preprocess import _vocab

GENRES = {"Books": ["Mystery, Thriller & Suspense", "Children's Books", "Romance"],
          "Kindle_Store": ["Romance", "Science Fiction & Fantasy", "Literature & Fiction"]}


def _category_paths(dataset, item, genre):
  """The item's `categories` (2014 meta) and its DIEN category (last entry of
  the FIRST path)."""
  if dataset == "Books":
    if item % 5 == 0:                       # a bare top-level path
      return [["Books"]], "Books"
    return [["Books", "Literature & Fiction", genre]], genre
  if item % 4 == 0:                         # a Kindle item listed under Books first
    return [["Books", genre],
            ["Kindle Store", "Kindle eBooks", genre, "Historical"]], genre
  return [["Kindle Store", "Kindle eBooks", genre, "Historical"]], "Historical"


def write_amazon_2014_dataset(folder, dataset, num_users=24, num_items=15, seed=0,
                              compress=False):
  """`reviews_<dataset>_5.json[.gz]` and `meta_<dataset>.json[.gz]` (2014 layout).

  Reviews: strict JSON, the 2014 key order with every field (escaped quotes
  and unicode in the text), lines grouped by item as in the published files
  (not by time). Metadata: Python literals (`repr`, single quotes; a title
  with an apostrophe is written in double quotes), with `related`,
  `salesRank`, `imUrl`; every sixth item has no metadata line.

  Returns:
    (paths, expected): expected = {"sequences": {reviewerID: [asin, ...] in
    time order}, "category": {asin: DIEN category or None}}.
  """
  rng = np.random.default_rng(seed)
  asins = ["%s%09d" % ("B" if dataset == "Kindle_Store" else "0", 100 + i)
           for i in range(num_items)]
  rows, sequences = [], {}
  for u in range(num_users):
    user = "A%013X" % (0x3F00000 + 977 * u)
    length = int(rng.integers(2, 9))
    items = rng.choice(num_items, size=length, replace=False)
    times = 1_300_000_000 + np.sort(rng.choice(10_000, size=length, replace=False)) * 86400
    sequences[user] = [asins[i] for i in items]
    rows += [(user, asins[i], int(t)) for i, t in zip(items, times)]
  rows.sort(key=lambda r: (r[1], r[2]))      # grouped by item, as published
  ext = ".json.gz" if compress else ".json"
  reviews = os.path.join(folder, "reviews_%s_5%s" % (dataset, ext))
  meta = os.path.join(folder, "meta_%s%s" % (dataset, ext))
  opener = (lambda p: gzip.open(p, "wt", encoding="utf-8")) if compress else (
      lambda p: open(p, "w", encoding="utf-8"))
  with opener(reviews) as f:
    for user, asin, t in rows:
      f.write(json.dumps({
          "reviewerID": user, "asin": asin, "reviewerName": "Zoë \"Z\" Reader",
          "helpful": [1, 3], "reviewText": "It's a \"page-turner\".\nLoved it",
          "overall": float(rng.integers(1, 6)), "summary": "Five stars",
          "unixReviewTime": t, "reviewTime": "04 23, 2011"}) + "\n")
  categories = {}
  with opener(meta) as f:
    for i, asin in enumerate(asins):
      if i % 6 == 5:
        categories[asin] = None              # no metadata line
        continue
      paths, categories[asin] = _category_paths(
          dataset, i, GENRES[dataset][i % len(GENRES[dataset])])
      f.write(repr({
          "asin": asin, "title": "The Reader's Companion, Vol. %d" % i,
          "price": 2.99 + i, "imUrl": "http://ecx.images-amazon.com/%s.jpg" % asin,
          "related": {"also_bought": asins[:2], "buy_after_viewing": asins[2:3]},
          "salesRank": {"Books" if dataset == "Books" else "Kindle Store": 1000 + i},
          "categories": paths}) + "\n")
  return [reviews, meta], {"sequences": sequences, "category": categories}


@pytest.mark.parametrize("dataset,compress", [("Books", True), ("Kindle_Store", False)])
def test_dien_preprocessing_of_2014_files(tmp_path, dataset, compress):
  paths, expected = write_amazon_2014_dataset(str(tmp_path), dataset,
                                              compress=compress)
  out = str(tmp_path / "out")
  config = pp.PreprocessConfig(split="dien", dien_test_fraction=0.25, seed=3)
  manifest = binary.run("amazon", paths, out, config)
  # Every line parsed: the reviews and the 13 metadata lines (items 5 and 11
  # of 15 have none), nothing dropped.
  files = manifest["input_rows"]["files"]
  assert [(f["read"], f["kept"], f["dropped"]) for f in files] == [
      (manifest["counts"]["interactions"],) * 2 + ({},), (13, 13, {})]
  assert manifest["counts"]["interactions"] == sum(
      len(s) for s in expected["sequences"].values())
  # DIEN: each user's last behaviour (by time) is held out, the earlier ones
  # are the history and the training events; users go to valid or test.
  train, evals = _sequences(out)
  held = {**evals["valid"], **evals["test"]}
  assert not set(evals["valid"]) & set(evals["test"]) and evals["test"]
  assert set(held) == set(expected["sequences"])
  for user, items in expected["sequences"].items():
    assert held[user] == (items[:-1], [items[-1]])
    assert train[user] == items[:-1]
  # category: the last entry of the item's first category path (DIEN); an
  # item without a metadata line has none (index 0).
  data = ProcessedDataset.load(out)
  category_vocab = _vocab(out, "category")
  for row, asin in enumerate(_vocab(out, "item"), start=1):
    index = int(data.item_features["category"][row])
    got = category_vocab[index - 1] if index else None
    assert got == expected["category"][asin], asin
