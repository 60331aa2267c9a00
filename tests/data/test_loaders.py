"""Loaders: each format parsed into the RawData contract, checked against the
hand-written input files (the expected rows are written next to the input)."""

import gzip
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from dcg_tf.data import raw as raw_lib
from dcg_tf.data import synthetic
from dcg_tf.data.loaders import LOADERS
from dcg_tf.data.loaders import amazon
from dcg_tf.data.loaders import movielens
from dcg_tf.data.loaders import recbole


def _rows(raw):
  i = raw.interactions
  return list(zip(i["user"].astype(str), i["item"].astype(str),
                  i["timestamp"].astype(int)))


REVIEWS_2014 = [
    {"reviewerID": "U1", "asin": "I1", "reviewerName": "a", "helpful": [0, 0],
     "reviewText": "ok, \"quoted\" text", "overall": 5.0, "summary": "s",
     "unixReviewTime": 100, "reviewTime": "01 01, 1970"},
    {"reviewerID": "U1", "asin": "I2", "helpful": [1, 2], "reviewText": "x",
     "overall": 3.0, "summary": "t", "unixReviewTime": 50, "reviewTime": "d"},
    {"reviewerID": "U2", "asin": "I1", "reviewerName": "b", "helpful": [0, 0],
     "reviewText": "y", "overall": 4.0, "summary": "u", "unixReviewTime": 70,
     "reviewTime": "d"},
]
META_2014 = [
    {"asin": "I1", "title": "Red Lipstick, Matte", "price": 9.5,
     "categories": [["Beauty", "Makeup", "Lips"], ["Beauty", "Sale"]],
     "brand": "Acme"},
    {"asin": "I2", "title": "Shampoo 'Fresh'", "categories": [["Beauty", "Hair"]]},
]


def _write_lines(path, lines, compress=False):
  opener = gzip.open if compress else open
  with opener(path, "wt", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))
  return str(path)


@pytest.mark.parametrize("compress", [False, True])
def test_amazon_2014_reviews_and_literal_meta(tmp_path, compress):
  ext = ".json.gz" if compress else ".json"
  reviews = _write_lines(tmp_path / ("reviews_Beauty" + ext),
                         [json.dumps(r) for r in REVIEWS_2014], compress)
  # repr() writes Python literals with single quotes, like the 2014 files.
  meta = _write_lines(tmp_path / ("meta_Beauty" + ext),
                      [repr(m) for m in META_2014], compress)
  raw = LOADERS["amazon"]([reviews, meta])
  assert _rows(raw) == [("U1", "I1", 100), ("U1", "I2", 50), ("U2", "I1", 70)]
  np.testing.assert_array_equal(raw.interactions["rating"], [5.0, 3.0, 4.0])
  np.testing.assert_array_equal(raw.interactions["line"], [1, 2, 3])
  feats = raw.item_features
  # category = last entry of the first category path (DIEN).
  assert feats.loc["I1", "category"] == "Lips"
  assert feats.loc["I2", "category"] == "Hair"
  assert feats.loc["I1", "brand"] == "Acme" and feats.loc["I2", "brand"] is None
  assert feats.loc["I1", "title_token"] == ["red", "lipstick", "matte"]
  assert feats.loc["I2", "title_token"] == ["shampoo", "fresh"]
  raw.report.check()
  assert raw.report.total_dropped == 0


def test_amazon_2018_layout_and_json_meta(tmp_path):
  lines = [
      '{"overall": 5.0, "verified": true, "reviewTime": "01 2, 2018", '
      '"reviewerID": "U9", "asin": "B01", "style": {"Size:": " Large"}, '
      '"reviewerName": "Z", "reviewText": "fine", "summary": "ok", '
      '"unixReviewTime": 1514851200}',
      '{"overall": 2.0, "vote": "3", "verified": false, "reviewTime": "x", '
      '"reviewerID": "U9", "asin": "B02", "reviewerName": "Z", "reviewText": "meh",'
      ' "summary": "no", "unixReviewTime": 1514937600, "image": ["http://a"]}',
  ]
  reviews = _write_lines(tmp_path / "Industrial.json", lines)
  meta = _write_lines(tmp_path / "meta_Industrial.json", [json.dumps(
      {"asin": "B01", "title": "Glue", "brand": "Gorilla",
       "category": ["Industrial & Scientific", "Tapes", "Adhesives"]})])
  raw = LOADERS["amazon"]([reviews, meta])
  assert _rows(raw) == [("U9", "B01", 1514851200), ("U9", "B02", 1514937600)]
  np.testing.assert_array_equal(raw.interactions["rating"], [5.0, 2.0])
  assert raw.item_features.loc["B01", "category"] == "Adhesives"
  assert raw.item_features.loc["B01", "brand"] == "Gorilla"


def test_amazon_fast_path_equals_json_loads_path(tmp_path):
  # The regex fast path must agree with the per-line json.loads reference on
  # every row, including lines it hands over (escaped id, other key order).
  data = synthetic.generate(3000, seed=3)
  reviews, _ = synthetic.write_amazon_2014(data, str(tmp_path))
  with open(reviews, "a", encoding="utf-8") as f:
    f.write('{"asin": "B_reordered", "reviewerID": "U\\u00e9", '
            '"unixReviewTime": 7, "overall": 1.0}\n')
  fast = LOADERS["amazon"]([reviews], chunk_bytes=1 << 16)
  strict = LOADERS["amazon"]([reviews], strict_json=True)
  pd.testing.assert_frame_equal(fast.interactions.astype({"user": str, "item": str}),
                                strict.interactions.astype({"user": str, "item": str}))
  assert _rows(fast)[-1] == ("U\u00e9", "B_reordered", 7)
  # And both equal the generator's events in file order.
  expected = list(zip(synthetic.user_ids(data.user), synthetic.item_ids(data.item),
                      data.timestamp.tolist()))
  assert _rows(fast)[:-1] == expected


def test_meta_category_paths():
  assert amazon.meta_category({"categories": [["A", "B", "C"], ["D"]]}) == "C"
  assert amazon.meta_category({"category": ["X", "Y"]}) == "Y"
  assert amazon.meta_category({"categories": []}) is None


def test_sequence_pairs(tmp_path):
  path = _write_lines(tmp_path / "beauty.txt", ["1 10", "1 11", "2 10", "1 12"])
  raw = LOADERS["sequence"]([path])
  assert not raw.has_time
  # Timestamp = line number, so each user's order is the file order.
  assert _rows(raw) == [("1", "10", 1), ("1", "11", 2), ("2", "10", 3),
                        ("1", "12", 4)]


def test_sequence_user_per_line_with_attributes(tmp_path):
  path = _write_lines(tmp_path / "Toys.txt", ["1 5 6 7", "2 6 5"])
  attrs = tmp_path / "Toys_item2attributes.json"
  attrs.write_text(json.dumps({"5": [1, 2], "6": [3], "7": [], "99": [4]}))
  raw = LOADERS["sequence"]([path, str(attrs)])
  assert _rows(raw) == [("1", "5", 0), ("1", "6", 1), ("1", "7", 2),
                        ("2", "6", 3), ("2", "5", 4)]
  assert raw.item_features.loc["5", "attribute"] == ["1", "2"]
  assert raw.item_features.loc["7", "attribute"] == []
  stats = raw.report.files[str(attrs)]
  # Item 99 is in the attribute file only: counted, not kept.
  assert (stats.read, stats.kept) == (4, 3)
  assert stats.dropped == {"item_not_in_interactions": 1}


ML_RATINGS = "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.5,90\n2,10,5.0,80\n"
ML_MOVIES = ('movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n'
             '20,Toy Story (1995),(no genres listed)\n30,Unrated (2000),Drama\n')
ML_TAGS = "userId,movieId,tag,timestamp\n1,10,Classic,5\n2,10,classic,6\n2,20,Pixar,7\n"


@pytest.mark.parametrize("as_zip", [False, True])
def test_movielens_latest(tmp_path, as_zip):
  folder = tmp_path / "ml-latest-small"
  folder.mkdir()
  for name, text in (("ratings.csv", ML_RATINGS), ("movies.csv", ML_MOVIES),
                     ("tags.csv", ML_TAGS)):
    (folder / name).write_text(text)
  path = folder
  if as_zip:
    path = tmp_path / "ml.zip"
    with zipfile.ZipFile(path, "w") as z:
      for name in ("ratings.csv", "movies.csv", "tags.csv"):
        z.write(folder / name, "ml-latest-small/" + name)
  raw = LOADERS["movielens"]([str(path)])
  assert _rows(raw) == [("1", "10", 100), ("1", "20", 90), ("2", "10", 80)]
  f = raw.item_features
  assert f.loc["10", "genre"] == ["Action", "Crime"]
  assert f.loc["20", "genre"] == []              # "(no genres listed)"
  assert f.loc["10", "title_token"] == ["heat", "the"]   # the year is its own field
  assert f.loc["10", "year"] == "1995" and f.loc["20", "year"] == "1995"
  assert sorted(f.loc["10", "tag"]) == ["classic"]   # lower-cased, deduplicated
  assert f.loc["20", "tag"] == ["pixar"]
  assert "30" not in f.index                     # movie nobody rated
  raw.report.check()


@pytest.mark.parametrize("title, parts", [
    ("Heat, The (1995)", ("Heat, The", "1995")),
    ("Babylon 5", ("Babylon 5", None)),                       # no year
    ("2001: A Space Odyssey (1968)", ("2001: A Space Odyssey", "1968")),
    ("Sherlock (2010-)", ("Sherlock", "2010")),               # series
    ("Cosmos (1980) ", ("Cosmos", "1980")),                   # trailing space
    ("Deadpool (Deadpool 2) ", ("Deadpool (Deadpool 2)", None)),
])
def test_movielens_title_year(title, parts):
  assert movielens.split_title_year(title) == parts


def test_movielens_1m_dat_latin1_with_user_features(tmp_path):
  (tmp_path / "ratings.dat").write_bytes(
      b"1::1193::5::978300760\n2::1193::4::978300000\n")
  (tmp_path / "movies.dat").write_bytes(
      "1193::Am\xe9lie (2001)::Comedy|Romance\n".encode("latin-1"))
  (tmp_path / "users.dat").write_bytes(b"1::F::1::10::48067\n2::M::56::16::70072\n")
  raw = LOADERS["movielens"]([str(tmp_path)])
  assert _rows(raw) == [("1", "1193", 978300760), ("2", "1193", 978300000)]
  assert raw.item_features.loc["1193", "title_token"] == ["am\xe9lie"]
  assert raw.item_features.loc["1193", "year"] == "2001"
  assert raw.item_features.loc["1193", "genre"] == ["Comedy", "Romance"]
  uf = raw.user_features
  assert uf.loc["1"].tolist() == ["F", "1", "10"]
  assert uf.loc["2"].tolist() == ["M", "56", "16"]


def test_recbole_rebuilds_sequences_from_test_rows(tmp_path):
  (tmp_path / "Sci.user2index").write_text("AX\t0\nBY\t1\n")
  (tmp_path / "Sci.item2index").write_text("P0\t0\nP1\t1\nP2\t2\n")
  (tmp_path / "Sci.test.inter").write_text(
      "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t0 1\t2\n1\t2\t0\n")
  (tmp_path / "Sci.text").write_text(
      "item_id:token\ttext:token_seq\nP0\tGorilla Glue. Adhesives. Gorilla.\n"
      "P2\tTape\n")
  raw = LOADERS["recbole"]([str(tmp_path)])
  # User AX: history P0 P1 then target P2; user BY: P2 then P0.
  assert _rows(raw) == [("AX", "P0", 0), ("AX", "P1", 1), ("AX", "P2", 2),
                        ("BY", "P2", 3), ("BY", "P0", 4)]
  f = raw.item_features
  assert f.loc["P0", "title_token"] == ["gorilla", "glue"]
  assert f.loc["P0", "category_token"] == ["adhesives"]
  assert f.loc["P0", "brand"] == "Gorilla"
  assert f.loc["P2", "title_token"] == ["tape"]    # no parts: all title
  assert f.loc["P2", "category_token"] == [] and pd.isna(f.loc["P2", "brand"])
  assert raw.multi_valued == ("title_token", "category_token")


@pytest.mark.parametrize("text, parts", [
    # Real lines of ../shared/data/amazon-scientific-unisrec/Scientific.text.
    ("Scott Kimberly-Clark 75190 Shop Towels, 10 x 12, Blue. Industrial & "
     "Scientific Janitorial & Sanitation Supplies Cleaning Tools Disposable "
     "Wipes. Scott. ",
     ("Scott Kimberly-Clark 75190 Shop Towels, 10 x 12, Blue",
      "Industrial & Scientific Janitorial & Sanitation Supplies Cleaning Tools "
      "Disposable Wipes", "Scott")),
    # A title with ". " inside and an empty category path.
    ("Kimberly-Clark Professional Kimtech Science KimWipes Delicate Task "
     "Wipers, 4.4 x 8.4 in. 1-ply. . Kimberly-Clark Professional.",
     ("Kimberly-Clark Professional Kimtech Science KimWipes Delicate Task "
      "Wipers, 4.4 x 8.4 in. 1-ply", "", "Kimberly-Clark Professional")),
    ("Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce "
     "Bottle, Brown. Industrial & Scientific Tapes, Adhesives & Sealants "
     "Urethane Adhesives. Gorilla. ",
     ("Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce "
      "Bottle, Brown", "Industrial & Scientific Tapes, Adhesives & Sealants "
      "Urethane Adhesives", "Gorilla")),
])
def test_recbole_item_text_splits_into_title_categories_brand(text, parts):
  assert recbole.split_item_text(text) == parts


def test_recbole_real_scientific_text_fields(shared_data):
  raw = LOADERS["recbole"]([shared_data / "amazon-scientific-unisrec"])
  f = raw.item_features
  assert len(f) == 1585                      # README: all 1,585 items have text
  assert f.loc["B00004TBJD", "brand"] == "Scott"
  assert f.loc["B00004TBJD", "category_token"][:3] == [
      "industrial", "scientific", "janitorial"]
  # Published structure: nearly every item has a category path and a brand.
  has_category = np.mean([len(c) > 0 for c in f["category_token"]])
  has_brand = np.mean([not pd.isna(b) for b in f["brand"]])
  assert has_category > 0.95 and has_brand > 0.95
  raw.report.check()


def test_csv_with_column_mapping_and_dates(tmp_path):
  path = tmp_path / "log.tsv"
  path.write_text("ts\tuid\tsku\tshop\ttags\n2020-01-01T00:00:10Z\tu1\ts1\tS\ta|b\n"
                  "15\tu2\ts1\tS\tb\n")
  raw = LOADERS["csv"]([str(path)], user_col="uid", item_col="sku",
                       timestamp_col="ts", item_feature_cols=["shop", "tags"],
                       multi_valued_cols=["tags"], sep="\t")
  assert _rows(raw) == [("u1", "s1", 1577836810), ("u2", "s1", 15)]
  assert raw.item_features.loc["s1", "shop"] == "S"
  assert raw.item_features.loc["s1", "tags"] == ["a", "b"]   # first row of the item


def test_csv_columns_by_position_without_header(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text("u1,i1,5\nu1,i2,6\n")
  raw = LOADERS["csv"]([str(path)], user_col=0, item_col=1, timestamp_col=2,
                       header=False)
  assert _rows(raw) == [("u1", "i1", 5), ("u1", "i2", 6)]


def test_meta_fast_path_agrees_with_literal_eval():
  import ast
  lines = [
      repr({"asin": "B1", "title": "Kid's \"best\" toy", "related": {"also": ["x"]},
            "categories": [["Toys", "Games & Puzzles"], ["Sale"]], "brand": "Z's"}),
      repr({"asin": "B2", "title": "caf\u00e9 \\ backslash", "categories": [["A"]]}),
      json.dumps({"asin": "B3", "category": ["X", "Y\u00e9"], "brand": "Q"}),
      repr({"asin": "B4", "salesRank": {"Toys": 3}, "brand": "", "title": "t"}),
  ]
  for line in lines:
    fast = amazon._fast_meta(line)
    full = ast.literal_eval(line)
    assert fast is not None, line
    for key in ("asin", "title", "brand"):
      assert fast.get(key) == full.get(key), (key, line)
    assert amazon.meta_category(fast) == amazon.meta_category(full)
  # Shapes the fast path does not take go to the full parser.
  assert amazon._fast_meta(repr({"asin": "B5", "categories": []})) is None
  assert amazon._fast_meta(repr({"asin": "B6", "brand": None})) is None
  assert amazon._fast_meta("{'title': 'no asin'}") is None


def test_amazon_worker_processes_give_the_same_result(tmp_path):
  data = synthetic.generate(3000, seed=5)
  reviews, meta = synthetic.write_amazon_2014(data, str(tmp_path))
  with open(reviews, "a", encoding="utf-8") as f:
    f.write("{broken\n")
  one = LOADERS["amazon"]([reviews, meta], chunk_bytes=1 << 15, workers=1)
  two = LOADERS["amazon"]([reviews, meta], chunk_bytes=1 << 15, workers=2)
  pd.testing.assert_frame_equal(one.interactions, two.interactions)
  assert one.report.to_dict() == two.report.to_dict()
  assert two.report.files[reviews].dropped == {"malformed_json": 1}


def test_derive_category_skips_root_attributes_and_prefers_common_ones():
  from dcg_tf.data.loaders.sequence import derive_category  # pylint: disable=g-import-not-at-top
  # "root" is on 4 of 4 items (> 50%: skipped); "face" on 2, "eyes" on 1,
  # brands "b1", "b2" on 1 each. Item 3 has only the root: it keeps it.
  items = [["root", "face", "b1"], ["root", "face", "b2"], ["root", "eyes"], ["root"], []]
  assert derive_category(items) == ["face", "face", "eyes", "root", None]
  # Tie between "b1" and "eyes" (one item each): the smaller string wins.
  assert derive_category([["b1", "eyes"], ["x"], ["y"]]) == ["b1", "x", "y"]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 64])
def test_byte_ranges_give_the_lines_of_iter_blocks(tmp_path, ending, chunk_bytes):
  # Workers read byte ranges of a file on their own: the blocks of all ranges,
  # in order, must be exactly the lines iter_blocks yields (empty lines, \r\n,
  # a last line without newline, lines longer than a range).
  rng = np.random.default_rng(chunk_bytes)
  for trial in range(20):
    lines = [b"x" * int(rng.integers(0, 20)) for _ in range(int(rng.integers(0, 12)))]
    data = b"".join(line + ending for line in lines) + (b"tail" if trial % 3 else b"")
    path = tmp_path / ("f%d" % trial)
    path.write_bytes(data)
    expected = [line for _, block in raw_lib.iter_blocks(io.BytesIO(data), chunk_bytes)
                for line in block.split(b"\n")]
    got = []
    for start, end in raw_lib.byte_ranges(path, chunk_bytes):
      block = raw_lib.read_range(path, start, end)
      if block is not None:
        got += block.split(b"\n")
    assert got == expected, (data, chunk_bytes)


def test_meta_accounting_across_files_and_workers(tmp_path):
  # Metadata blocks are parsed by the workers and matched against the reviewed
  # items at the end: unknown items, repeats (also across files) and bad lines
  # are counted per file at their line numbers, the first good line wins.
  reviews = _write_lines(tmp_path / "reviews_Beauty.json",
                         [json.dumps(r) for r in REVIEWS_2014])
  meta_a = _write_lines(tmp_path / "meta_A.json", [
      repr({"asin": "I9", "title": "unknown"}),
      repr({"asin": "I1", "title": "first", "brand": "A"}),
      "{'asin': broken",
      "",
      repr({"asin": "I1", "title": "again"}),
      repr({"title": "no id"})])
  meta_b = _write_lines(tmp_path / "meta_B.json", [
      repr({"asin": "I1", "title": "other file"}),
      json.dumps({"asin": "I2", "category": ["X", "Y"], "brand": " "})])
  for workers in (1, 2):
    raw = LOADERS["amazon"]([reviews, meta_a, meta_b], chunk_bytes=40,
                            workers=workers)
    files = raw.report.files
    assert list(files) == [reviews, meta_a, meta_b]
    assert files[meta_a].dropped == {"item_not_in_interactions": 1,
                                     "malformed_literal": 1, "empty_line": 1,
                                     "duplicate_item": 1, "missing_item": 1}
    assert files[meta_a].lines["duplicate_item"] == [5]
    assert (files[meta_a].read, files[meta_a].kept) == (6, 1)
    assert files[meta_b].dropped == {"duplicate_item": 1}
    assert (files[meta_b].read, files[meta_b].kept) == (2, 1)
    features = raw.item_features
    assert list(features.index) == ["I1", "I2"]
    assert features.loc["I1", "title_token"] == ["first"]
    assert features.loc["I1", "brand"] == "A"
    assert features.loc["I2", "category"] == "Y" and features.loc["I2", "brand"] is None
