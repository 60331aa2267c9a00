"""Bad input is never a bare traceback and never silent: each rejected line is
counted by reason with its line number, kept + dropped == read, and the binary
exits non-zero naming the file when a file is too bad or nothing is left."""

import json
import os

import pytest

from dcg_tf.data import preprocess as pp
from dcg_tf.data.loaders import LOADERS
from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport
from dcg_tf.errors import InputError
from experiments import preprocess as binary


def _review(u, i, t):
  return json.dumps({"reviewerID": u, "asin": i, "overall": 4.0, "unixReviewTime": t})


def _good_reviews(n):
  # 5 users x n/5 items with distinct times: survives any k-core up to 5.
  return [_review("U%d" % (k % 5), "I%d" % (k // 5), 1000 + k) for k in range(n)]


def _write(path, lines, mode="w"):
  if isinstance(lines[0], bytes):
    path.write_bytes(b"".join(l + b"\n" for l in lines))
  else:
    path.write_text("".join(l + "\n" for l in lines))
  return str(path)


def test_report_invariant_and_fraction_messages():
  r = DropReport()
  r.add_read("f.json", 10)
  r.add_dropped("f.json", "malformed_json", [9, 3])
  r.add_kept("f.json", 7)
  with pytest.raises(AssertionError, match="f.json"):
    r.check()                                   # 7 + 2 != 10
  r.add_kept("f.json", 1)
  r.check()
  assert r.files["f.json"].lines["malformed_json"] == [3, 9]
  with pytest.raises(BadInputError, match=r"f.json: 20.00% of 10 rows are bad"):
    r.check_bad_fraction(0.1)
  r.check_bad_fraction(0.2)


def test_amazon_bad_lines_counted_by_reason(tmp_path):
  lines = [l.encode() for l in _good_reviews(20)]
  lines[2] = b'{"reviewerID": "U1", "asin": '                       # truncated
  lines[4] = _review("U1", "I9", "yesterday").encode()              # text time
  lines[6] = b'{"asin": "I1", "unixReviewTime": 5}'                 # no user
  lines[8] = b'{"reviewerID": "U\xff", "asin": "I1", "unixReviewTime": 5}'
  lines[10] = b""                                                   # empty line
  lines[12] = _review("U0", "I0", 1.5).encode()                     # float time
  path = _write(tmp_path / "reviews_X.json", lines)
  raw = LOADERS["amazon"]([path])
  stats = raw.report.files[path]
  assert stats.dropped == {"malformed_json": 1, "bad_timestamp": 2, "missing_user": 1,
                           "non_utf8": 1, "empty_line": 1}
  assert stats.lines["bad_timestamp"] == [5, 13]
  assert stats.lines["malformed_json"] == [3] and stats.lines["non_utf8"] == [9]
  assert stats.kept == 14 and stats.read == 20
  raw.report.check()


def test_bad_fraction_exceeded_names_file_and_leaves_nothing(tmp_path, capsys):
  lines = _good_reviews(50) + ["{not json"] * 2
  path = _write(tmp_path / "reviews_X.json", lines)
  out = tmp_path / "out"
  config = pp.PreprocessConfig(max_bad_fraction=0.01)
  with pytest.raises(BadInputError, match="reviews_X.json: 3.85% of 52 rows"):
    binary.run("amazon", [path], str(out), config)
  assert sorted(os.listdir(tmp_path)) == ["reviews_X.json"]
  # The same input passes with a looser threshold; the manifest counts the lines.
  m = binary.run("amazon", [path], str(out),
                 pp.PreprocessConfig(max_bad_fraction=0.05))
  f = m["input_rows"]["files"][0]
  assert f["dropped"] == {"malformed_json": 2} and f["first_lines"] == {
      "malformed_json": [51, 52]}
  assert f["kept"] + sum(f["dropped"].values()) == f["read"] == 52


def test_main_raises_the_error_that_names_the_file(tmp_path):
  # experiments/cli.py prints it as one line with exit status 2
  # (tests/experiments/test_cli.py runs the binary).
  from absl import flags
  path = _write(tmp_path / "reviews_X.json", ["garbage"] * 3)
  flags.FLAGS(["prog", "--format=amazon", "--input=" + path,
               "--output_dir=" + str(tmp_path / "out")])
  try:
    with pytest.raises(InputError, match=r"reviews_X.json: no usable rows \(3 read"):
      binary.main([])
  finally:
    flags.FLAGS.unparse_flags()
  assert not (tmp_path / "out").exists()


def test_empty_file(tmp_path):
  path = tmp_path / "reviews_E.json"
  path.write_text("")
  with pytest.raises(BadInputError, match="reviews_E.json: the file is empty"):
    binary.run("amazon", [str(path)], str(tmp_path / "out"), pp.PreprocessConfig())


def test_duplicates_counted_against_their_lines(tmp_path):
  lines = _good_reviews(10)
  lines.insert(4, lines[1])                       # line 5 repeats line 2
  path = _write(tmp_path / "reviews_D.json", lines)
  m = binary.run("amazon", [path], str(tmp_path / "out"),
                 pp.PreprocessConfig(max_bad_fraction=0.5))
  f = m["input_rows"]["files"][0]
  assert f["dropped"] == {"duplicate_event": 1}
  assert f["first_lines"]["duplicate_event"] == [5]
  assert f["kept"] == 10 and f["read"] == 11
  assert m["counts"]["interactions"] == 10


def test_unknown_items_in_metadata_and_malformed_literals(tmp_path):
  reviews = _write(tmp_path / "reviews_M.json", _good_reviews(10))
  meta = _write(tmp_path / "meta_M.json", [
      repr({"asin": "I0", "categories": [["a", "b"]]}),
      repr({"asin": "NOPE", "categories": [["a"]]}),      # not reviewed
      "{'asin': 'I1', 'categories': [['a'",               # truncated literal
      "__import__('os').system('echo pwned')",            # never evaluated
  ])
  raw = LOADERS["amazon"]([reviews, meta])
  stats = raw.report.files[meta]
  assert stats.dropped == {"item_not_in_interactions": 1, "malformed_literal": 2}
  assert stats.lines["malformed_literal"] == [3, 4]
  # Metadata of unknown items is informational, not bad: 2 of 4 lines are bad.
  with pytest.raises(BadInputError, match="meta_M.json: 50.00% of 4 rows"):
    raw.report.check_bad_fraction(0.1)


def test_csv_missing_and_extra_columns(tmp_path):
  path = _write(tmp_path / "log.csv", ["user,item,ts", "a,x,1", "a,y", "b,x,2,extra",
                                       "b,y,notatime", ",z,3", "c,x,4"])
  raw = LOADERS["csv"]([path], user_col="user", item_col="item", timestamp_col="ts")
  stats = raw.report.files[path]
  assert stats.dropped == {"wrong_field_count": 2, "bad_timestamp": 1,
                           "missing_user": 1}
  assert stats.lines["wrong_field_count"] == [3, 4]
  assert stats.lines["bad_timestamp"] == [5] and stats.lines["missing_user"] == [6]
  assert stats.kept == 2
  with pytest.raises(BadInputError, match="log.csv: no column 'uid'"):
    LOADERS["csv"]([path], user_col="uid", item_col="item")


def test_sequence_bad_lines(tmp_path):
  path = _write(tmp_path / "s.txt", [b"1 2", b"1 2 3", b"\xfe 4", b"", b"2 5"])
  raw = LOADERS["sequence"]([path], layout="pairs")
  stats = raw.report.files[path]
  assert stats.dropped == {"non_utf8": 1, "empty_line": 1, "wrong_field_count": 1}
  assert stats.kept == 2


def test_users_with_too_few_events_leave_nothing(tmp_path):
  path = _write(tmp_path / "reviews_S.json", [_review("U1", "I1", 1),
                                              _review("U2", "I1", 2)])
  with pytest.raises(BadInputError, match="reviews_S.json: no interactions left "
                     "after filtering"):
    binary.run("amazon", [path], str(tmp_path / "out"),
               pp.PreprocessConfig(min_user_interactions=3))
  assert not (tmp_path / "out").exists()


def test_recbole_unknown_ids(tmp_path):
  (tmp_path / "D.user2index").write_text("A\t0\n")
  (tmp_path / "D.item2index").write_text("P\t0\n")
  (tmp_path / "D.test.inter").write_text(
      "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t0\t0\n0\t0\t7\n"
      "5\t0\t0\nx\t0\t0\n")
  raw = LOADERS["recbole"]([str(tmp_path)])
  stats = raw.report.files[str(tmp_path / "D.test.inter")]
  assert stats.dropped == {"unknown_item": 1, "unknown_user": 1, "non_integer_id": 1}
  assert stats.lines["unknown_item"] == [3] and stats.kept == 1
