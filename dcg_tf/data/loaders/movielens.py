"""MovieLens: ml-latest(-small) CSV files and the ML-1M `::`-separated `.dat` files.

- ml-latest-small (zip or unpacked folder): `ratings.csv`
  (userId,movieId,rating,timestamp), `movies.csv` (movieId,title,genres with
  `|`-separated genres), `tags.csv` (userId,movieId,tag,timestamp: the tags
  become a multi-valued item feature, not interactions).
- ML-1M: `ratings.dat` (UserID::MovieID::Rating::Timestamp), `movies.dat`
  (MovieID::Title::Genres), `users.dat` (UserID::Gender::Age::Occupation::Zip),
  latin-1. Users get the features gender, age and occupation.

Item features: `genre` (multi), `year` (single: the release year that ends
the title, "Heat (1995)"; none when the title has no year), `title_token`
(multi: the title without its year), `tag` (multi, latest only). These are the
five fields of ml-latest-small that the SSL-CFM issue asks for, with the id.
"""

import os
import re
import zipfile

import numpy as np
import pandas as pd

from dcg_tf.data import raw as raw_lib
from dcg_tf.data.loaders import csv_loader
from dcg_tf.data.report import BadInputError
from dcg_tf.data.report import DropReport

_NO_GENRE = "(no genres listed)"
# "Title (1995)", "Title (2007-2013)" (series), possibly followed by spaces.
_YEAR_RE = re.compile(r"\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")


def split_title_year(title):
  """("Heat (1995)") -> ("Heat", "1995"); a title without a year -> (title, None)."""
  match = _YEAR_RE.search(title)
  if match is None:
    return title.strip(), None
  return title[:match.start()].strip(), match.group(1)


def _member_names(path):
  if zipfile.is_zipfile(path):
    return [n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(path).namelist()]
  if os.path.isdir(path):
    return os.listdir(path)
  return []


def _sources(paths):
  """Maps member name -> (container or None, display name)."""
  sources = {}
  for path in paths:
    path = str(path)
    names = _member_names(path)
    if names:
      for name in names:
        sources.setdefault(name, (path, os.path.join(path, name)))
    elif os.path.isfile(path):
      sources[os.path.basename(path)] = (None, path)
    else:
      raise BadInputError("%s: no such file or folder" % path)
  return sources


def _open(sources, name):
  container, display = sources[name]
  if container is None:
    return raw_lib.open_binary(display), display
  return raw_lib.open_member(container, name), display


def load_movielens(paths):
  """Loads MovieLens from a zip, a folder or the individual files.

  Returns:
    RawData (ratings as interactions with timestamps; item and user features).
  """
  sources = _sources(paths)
  if "ratings.csv" in sources:
    return _load_latest(sources)
  if "ratings.dat" in sources:
    return _load_1m(sources)
  raise BadInputError("movielens: none of %s holds ratings.csv or ratings.dat"
                      % list(map(str, paths)))


def _ratings(frame, numbers, name, report, cols):
  user, item, rating, ts = (frame[c].str.strip() for c in cols)
  ts, bad_ts = csv_loader.parse_timestamps(ts)
  rating = pd.to_numeric(rating, errors="coerce").to_numpy(np.float32)
  bad = {"missing_user": (user == "").to_numpy(), "missing_item": (item == "").to_numpy(),
         "bad_timestamp": bad_ts, "bad_rating": np.isnan(rating)}
  dropped = np.zeros(len(frame), bool)
  for reason, mask in bad.items():
    report.add_dropped(name, reason, numbers[mask & ~dropped])
    dropped |= mask
  keep = ~dropped
  report.add_kept(name, int(keep.sum()))
  return raw_lib.interactions_frame(user[keep].to_numpy(object),
                                    item[keep].to_numpy(object), ts[keep],
                                    rating[keep], 0, numbers[keep])


def _movies(frame, numbers, name, report, known):
  movie = frame.iloc[:, 0].str.strip()
  unknown = ~movie.isin(known).to_numpy()
  dup = movie.duplicated().to_numpy() & ~unknown
  report.add_dropped(name, "item_not_in_interactions", numbers[unknown])
  report.add_dropped(name, "duplicate_item", numbers[dup])
  keep = ~unknown & ~dup
  report.add_kept(name, int(keep.sum()))
  genres = [[g for g in s.split("|") if g and g != _NO_GENRE]
            for s in frame.iloc[:, 2][keep]]
  titles, years = zip(*map(split_title_year, frame.iloc[:, 1][keep])) if keep.any() else ((), ())
  titles = [raw_lib.tokenize(t) for t in titles]
  return pd.DataFrame({"genre": genres, "year": list(years), "title_token": titles},
                      index=pd.Index(movie[keep].to_numpy(object), dtype=object))


def _load_latest(sources):
  report = DropReport()
  stream, name = _open(sources, "ratings.csv")
  with stream:
    frame, numbers = csv_loader.read_table(stream, name, ",", report)
  _expect(frame, name, ["userId", "movieId", "rating", "timestamp"])
  interactions = _ratings(frame, numbers, name, report,
                          ["userId", "movieId", "rating", "timestamp"])
  known = set(interactions["item"])
  features = pd.DataFrame(index=pd.Index([], dtype=object))
  multi = ()
  if "movies.csv" in sources:
    stream, mname = _open(sources, "movies.csv")
    with stream:
      movies, mnumbers = csv_loader.read_table(stream, mname, ",", report)
    _expect(movies, mname, ["movieId", "title", "genres"])
    features = _movies(movies, mnumbers, mname, report, known)
    multi = ("genre", "title_token")
  if "tags.csv" in sources:
    stream, tname = _open(sources, "tags.csv")
    with stream:
      tags, tnumbers = csv_loader.read_table(stream, tname, ",", report)
    _expect(tags, tname, ["userId", "movieId", "tag", "timestamp"])
    movie = tags["movieId"].str.strip()
    tag = tags["tag"].str.strip().str.lower()
    unknown = ~movie.isin(known).to_numpy()
    empty = (tag == "").to_numpy() & ~unknown
    report.add_dropped(tname, "item_not_in_interactions", tnumbers[unknown])
    report.add_dropped(tname, "empty_tag", tnumbers[empty])
    keep = ~unknown & ~empty
    report.add_kept(tname, int(keep.sum()))
    per_item = (pd.DataFrame({"item": movie[keep], "tag": tag[keep]})
                .drop_duplicates().groupby("item", sort=False)["tag"].agg(list))
    features = features.reindex(features.index.union(per_item.index))
    features["tag"] = [per_item.get(i, []) for i in features.index]
    for col in ("genre", "title_token"):
      if col in features:
        features[col] = [v if isinstance(v, list) else [] for v in features[col]]
    multi = multi + ("tag",)
  return raw_lib.RawData(interactions=interactions, item_features=features,
                         report=report, multi_valued=multi, has_time=True)


def _load_1m(sources):
  report = DropReport()
  stream, name = _open(sources, "ratings.dat")
  with stream:
    frame, numbers = csv_loader.read_table(stream, name, "::", report, header=False,
                                           encoding="latin-1", expected_columns=4)
  interactions = _ratings(frame, numbers, name, report, ["0", "1", "2", "3"])
  known = set(interactions["item"])
  features = pd.DataFrame(index=pd.Index([], dtype=object))
  multi = ()
  if "movies.dat" in sources:
    stream, mname = _open(sources, "movies.dat")
    with stream:
      movies, mnumbers = csv_loader.read_table(stream, mname, "::", report,
                                               header=False, encoding="latin-1",
                                               expected_columns=3)
    features = _movies(movies, mnumbers, mname, report, known)
    multi = ("genre", "title_token")
  user_features = pd.DataFrame(index=pd.Index([], dtype=object))
  if "users.dat" in sources:
    stream, uname = _open(sources, "users.dat")
    with stream:
      users, unumbers = csv_loader.read_table(stream, uname, "::", report,
                                              header=False, encoding="latin-1",
                                              expected_columns=5)
    uid = users["0"].str.strip()
    unknown = ~uid.isin(set(interactions["user"])).to_numpy()
    report.add_dropped(uname, "user_not_in_interactions", unumbers[unknown])
    report.add_kept(uname, int((~unknown).sum()))
    user_features = pd.DataFrame(
        {"gender": users["1"].str.strip()[~unknown].to_numpy(object),
         "age": users["2"].str.strip()[~unknown].to_numpy(object),
         "occupation": users["3"].str.strip()[~unknown].to_numpy(object)},
        index=pd.Index(uid[~unknown].to_numpy(object), dtype=object))
  return raw_lib.RawData(interactions=interactions, item_features=features,
                         user_features=user_features, report=report,
                         multi_valued=multi, has_time=True)


def _expect(frame, name, columns):
  missing = [c for c in columns if c not in frame.columns]
  if missing:
    raise BadInputError("%s: header lacks columns %s (has %s)"
                        % (name, missing, list(frame.columns)))
