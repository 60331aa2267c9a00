"""Synthetic generator: statistical properties it promises, and round trips
through the writers and loaders (the loaders must return exactly the events)."""

import hashlib

import numpy as np
import pytest

from dcg_tf.data import synthetic
from dcg_tf.data.loaders import LOADERS


def _mutual_information(x, y):
  """Plug-in estimate of I(X; Y) in nats from paired samples."""
  joint = np.zeros((x.max() + 1, y.max() + 1))
  np.add.at(joint, (x, y), 1)
  joint /= joint.sum()
  px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
  nz = joint > 0
  return float((joint[nz] * np.log(joint[nz] / (px @ py)[nz])).sum())


def test_seeded_and_deterministic():
  a, b = synthetic.generate(5000, seed=7), synthetic.generate(5000, seed=7)
  c = synthetic.generate(5000, seed=8)
  np.testing.assert_array_equal(a.item, b.item)
  np.testing.assert_array_equal(a.timestamp, b.timestamp)
  assert not np.array_equal(a.item[:100], c.item[:100])


def test_popularity_is_power_law():
  d = synthetic.generate(200_000, num_items=5000, alpha=1.0, seed=0)
  freq = np.sort(np.bincount(d.item, minlength=d.num_items))[::-1]
  ranks = np.arange(1, 201)
  # Zipf(1): log-frequency falls with slope about -1 over the head ranks.
  slope = np.polyfit(np.log(ranks), np.log(freq[:200]), 1)[0]
  assert -1.4 < slope < -0.6, slope
  # Heavy head: the top 1% of items take well over 1% of events (>= 15%).
  assert freq[:50].sum() / freq.sum() > 0.15


def test_features_carry_information():
  d = synthetic.generate(100_000, seed=1)
  # Brand determines the category (each brand belongs to one category).
  cats_per_brand = [np.unique(d.item_category[d.item_brand == b]).size
                    for b in np.unique(d.item_brand)]
  assert max(cats_per_brand) == 1
  # Users stick to favourite categories: consecutive events of a user share
  # category information far above a shuffled baseline.
  cat = d.item_category[d.item]
  same_user = d.user[1:] == d.user[:-1]
  mi = _mutual_information(cat[:-1][same_user], cat[1:][same_user])
  rng = np.random.default_rng(0)
  shuffled = rng.permutation(cat)
  mi0 = _mutual_information(shuffled[:-1][same_user], shuffled[1:][same_user])
  assert mi > 0.5 and mi > 10 * mi0, (mi, mi0)


def test_activity_and_sessions():
  d = synthetic.generate(100_000, seed=2, new_session_prob=0.2)
  counts = np.bincount(d.user)
  assert counts.min() >= 5
  assert counts.std() / counts.mean() > 0.5           # heavy and light users
  same = d.user[1:] == d.user[:-1]
  gaps = np.diff(d.timestamp)[same]
  assert (gaps > 0).all()                              # time order within users
  # Session starts: gaps > 1 h are (almost) exactly the drawn new sessions.
  assert abs((gaps > 3600).mean() - 0.2 * np.exp(-3600 / (2 * 86400))) < 0.01


def test_amazon_round_trip(tmp_path):
  d = synthetic.generate(4000, seed=3)
  reviews, meta = synthetic.write_amazon_2014(d, str(tmp_path), compress=True)
  raw = LOADERS["amazon"]([reviews, meta])
  inter = raw.interactions
  np.testing.assert_array_equal(inter["user"].astype(str), synthetic.user_ids(d.user))
  np.testing.assert_array_equal(inter["item"].astype(str), synthetic.item_ids(d.item))
  np.testing.assert_array_equal(inter["timestamp"], d.timestamp)
  np.testing.assert_array_equal(inter["rating"], d.rating)
  item = synthetic.item_ids(np.arange(d.num_items))
  feats = raw.item_features.reindex(item)
  used = np.isin(np.arange(d.num_items), d.item)
  expected = ["Category %d" % c for c in d.item_category[used]]
  assert feats["category"][used].tolist() == expected
  assert feats["brand"][used].tolist() == ["Brand %d" % b for b in d.item_brand[used]]
  assert raw.report.total_dropped == (~used).sum()      # unreviewed items' metadata


def test_sequence_and_movielens_round_trip(tmp_path):
  d = synthetic.generate(3000, seed=4)
  path = synthetic.write_sequence_pairs(d, str(tmp_path / "seq.txt"))
  raw = LOADERS["sequence"]([path])
  np.testing.assert_array_equal(raw.interactions["user"].astype(int), d.user + 1)
  np.testing.assert_array_equal(raw.interactions["item"].astype(int), d.item + 1)
  folder = synthetic.write_movielens(d, str(tmp_path / "ml"))
  raw = LOADERS["movielens"]([folder])
  np.testing.assert_array_equal(raw.interactions["item"].astype(int), d.item + 1)
  np.testing.assert_array_equal(raw.interactions["timestamp"], d.timestamp)
  k = int(d.item[0])
  # Quoted title with a comma and doubled quotes survives the CSV round trip.
  assert raw.item_features.loc[str(k + 1), "title_token"][:3] == [
      "movie", str(k + 1), "part"]


def test_correlated_csv_round_trips_and_the_groups_are_recovered(tmp_path):
  """The written fields reach the processed catalog unchanged, and Eq. 4 over
  that catalog puts every field closest to a field of its own group."""
  from dcg_tf.data import mutual_information  # pylint: disable=g-import-not-at-top
  data = synthetic.generate(6000, num_items=300, seed=4)
  fields = synthetic.generate_correlated_fields(
      data.num_items, seed=4, latents={0: data.item_category % 16})
  path = synthetic.write_correlated_csv(data, fields, str(tmp_path / "c.csv"))
  single = sorted(n for n, v in fields.features.items() if v.ndim == 1)
  raw = LOADERS["csv"]([path], user_col="user", item_col="item",
                       timestamp_col="timestamp", item_feature_cols=single + ["g0_f2"],
                       multi_valued_cols=["g0_f2"])
  raw.report.check()
  # Item "B...k" (synthetic.item_ids, 0-based k) carries row k + 1 of each field.
  for item in raw.item_features.index[:50]:
    k = int(str(item)[1:])
    for name in single:
      assert int(raw.item_features.loc[item, name]) == fields.features[name][k + 1]
    multi = [int(v) for v in raw.item_features.loc[item, "g0_f2"]]
    assert multi == [v for v in fields.features["g0_f2"][k + 1] if v > 0]
  # Eq. 4 on the catalog: each field's highest-MI partner is in its group.
  names = sorted(fields.features)
  mi = mutual_information.catalog_mutual_information(
      {n: fields.features[n] for n in names})
  mi = np.asarray(mi, np.float64)
  np.fill_diagonal(mi, -np.inf)
  for i, name in enumerate(names):
    assert fields.groups[names[int(np.argmax(mi[i]))]] == fields.groups[name], name


def test_exact_counts():
  # 5,000 events over 300 users (>= 5 each) and 400 items: the approximate
  # draw has 4,842 events and 378 distinct items (checked below), so both the
  # remainder top-up and the item cover do work here.
  approx = synthetic.generate(5000, num_users=300, num_items=400, seed=0)
  assert approx.user.size == 4842 and np.unique(approx.item).size == 378
  d = synthetic.generate(5000, num_users=300, num_items=400, exact=True, seed=0)
  assert d.user.size == d.item.size == d.timestamp.size == 5000
  np.testing.assert_array_equal(np.unique(d.user), np.arange(300))
  np.testing.assert_array_equal(np.unique(d.item), np.arange(400))
  assert np.bincount(d.user).min() >= 5
  same = d.user[1:] == d.user[:-1]
  assert (np.diff(d.timestamp)[same] > 0).all()       # still time-ordered
  with pytest.raises(ValueError, match="num_events"):
    synthetic.generate(1000, num_users=300, num_items=400, exact=True)


def test_approximate_draw_unchanged():
  # sha256 of (user, item, timestamp, rating) bytes of generate(5000,
  # num_users=300, num_items=400, seed=0) from the code before `exact`.
  d = synthetic.generate(5000, num_users=300, num_items=400, seed=0)
  h = hashlib.sha256()
  for a in (d.user, d.item, d.timestamp, d.rating):
    h.update(np.ascontiguousarray(a).tobytes())
  assert h.hexdigest() == ("b38c4f7bbba1826466c8d2093d985f597d3f6fb4129"
                           "66ae945dbdf451ba70e91")
